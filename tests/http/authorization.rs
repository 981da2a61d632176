//! The authorization matrix: each route × each role × party and non-party.
//!
//! Expectations come from the table, written out here independently of the code:
//! a caller who may not is answered 403; one who may is never answered 401 or 403 (the rules
//! of the order's state may still refuse it with another status).

use crate::support::{command_routes, user, Sender, Server, User, SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    BuyerParty,
    BuyerOther,
    SellerParty,
    SellerOther,
    Mediator,
    Finance,
    Service,
}

use Caller::*;
const CALLERS: [Caller; 7] = [
    BuyerParty,
    BuyerOther,
    SellerParty,
    SellerOther,
    Mediator,
    Finance,
    Service,
];

struct People {
    buyer: User,
    other_buyer: User,
    seller: User,
    other_seller: User,
    mediator: User,
    finance: User,
    service: User,
}

impl People {
    fn new() -> People {
        People {
            buyer: user("buyer"),
            other_buyer: user("buyer"),
            seller: user("seller"),
            other_seller: user("seller"),
            mediator: user("mediator"),
            finance: user("finance"),
            service: user("service"),
        }
    }

    fn who(&self, caller: Caller) -> &User {
        match caller {
            BuyerParty => &self.buyer,
            BuyerOther => &self.other_buyer,
            SellerParty => &self.seller,
            SellerOther => &self.other_seller,
            Mediator => &self.mediator,
            Finance => &self.finance,
            Service => &self.service,
        }
    }
}

/// The callers a command's sender stands for.
fn allowed(sender: Sender) -> &'static [Caller] {
    match sender {
        Sender::Buyer => &[BuyerParty],
        Sender::Seller => &[SellerParty],
        Sender::EitherParty => &[BuyerParty, SellerParty],
        Sender::Mediator => &[Mediator],
    }
}

fn assert_allowed(status: StatusCode, allowed: bool, what: &str, body: &Value) {
    if allowed {
        assert!(
            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
            "{what}: expected to be let through, got {status}: {body}"
        );
    } else {
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert_eq!(body["status"], 403, "{what}: a problem document: {body}");
    }
}

#[tokio::test]
async fn every_command_route_for_every_role_party_and_non_party() {
    let server = Server::start();
    let people = People::new();
    for route in command_routes() {
        let (action, body, allowed) = (route.action, route.body, allowed(route.sender));
        for caller in CALLERS {
            // A fresh order each time: a command let through may change it.
            let order = server.place(&people.buyer, &people.seller, "100.00").await;
            let head = server.log_head().await;
            let reply = server
                .post(
                    people.who(caller),
                    &format!("/orders/{order}/{action}"),
                    body.clone(),
                )
                .await;
            let what = format!("{caller:?} POST {action}");
            assert_allowed(reply.status, allowed.contains(&caller), &what, &reply.body);
            if reply.status == StatusCode::FORBIDDEN {
                assert_eq!(
                    server.log_head().await,
                    head,
                    "{what}: a refusal appends nothing"
                );
            }
        }
    }
    // Placing: buyers only.
    for caller in CALLERS {
        let reply = server
            .post(
                people.who(caller),
                "/orders",
                json!({"seller_id": people.seller.id, "title": "t", "price": "1.00", "currency": "EUR", "delivery_days": 1}),
            )
            .await;
        let allowed = matches!(caller, BuyerParty | BuyerOther);
        assert_allowed(
            reply.status,
            allowed,
            &format!("{caller:?} POST /orders"),
            &reply.body,
        );
    }
}

#[tokio::test]
async fn every_read_route_for_every_role_party_and_non_party() {
    let server = Server::start();
    let people = People::new();
    let order = server.place(&people.buyer, &people.seller, "100.00").await;
    let closed = server.place(&people.buyer, &people.seller, "100.00").await;
    server
        .act(&people.seller, closed, "confirm", json!({}))
        .await;
    server
        .act(&people.seller, closed, "deliver", json!({"message": "x"}))
        .await;
    server.act(&people.buyer, closed, "close", json!({})).await;

    let parties_staff = |staff: &'static [Caller]| -> Vec<Caller> {
        let mut allowed = vec![BuyerParty, SellerParty];
        allowed.extend_from_slice(staff);
        allowed
    };
    let reads: Vec<(String, Vec<Caller>)> = vec![
        (
            format!("/orders/{order}"),
            parties_staff(&[Mediator, Finance]),
        ),
        (
            format!("/orders/{order}/history"),
            parties_staff(&[Mediator]),
        ),
        (
            format!("/orders/{closed}/review-window"),
            parties_staff(&[Mediator]),
        ),
        // Everyone but a service lists orders: parties see their own.
        (
            "/orders".into(),
            vec![
                BuyerParty,
                BuyerOther,
                SellerParty,
                SellerOther,
                Mediator,
                Finance,
            ],
        ),
        (
            format!("/orders?buyer={}", people.buyer.id),
            vec![BuyerParty, SellerParty, SellerOther, Mediator, Finance],
        ),
        (
            format!("/orders?seller={}", people.seller.id),
            vec![BuyerParty, BuyerOther, SellerParty, Mediator, Finance],
        ),
        ("/disputes".into(), vec![Mediator, Finance]),
        ("/escrow".into(), vec![Mediator, Finance]),
        (
            "/escrow/orders?min_age_days=0".into(),
            vec![Mediator, Finance],
        ),
        (
            format!("/wallets/{}", people.buyer.id),
            vec![BuyerParty, Finance],
        ),
        (
            format!("/wallets/{}", people.seller.id),
            vec![SellerParty, Finance],
        ),
        (
            format!("/sellers/{}/completion-rate", people.seller.id),
            CALLERS.to_vec(),
        ),
        // A buyer gets their own.
        (
            "/review-windows?closing_within_days=200".into(),
            vec![BuyerParty, BuyerOther, Service, Mediator],
        ),
        ("/journal?from=0".into(), vec![Finance]),
        ("/trial-balance".into(), vec![Finance]),
        ("/streams/$all".into(), vec![Service, Mediator]),
        (format!("/streams/order-{order}"), vec![Service, Mediator]),
    ];
    for (path, allowed) in &reads {
        for caller in CALLERS {
            let what = format!("{caller:?} GET {path}");
            let response = server
                .client()
                .get(server.url(path))
                .bearer_auth(&people.who(caller).token)
                .send()
                .await
                .expect("request");
            let status = response.status();
            // Event streams never end: look at the status and let go.
            let body: Value = if status == StatusCode::OK && path.starts_with("/streams") {
                Value::Null
            } else {
                response.json().await.unwrap_or(Value::Null)
            };
            assert_allowed(status, allowed.contains(&caller), &what, &body);
            if allowed.contains(&caller) {
                assert_eq!(status, StatusCode::OK, "{what}: {body}");
            }
        }
    }
    // A buyer listing orders sees only their own.
    let theirs = server.get(&people.other_buyer, "/orders").await.ok();
    assert_eq!(theirs["orders"], json!([]), "{theirs}");
}

#[tokio::test]
async fn no_route_but_health_metrics_and_openapi_answers_without_a_token() {
    let server = Server::start();
    let id = Uuid::new_v4();
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let status = server
            .client()
            .get(server.url(path))
            .send()
            .await
            .expect("get")
            .status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let gets = [
        format!("/orders/{id}"),
        format!("/orders/{id}/history"),
        "/orders".into(),
        "/disputes".into(),
        "/escrow".into(),
        "/escrow/orders".into(),
        format!("/wallets/{id}"),
        format!("/sellers/{id}/completion-rate"),
        format!("/orders/{id}/review-window"),
        "/review-windows".into(),
        "/journal".into(),
        "/trial-balance".into(),
        "/streams/$all".into(),
        "/dev/clock".into(),
    ];
    for path in gets {
        let reply = server.send(server.client().get(server.url(&path))).await;
        reply.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
        assert_eq!(
            reply.headers.get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }
    let mut posts = vec!["/orders".to_owned()];
    posts.extend(
        command_routes()
            .into_iter()
            .map(|r| format!("/orders/{id}/{}", r.action)),
    );
    for path in posts {
        let reply = server
            .send(server.client().post(server.url(&path)).json(&json!({})))
            .await;
        reply.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    assert_eq!(server.log_head().await, None, "nothing appended");
}

/// The scheme is case-insensitive (RFC 9110, 11.1); a scheme other than Bearer, or none,
/// or no token after it, is refused.
#[tokio::test]
async fn the_bearer_scheme_is_read_whatever_its_case() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "10.00").await;
    let path = format!("/orders/{order}");
    let with = |value: String| {
        server
            .client()
            .get(server.url(&path))
            .header("Authorization", value)
    };
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let reply = server.send(with(format!("{scheme} {}", buyer.token))).await;
        assert_eq!(reply.ok()["order_id"], order.to_string(), "{scheme}");
    }
    for refused in [
        format!("Basic {}", buyer.token),
        format!("Bearer{}", buyer.token),
        buyer.token.clone(),
        "Bearer ".to_owned(),
    ] {
        let reply = server.send(with(refused.clone())).await;
        reply.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

/// Tokens from another issuer follow RFC 7519, not `ledger token`: `iat` may be missing, and
/// `nbf` ahead means not yet. A refusal says what is wrong with the token in words.
#[tokio::test]
async fn a_token_is_judged_by_its_signature_sub_role_exp_and_nbf_alone() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "10.00").await;
    let path = format!("/orders/{order}");
    let now = chrono::Utc::now().timestamp();
    let signed = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("token")
    };
    let read_with = |token: String| server.client().get(server.url(&path)).bearer_auth(token);
    let claims = json!({"sub": buyer.id, "role": "buyer", "exp": now + 600});
    let reply = server.send(read_with(signed(claims.clone()))).await;
    assert_eq!(reply.ok()["order_id"], order.to_string(), "no `iat`");
    let mut valid_since = claims.clone();
    valid_since["nbf"] = json!(now - 60);
    let reply = server.send(read_with(signed(valid_since))).await;
    assert_eq!(reply.ok()["order_id"], order.to_string(), "`nbf` past");

    let mut not_yet = claims.clone();
    not_yet["nbf"] = json!(now + 300);
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 120);
    let mut no_exp = claims;
    no_exp.as_object_mut().expect("claims").remove("exp");
    for (token, words) in [
        (signed(not_yet), "not valid yet"),
        (signed(expired), "expired"),
        (signed(no_exp), "`exp`"),
        ("not-a-token".to_owned(), "not a JWT"),
    ] {
        let reply = server.send(read_with(token)).await;
        let detail = reply.body["detail"].as_str().unwrap_or_default().to_owned();
        reply.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
        assert!(detail.contains(words), "{words}: {detail}");
    }
}
