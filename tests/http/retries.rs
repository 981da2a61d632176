//! Order ids, `Idempotency-Key` and `If-Match`: a retried command acts once, a stale one not at
//! all.

use crate::support::{user, Server, User};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_retried_refund_pays_once_and_gets_the_first_response_again() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "100.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    let refund = |key: &'static str, amount: &'static str| {
        server.send(
            server
                .client()
                .post(server.url(&format!("/orders/{order}/refunds")))
                .bearer_auth(&seller.token)
                .header("Idempotency-Key", key)
                .json(&json!({ "amount": amount, "reason": "one file missing" })),
        )
    };
    let first = refund("refund-1", "10.00").await;
    let head = server.log_head().await;
    let again = refund("refund-1", "10.00").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(again.status, first.status);
    assert_eq!(again.body, first.body, "the very same body");
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(server.log_head().await, head, "nothing appended");
    assert_eq!(
        server.wallet_eur(&buyer, buyer.id).await.as_deref(),
        Some("10.00")
    );

    refund("refund-1", "20.00")
        .await
        .problem(StatusCode::CONFLICT, "idempotency_key_reused");
    assert_eq!(server.log_head().await, head);
}

#[tokio::test]
async fn a_placement_answers_where_the_order_is_and_the_revision_to_match() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let placed = server
        .post(
            &buyer,
            "/orders",
            json!({"seller_id": seller.id, "title": "A logo", "price": "40.00",
                   "currency": "EUR", "delivery_days": 3}),
        )
        .await;
    let header = |name: &str| {
        placed
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("etag").as_deref(), Some("\"0\""));
    let location = header("location").expect("a Location header");
    let order = placed.expect(StatusCode::CREATED)["order_id"].clone();
    assert_eq!(server.get(&buyer, &location).await.ok()["order_id"], order);
}

#[tokio::test]
async fn orders_placed_without_an_id_get_time_ordered_ids() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(server.place(&buyer, &seller, "5.00").await);
        // v7 ids order by the millisecond they were made in.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
    assert!(ids.is_sorted(), "{ids:?}");
}

#[tokio::test]
async fn a_place_retried_without_an_order_id_places_one_order() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let place = || {
        server.send(
            server
                .client()
                .post(server.url("/orders"))
                .bearer_auth(&buyer.token)
                .header("Idempotency-Key", "checkout-42")
                .json(&json!({"seller_id": seller.id, "title": "t", "price": "5.00", "currency": "EUR", "delivery_days": 1})),
        )
    };
    let first = place().await;
    let second = place().await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    let mine = server.get(&buyer, "/orders").await.ok();
    assert_eq!(mine["orders"].as_array().map(Vec::len), Some(1), "{mine}");
}

#[tokio::test]
async fn if_match_makes_a_command_conditional_on_the_revision() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "100.00").await;
    // Each value its own `If-Match` line.
    let confirm = |lines: &[&'static str]| {
        let request = lines.iter().fold(
            server
                .client()
                .post(server.url(&format!("/orders/{order}/confirm")))
                .bearer_auth(&seller.token),
            |request, line| request.header("If-Match", *line),
        );
        server.send(request)
    };
    let head = server.log_head().await;
    for stale in [&["\"3\""][..], &["\"3\", \"4\""], &["\"3\"", "\"4\""]] {
        let refused = confirm(stale).await;
        refused.problem(StatusCode::PRECONDITION_FAILED, "stale_revision");
        assert!(
            refused.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("revision 0")),
            "{}",
            refused.body
        );
    }
    for malformed in [
        &["not-a-revision"][..],
        &["*, \"0\""],
        &["*", "\"0\""],
        &[" , "],
    ] {
        confirm(malformed)
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_header");
    }
    assert_eq!(server.log_head().await, head);
    // Any of a list, on one line or on several, empty elements ignored (RFC 9110).
    let confirmed = confirm(&["\"7\"", "\"5\", , \"0\","]).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(
        confirmed.headers.get("etag").map(|v| v.as_bytes()),
        Some(&b"\"1\""[..])
    );
    // `*`: any revision of an order that exists (RFC 9110), as some HTTP clients send.
    let delivered = server
        .send(
            server
                .client()
                .post(server.url(&format!("/orders/{order}/deliver")))
                .bearer_auth(&seller.token)
                .header("If-Match", "*")
                .json(&json!({"message": "done"})),
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{}", delivered.body);
}

/// A stale `If-Match` from someone who may not act on the order, or on an order that does not
/// exist, is answered as the request would be without it (RFC 9110 §13.2.1): 403 or 404, and
/// nothing of the order's revision.
#[tokio::test]
async fn if_match_is_weighed_only_once_the_caller_may_act_on_the_order() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "100.00").await;
    let confirm = |who: &User, order: uuid::Uuid| {
        server.send(
            server
                .client()
                .post(server.url(&format!("/orders/{order}/confirm")))
                .bearer_auth(&who.token)
                .header("If-Match", "\"3\""),
        )
    };
    let head = server.log_head().await;
    let stranger = confirm(&user("seller"), order).await;
    stranger.problem(StatusCode::FORBIDDEN, "not_a_party");
    assert!(
        !stranger.body.to_string().contains("revision 0"),
        "{}",
        stranger.body
    );
    confirm(&user("finance"), order)
        .await
        .problem(StatusCode::FORBIDDEN, "role_not_allowed");
    confirm(&seller, uuid::Uuid::new_v4())
        .await
        .problem(StatusCode::NOT_FOUND, "order_not_found");
    confirm(&seller, order)
        .await
        .problem(StatusCode::PRECONDITION_FAILED, "stale_revision");
    assert_eq!(server.log_head().await, head);
}

/// A mediator reads the order and acts only on what they read: the summary's `ETag` is the
/// revision `If-Match` takes, and someone else's change in between makes it stale.
#[tokio::test]
async fn the_etag_of_a_read_order_makes_a_later_command_conditional_on_it() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "100.00").await;
    let as_placed = etag_of(&server, &buyer, order).await;
    assert_eq!(as_placed, "\"0\"");
    let confirmed = server
        .send(
            server
                .client()
                .post(server.url(&format!("/orders/{order}/confirm")))
                .bearer_auth(&seller.token)
                .header("If-Match", &as_placed),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(etag_of(&server, &seller, order).await, "\"1\"");
    // The buyer still holds the order as placed: their cancellation is refused, not applied
    // to an order that has moved on.
    let head = server.log_head().await;
    server
        .send(
            server
                .client()
                .post(server.url(&format!("/orders/{order}/cancel")))
                .bearer_auth(&buyer.token)
                .header("If-Match", &as_placed)
                .json(&json!({"reason": "changed my mind"})),
        )
        .await
        .problem(StatusCode::PRECONDITION_FAILED, "stale_revision");
    assert_eq!(server.log_head().await, head);
    assert_eq!(etag_of(&server, &buyer, order).await, "\"1\"");
}

/// The `ETag` of the order as `who` reads it.
async fn etag_of(server: &Server, who: &User, order: uuid::Uuid) -> String {
    let read = server
        .send(
            server
                .client()
                .get(server.url(&format!("/orders/{order}")))
                .bearer_auth(&who.token),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    read.headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("an ETag")
}

/// The document types days and ratings as JSON Schema's `integer`, which takes `5.0`: a client
/// whose numbers are floats places the order one sending `5` would, a retry with either is the
/// same command, and `2.5` days is no count at all.
#[tokio::test]
async fn whole_numbers_written_as_floats_are_those_numbers() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let place = |key: &'static str, days: serde_json::Value| {
        server.send(
            server
                .client()
                .post(server.url("/orders"))
                .bearer_auth(&buyer.token)
                .header("Idempotency-Key", key)
                .json(
                    &json!({"seller_id": seller.id, "title": "t", "price": "5.00",
                              "currency": "EUR", "delivery_days": days}),
                ),
        )
    };
    let first = place("floats-1", json!(5.0)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["events"][0]["data"]["delivery_days"], json!(5));
    let head = server.log_head().await;
    let again = place("floats-1", json!(5)).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    place("floats-2", json!(2.5))
        .await
        .problem(StatusCode::BAD_REQUEST, "malformed_body");
    place("floats-3", json!(-1.0))
        .await
        .problem(StatusCode::BAD_REQUEST, "malformed_body");
    assert_eq!(server.log_head().await, head, "nothing more appended");

    let order: uuid::Uuid = first.body["order_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("an order id");
    server.act(&seller, order, "confirm", json!({})).await;
    server
        .act(&seller, order, "deliver", json!({"message": "m"}))
        .await;
    server.act(&buyer, order, "close", json!({})).await;
    let reviewed = server
        .act(&buyer, order, "review", json!({"rating": 4.0}))
        .await;
    assert_eq!(
        reviewed["events"][0]["data"]["rating"],
        json!(4),
        "{reviewed}"
    );
}
