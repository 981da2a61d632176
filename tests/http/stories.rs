//! The seed stories, end to end over HTTP, with the views checked after.

use crate::support::{parse_instant, user, Server};
use chrono::{Duration, Months};
use reqwest::StatusCode;
use serde_json::json;

async fn delivered(
    server: &Server,
    buyer: &crate::support::User,
    seller: &crate::support::User,
) -> uuid::Uuid {
    let order = server.place(buyer, seller, "200.00").await;
    server.act(seller, order, "confirm", json!({})).await;
    server
        .act(seller, order, "deliver", json!({ "message": "here it is" }))
        .await;
    order
}

async fn refused_revision(
    server: &Server,
    buyer: &crate::support::User,
    seller: &crate::support::User,
) -> uuid::Uuid {
    let order = delivered(server, buyer, seller).await;
    server
        .act(
            buyer,
            order,
            "revision/request",
            json!({ "reason": "colours" }),
        )
        .await;
    server
        .act(
            seller,
            order,
            "revision/refuse",
            json!({ "reason": "as agreed" }),
        )
        .await;
    order
}

#[tokio::test]
async fn a_refused_revision_then_the_buyer_closes_pays_the_seller_less_commission() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let order = refused_revision(&server, &buyer, &seller).await;
    let closed = server.act(&buyer, order, "close", json!({})).await;
    assert_eq!(closed["order"]["status"], "Closed");
    assert_eq!(closed["events"][0]["type"], "OrderClosed");

    assert_eq!(
        server.wallet_eur(&seller, seller.id).await.as_deref(),
        Some("160.00")
    );
    let trial = server.get(&finance, "/trial-balance").await.ok();
    assert_eq!(trial["accounts"]["commission"]["EUR"], "40.00", "{trial}");
    let escrow = server.get(&finance, "/escrow").await.ok();
    assert_eq!(escrow["currencies"], json!([]), "no escrow left: {escrow}");
    let rate = server
        .get(&buyer, &format!("/sellers/{}/completion-rate", seller.id))
        .await
        .ok();
    assert_eq!(rate["all_time"]["completed"], 1, "{rate}");
    assert_eq!(rate["all_time"]["counted_cancellations"], 0, "{rate}");
    assert_eq!(rate["all_time"]["rate"], "1.0000", "{rate}");
    server.assert_books_balance().await;
}

#[tokio::test]
async fn a_refused_revision_left_seven_days_auto_closes() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = refused_revision(&server, &buyer, &seller).await;
    let summary = server.order(&buyer, order).await;
    let deadline = parse_instant(&summary["decision_deadline"]);
    let history = server
        .get(&user("mediator"), &format!("/orders/{order}/history"))
        .await
        .ok();
    let refused_at = parse_instant(&history["entries"][4]["at"]);
    assert_eq!(history["entries"][4]["event_type"], "RevisionRefused");
    assert_eq!(deadline - refused_at, Duration::days(7));
    // A moment before the deadline nothing happens.
    server.advance(deadline - Duration::minutes(1)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        server.order(&buyer, order).await["status"],
        "RevisionRefused"
    );

    server.advance(deadline).await;
    let closed = server
        .wait_for_order(&buyer, order, |o| o["status"] == "Closed")
        .await;
    assert!(closed["closed_at"].is_string());
    assert_eq!(
        server.wallet_eur(&seller, seller.id).await.as_deref(),
        Some("160.00")
    );
    let history = server
        .get(&user("mediator"), &format!("/orders/{order}/history"))
        .await
        .ok();
    let last = history["entries"]
        .as_array()
        .and_then(|e| e.last())
        .cloned();
    let last = last.expect("entries");
    assert_eq!(last["event_type"], "OrderClosed", "{last}");
    assert_eq!(
        last["event"]["data"]["cause"], "auto_closed_after_refused_revision",
        "{last}"
    );
    assert_eq!(last["actor"]["role"], "system", "{last}");
    server.assert_books_balance().await;
}

#[tokio::test]
async fn a_late_order_cancelled_by_the_buyer_refunds_in_full_and_counts_against_the_seller() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "200.00").await;
    let confirmed = server.act(&seller, order, "confirm", json!({})).await;
    let due = parse_instant(&confirmed["order"]["due_at"]);

    server
        .post(
            &buyer,
            &format!("/orders/{order}/cancel"),
            json!({ "reason": "late" }),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "not_late_yet");
    server.advance(due + Duration::minutes(1)).await;
    assert_eq!(server.order(&buyer, order).await["late"], true);
    let cancelled = server
        .act(&buyer, order, "cancel", json!({ "reason": "late" }))
        .await;
    assert_eq!(cancelled["order"]["status"], "Cancelled");

    assert_eq!(
        server.wallet_eur(&buyer, buyer.id).await.as_deref(),
        Some("200.00")
    );
    assert_eq!(server.wallet_eur(&seller, seller.id).await, None);
    let rate = server
        .get(&seller, &format!("/sellers/{}/completion-rate", seller.id))
        .await
        .ok();
    assert_eq!(rate["all_time"]["counted_cancellations"], 1, "{rate}");
    assert_eq!(rate["all_time"]["rate"], "0.0000", "{rate}");
    server.assert_books_balance().await;
}

#[tokio::test]
async fn a_mutual_cancellation_refunds_the_buyer_and_is_not_counted() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "200.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    server
        .act(
            &seller,
            order,
            "cancellation/request",
            json!({ "reason": "overbooked" }),
        )
        .await;
    let pending = server.order(&buyer, order).await;
    assert_eq!(pending["cancellation_requested_by"], "seller", "{pending}");
    let cancelled = server
        .act(&buyer, order, "cancellation/accept", json!({}))
        .await;
    assert_eq!(cancelled["order"]["status"], "Cancelled");

    assert_eq!(
        server.wallet_eur(&buyer, buyer.id).await.as_deref(),
        Some("200.00")
    );
    let rate = server
        .get(&seller, &format!("/sellers/{}/completion-rate", seller.id))
        .await
        .ok();
    assert_eq!(rate["all_time"]["counted_cancellations"], 0, "{rate}");
    assert_eq!(rate["all_time"]["completed"], 0, "{rate}");
    server.assert_books_balance().await;
}

#[tokio::test]
async fn a_dispute_split_by_a_mediator_refunds_part_and_releases_the_rest() {
    let server = Server::start();
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let order = delivered(&server, &buyer, &seller).await;
    let disputed = server
        .act(
            &buyer,
            order,
            "dispute",
            json!({ "reason": "half missing" }),
        )
        .await;
    let opened_at = parse_instant(&disputed["events"][0]["data"]["at"]);
    server
        .post(&buyer, &format!("/orders/{order}/close"), json!({}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "order_in_dispute");
    // The mediator's queue says how long each dispute has waited, and why it was opened.
    server.advance(opened_at + Duration::days(2)).await;
    let queue = server.get(&mediator, "/disputes").await.ok();
    assert_eq!(
        queue["disputes"][0]["order_id"],
        order.to_string(),
        "{queue}"
    );
    assert_eq!(
        parse_instant(&queue["disputes"][0]["dispute_opened_at"]),
        opened_at,
        "{queue}"
    );
    assert_eq!(queue["disputes"][0]["dispute_reason"], "half missing");
    let resolved = server
        .act(
            &mediator,
            order,
            "dispute/resolve",
            json!({ "outcome": "split", "refund": "80.00", "note": "half delivered" }),
        )
        .await;
    assert_eq!(resolved["order"]["status"], "Closed");
    let queue = server.get(&mediator, "/disputes").await.ok();
    assert_eq!(queue["disputes"], json!([]), "{queue}");
    let summary = server.order(&mediator, order).await;
    assert_eq!(parse_instant(&summary["dispute_opened_at"]), opened_at);
    assert_eq!(
        summary["dispute_reason"], "half missing",
        "kept once resolved"
    );
    let last_event = resolved["events"].as_array().and_then(|e| e.last());
    assert_eq!(
        summary["last_event_at"],
        last_event.expect("events")["data"]["at"]
    );
    assert!(parse_instant(&summary["last_event_at"]) >= opened_at + Duration::days(2));

    assert_eq!(
        server.wallet_eur(&buyer, buyer.id).await.as_deref(),
        Some("80.00")
    );
    assert_eq!(
        server.wallet_eur(&seller, seller.id).await.as_deref(),
        Some("96.00")
    );
    let finance = user("finance");
    let trial = server.get(&finance, "/trial-balance").await.ok();
    assert_eq!(trial["accounts"]["commission"]["EUR"], "24.00", "{trial}");
    server.assert_books_balance().await;
}

#[tokio::test]
async fn a_review_five_months_after_close_is_accepted_and_six_months_and_a_day_is_refused() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let mut closed = Vec::new();
    for _ in 0..2 {
        let order = delivered(&server, &buyer, &seller).await;
        server.act(&buyer, order, "close", json!({})).await;
        closed.push(order);
    }
    let closed_at = parse_instant(&server.order(&buyer, closed[1]).await["closed_at"]);

    server
        .advance(closed_at.checked_add_months(Months::new(5)).expect("date"))
        .await;
    let reviewed = server
        .act(
            &buyer,
            closed[0],
            "review",
            json!({ "rating": 5, "comment": "great" }),
        )
        .await;
    assert_eq!(reviewed["order"]["review_rating"], 5);

    server
        .advance(closed_at.checked_add_months(Months::new(6)).expect("date") + Duration::days(1))
        .await;
    server
        .post(
            &buyer,
            &format!("/orders/{}/review", closed[1]),
            json!({ "rating": 4 }),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "review_window_closed");
    let window = server
        .get(&buyer, &format!("/orders/{}/review-window", closed[1]))
        .await
        .ok();
    assert_eq!(window["open"], false, "{window}");
    assert!(window["window"]["review"].is_null(), "{window}");
    let window = server
        .get(&buyer, &format!("/orders/{}/review-window", closed[0]))
        .await
        .ok();
    assert_eq!(window["window"]["review"]["rating"], 5, "{window}");
}
