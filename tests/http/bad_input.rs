//! Bad input, route by route: each answered with the right 4xx problem document, never a 5xx,
//! and nothing appended.

use crate::support::{command_routes, token, user, Sender, Server, User, SECRET};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// A body with the first field of `body` given the wrong JSON type.
fn wrong_type(body: &Value) -> Option<Value> {
    let mut body = body.clone();
    let (key, value) = body
        .as_object()?
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))?;
    let wrong = match value {
        Value::String(_) => json!(12),
        _ => json!({"nested": true}),
    };
    body[key.as_str()] = wrong;
    Some(body)
}

async fn send_raw(
    server: &Server,
    who: Option<&str>,
    path: &str,
    body: Vec<u8>,
) -> crate::support::Reply {
    let mut request = server
        .client()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = who {
        request = request.bearer_auth(token);
    }
    server.send(request).await
}

fn sender_of(sender: Sender, people: &(User, User, User)) -> User {
    let (buyer, seller, mediator) = people;
    match sender {
        Sender::Buyer => buyer.clone(),
        Sender::Seller | Sender::EitherParty => seller.clone(),
        Sender::Mediator => mediator.clone(),
    }
}

#[tokio::test]
async fn bad_input_on_every_command_route_is_a_4xx_problem_and_appends_nothing() {
    let server = Server::start();
    let people = (user("buyer"), user("seller"), user("mediator"));
    let order = server.place(&people.0, &people.1, "100.00").await;
    server.act(&people.1, order, "confirm", json!({})).await;
    let head = server.log_head().await;
    let expired = token("buyer", people.0.id, Duration::seconds(-120), SECRET);
    let forged = token(
        "buyer",
        people.0.id,
        Duration::hours(1),
        "someone-else's-secret",
    );
    let oversized = {
        let mut body = json!({"reason": "x".repeat(70 * 1024)});
        body["message"] = body["reason"].clone();
        serde_json::to_vec(&body).expect("json")
    };

    for route in command_routes() {
        let (action, body, amount_field) = (route.action, route.body, route.amount_field);
        let who = sender_of(route.sender, &people);
        let path = format!("/orders/{order}/{action}");
        let valid = serde_json::to_vec(&body).expect("json");
        let with_extra_field = {
            let mut b = body.clone();
            b["surprise"] = json!(1);
            serde_json::to_vec(&b).expect("json")
        };
        let case =
            |what: &str, token: Option<&str>, path: &str, body: Vec<u8>, status, code| Case {
                what: what.to_owned(),
                token: token.map(str::to_owned),
                path: path.to_owned(),
                body,
                status,
                code,
            };
        let mine = Some(who.token.as_str());
        let (bad, unauthorized) = (StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED);
        let mut cases = vec![
            case(
                "malformed JSON",
                mine,
                &path,
                b"{\"reason\": ".to_vec(),
                bad,
                "malformed_body",
            ),
            case(
                "not an object",
                mine,
                &path,
                b"[1, 2]".to_vec(),
                bad,
                "malformed_body",
            ),
            case(
                "unknown field",
                mine,
                &path,
                with_extra_field,
                bad,
                "malformed_body",
            ),
            case(
                "no token",
                None,
                &path,
                valid.clone(),
                unauthorized,
                "unauthenticated",
            ),
            case(
                "expired token",
                Some(&expired),
                &path,
                valid.clone(),
                unauthorized,
                "unauthenticated",
            ),
            case(
                "forged token",
                Some(&forged),
                &path,
                valid.clone(),
                unauthorized,
                "unauthenticated",
            ),
            case(
                "garbage token",
                Some("not.a.jwt"),
                &path,
                valid.clone(),
                unauthorized,
                "unauthenticated",
            ),
            case(
                "oversized body",
                mine,
                &path,
                oversized.clone(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
            case(
                "not a uuid",
                mine,
                &format!("/orders/not-a-uuid/{action}"),
                valid.clone(),
                bad,
                "invalid_path",
            ),
            // An unknown order: the rules cannot even find it.
            case(
                "unknown order",
                mine,
                &format!("/orders/{}/{action}", Uuid::new_v4()),
                valid.clone(),
                StatusCode::NOT_FOUND,
                "order_not_found",
            ),
        ];
        if let Some(wrong) = wrong_type(&body) {
            cases.push(case(
                "wrong type",
                mine,
                &path,
                serde_json::to_vec(&wrong).expect("json"),
                bad,
                "malformed_body",
            ));
        }
        if let Some(field) = amount_field {
            for (what, amount, code) in [
                ("float amount", json!(1.5), "malformed_body"),
                ("negative amount", json!("-1.00"), "invalid_amount"),
                ("over-scale amount", json!("1.001"), "invalid_amount"),
                ("not a number", json!("ten"), "invalid_amount"),
                (
                    "huge amount",
                    json!("1000000000000000000000.00"),
                    "invalid_amount",
                ),
            ] {
                let mut wrong = body.clone();
                wrong[field] = amount;
                cases.push(case(
                    what,
                    mine,
                    &path,
                    serde_json::to_vec(&wrong).expect("json"),
                    bad,
                    code,
                ));
            }
        }
        for case in cases {
            let reply = send_raw(&server, case.token.as_deref(), &case.path, case.body).await;
            let what = &case.what;
            assert!(
                reply.status.is_client_error(),
                "{action}, {what}: {}",
                reply.status
            );
            reply.problem(case.status, case.code);
            assert_eq!(
                server.log_head().await,
                head,
                "{action}, {what}: nothing appended"
            );
        }
    }
}

struct Case {
    what: String,
    token: Option<String>,
    path: String,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

#[tokio::test]
async fn bad_input_when_placing_is_a_4xx_problem_and_appends_nothing() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let valid = json!({"seller_id": seller.id, "title": "t", "price": "10.00", "currency": "EUR", "delivery_days": 2});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let cases = [
        (
            "float price",
            with("price", json!(10.5)),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "negative price",
            with("price", json!("-10.00")),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            "over-scale price",
            with("price", json!("10.001")),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            "yen with cents",
            {
                let mut b = with("currency", json!("JPY"));
                b["price"] = json!("10.50");
                b
            },
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            "unknown currency",
            with("currency", json!("EUX")),
            StatusCode::BAD_REQUEST,
            "invalid_currency",
        ),
        (
            "lowercase nonsense",
            with("currency", json!("euro")),
            StatusCode::BAD_REQUEST,
            "invalid_currency",
        ),
        (
            "the timers' id as seller",
            with("seller_id", json!(uuid::Uuid::nil())),
            StatusCode::UNPROCESSABLE_ENTITY,
            "system_user_id",
        ),
        (
            "a currency replaced by the euro",
            with("currency", json!("HRK")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_not_payable",
        ),
        (
            "a fund, not money",
            {
                let mut b = with("currency", json!("CLF"));
                b["price"] = json!("10.0000");
                b
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_not_payable",
        ),
        (
            "seller not a uuid",
            with("seller_id", json!("bob")),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "negative days",
            with("delivery_days", json!(-1)),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "missing title",
            {
                let mut b = valid.clone();
                b.as_object_mut().map(|o| o.remove("title"));
                b
            },
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "zero price",
            with("price", json!("0.00")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_not_positive",
        ),
        (
            "zero days",
            with("delivery_days", json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "days_out_of_range",
        ),
        (
            "empty title",
            with("title", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "text_empty",
        ),
        (
            "a NUL in the title",
            with("title", json!("a\u{0}logo")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "text_control_character",
        ),
        (
            "buying from oneself",
            with("seller_id", json!(buyer.id)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "buyer_is_seller",
        ),
    ];
    for (what, body, status, code) in cases {
        let reply = server.post(&buyer, "/orders", body).await;
        reply.problem(status, code);
        assert_eq!(server.log_head().await, None, "{what}: nothing appended");
    }
    // A rating out of range is a domain rule, not a type error.
    let order = server.place(&buyer, &seller, "10.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    server
        .act(&seller, order, "deliver", json!({"message": "m"}))
        .await;
    server.act(&buyer, order, "close", json!({})).await;
    let head = server.log_head().await;
    server
        .post(
            &buyer,
            &format!("/orders/{order}/review"),
            json!({"rating": 6}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "rating_out_of_range");
    server
        .post(
            &buyer,
            &format!("/orders/{order}/review"),
            json!({"rating": 300}),
        )
        .await
        .problem(StatusCode::BAD_REQUEST, "malformed_body");
    assert_eq!(server.log_head().await, head);
}

/// A client that sends a command's head and stops halfway through its body is answered 408
/// and let go, not waited for; nothing is appended.
#[tokio::test]
async fn a_body_that_stops_halfway_is_answered_408_and_appends_nothing() {
    use std::io::{Read, Write};
    let server = Server::start();
    let buyer = user("buyer");
    let address = server.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /orders HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"seller_id\": ",
        buyer.token
    );
    let reply = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream.write_all(head.as_bytes()).expect("head");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(40)))
            .expect("timeout");
        let mut reply = Vec::new();
        // The service closes the connection after its answer; a timeout is the client's own.
        stream.read_to_end(&mut reply).map(|_| reply)
    })
    .await
    .expect("client")
    .expect("the service answered and closed the connection");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("application/problem+json"), "{reply}");
    assert!(reply.contains("\"code\":\"body_timeout\""), "{reply}");
    assert_eq!(server.log_head().await, None, "nothing appended");
}

/// A parameter a read does not take is refused, by name, never answered as if it were not
/// there: `/orders/{id}?at=` would show the order as it is now, `/journal?to=` the whole
/// journal, each looking like an answer to what was asked.
#[tokio::test]
async fn a_parameter_a_read_does_not_take_is_refused_by_name() {
    let server = Server::start();
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let (finance, service) = (user("finance"), user("service"));
    let order = server.place(&buyer, &seller, "100.00").await;
    let reads = [
        (
            &mediator,
            format!("/orders/{order}"),
            "at=2026-01-01T00:00:00Z",
        ),
        (&mediator, format!("/orders/{order}/history"), "revison=0"),
        (
            &mediator,
            format!("/orders/{order}/review-window"),
            "at=2026-01-01T00:00:00Z",
        ),
        (&finance, "/orders".to_owned(), "status=Placed"),
        (&mediator, "/disputes".to_owned(), "state=InDispute"),
        (&finance, "/escrow".to_owned(), "currency=EUR"),
        (&finance, "/escrow/orders".to_owned(), "min_age=30"),
        (&finance, format!("/wallets/{}", buyer.id), "to=3"),
        (
            &buyer,
            format!("/sellers/{}/completion-rate", seller.id),
            "days=30",
        ),
        (&finance, "/journal".to_owned(), "to=2026-11-30T23:59:59Z"),
        (
            &finance,
            "/trial-balance".to_owned(),
            "as_of=2026-11-30T23:59:59Z",
        ),
        (&service, "/streams/$all".to_owned(), "type=OrderPlaced"),
        (&service, format!("/streams/order-{order}"), "position=0"),
    ];
    for (who, path, parameter) in reads {
        if !path.starts_with("/streams/") {
            let plain = server.get(who, &path).await;
            assert!(
                plain.status != StatusCode::BAD_REQUEST,
                "{path}: {}",
                plain.body
            );
        }
        let reply = server.get(who, &format!("{path}?{parameter}")).await;
        reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
        let name = parameter.split('=').next().unwrap_or_default();
        assert!(
            reply.body["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains(&format!("`{name}`"))),
            "{path}?{parameter}: {}",
            reply.body
        );
    }
}

/// A buyer with an order, a mediator and finance: who reads what the query tables ask.
async fn readers_and_an_order(server: &Server) -> (User, User, User, Uuid) {
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "100.00").await;
    (buyer, user("mediator"), user("finance"), order)
}

/// An instant in a query that is not one is answered with the parameter and what was
/// sent, for every read that takes an instant: a month's end mistyped never reads as now.
#[tokio::test]
async fn a_query_instant_that_is_not_one_is_answered_with_what_was_sent() {
    let server = Server::start();
    let (buyer, mediator, finance, order) = readers_and_an_order(&server).await;
    let reads = [
        (&mediator, format!("/orders/{order}/history"), "at"),
        (&finance, "/journal".to_owned(), "after"),
        (&finance, "/journal".to_owned(), "until"),
        (&finance, "/trial-balance".to_owned(), "at"),
        (&finance, "/trial-balance".to_owned(), "after"),
        (&mediator, "/escrow".to_owned(), "at"),
        (&finance, format!("/wallets/{}", buyer.id), "after"),
        (&buyer, format!("/wallets/{}", buyer.id), "until"),
    ];
    for (who, path, name) in reads {
        for sent in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-30",
            "1764547199",
        ] {
            let reply = server.get(who, &format!("{path}?{name}={sent}")).await;
            reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
            let detail = reply.body["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(&format!("{name}: `{sent}` is not an RFC 3339 instant")),
                "{path}?{name}={sent}: {detail}"
            );
        }
    }
}

/// A number in a query that is not one is answered with the parameter, what was sent and
/// what is wanted, for every read that takes a number.
#[tokio::test]
async fn a_query_number_that_is_not_one_is_answered_with_what_was_sent() {
    let server = Server::start();
    let (buyer, mediator, finance, order) = readers_and_an_order(&server).await;
    let reads = [
        (&mediator, format!("/orders/{order}/history"), "revision"),
        (&finance, "/orders".to_owned(), "limit"),
        (&mediator, "/disputes".to_owned(), "limit"),
        (&finance, "/journal".to_owned(), "from"),
        (&finance, "/journal".to_owned(), "limit"),
        (&finance, format!("/wallets/{}", buyer.id), "from"),
        (&finance, "/escrow/orders".to_owned(), "limit"),
    ];
    for (who, path, name) in reads {
        for sent in ["-1", "ten", "1.5"] {
            let reply = server.get(who, &format!("{path}?{name}={sent}")).await;
            reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
            let detail = reply.body["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(&format!("{name}: `{sent}` is not a whole number")),
                "{path}?{name}={sent}: {detail}"
            );
        }
        let too_large = "99999999999999999999999";
        let reply = server.get(who, &format!("{path}?{name}={too_large}")).await;
        reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!("{name}: {too_large} is ")) && detail.contains("at most"),
            "{path}?{name}={too_large}: {detail}"
        );
    }
}

/// A command's input is its body: a query string is refused and nothing appended, lest
/// `refunds?dry_run=true` be taken for an option and refund for real.
#[tokio::test]
async fn a_command_with_a_query_string_is_refused_and_appends_nothing() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "100.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    let head = server.log_head().await;
    let refund = json!({ "amount": "10.00", "reason": "a discount" });
    let reply = server
        .post(
            &seller,
            &format!("/orders/{order}/refunds?dry_run=true"),
            refund.clone(),
        )
        .await;
    reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("`dry_run`")),
        "{}",
        reply.body
    );
    let placing = json!({
        "seller_id": seller.id, "title": "A logo", "price": "5.00", "currency": "EUR",
        "delivery_days": 3
    });
    server
        .post(&buyer, "/orders?currency=USD", placing)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(server.log_head().await, head, "something was appended");
    // Without it, the same command is taken.
    let refunded = server
        .post(&seller, &format!("/orders/{order}/refunds"), refund)
        .await
        .ok();
    assert_eq!(
        refunded["order"]["escrow_held"]["amount"], "90.00",
        "{refunded}"
    );
}
