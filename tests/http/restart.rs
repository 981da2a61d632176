//! Stopping and starting the binary mid-scenario: state, views and subscriptions carry on.

use crate::streams::Subscriber;
use crate::support::{user, Server};
use serde_json::json;

#[tokio::test]
async fn a_graceful_restart_mid_order_loses_nothing_and_subscribers_resume() {
    let server = Server::start();
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    let order = server.place(&buyer, &seller, "200.00").await;
    server.act(&seller, order, "confirm", json!({})).await;

    let mut subscriber = Subscriber::connect(&server, &service, "/streams/$all", None).await;
    let before = subscriber.take(2).await;
    let last_id = before.last().map(|e| e.id).expect("events");
    drop(subscriber);

    let dir = server.stop();
    let server = Server::start_in(dir);
    assert_eq!(server.order(&buyer, order).await["status"], "InProgress");
    server
        .act(&seller, order, "deliver", json!({ "message": "done" }))
        .await;
    server.act(&buyer, order, "close", json!({})).await;
    assert_eq!(
        server.wallet_eur(&seller, seller.id).await.as_deref(),
        Some("160.00")
    );

    let mut resumed = Subscriber::connect(&server, &service, "/streams/$all", Some(last_id)).await;
    let after = resumed.take(2).await;
    let types: Vec<&str> = after.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["OrderDelivered", "OrderClosed"]);
    assert_eq!(after[0].id, last_id + 1);
    server.assert_books_balance().await;
}

#[tokio::test]
async fn after_a_kill_the_views_come_back_equal_to_the_log() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let mut orders = Vec::new();
    for _ in 0..5 {
        let order = server.place(&buyer, &seller, "100.00").await;
        server.act(&seller, order, "confirm", json!({})).await;
        orders.push(order);
    }
    let escrow_before = server.get(&finance, "/escrow").await.ok();
    assert_eq!(
        escrow_before["currencies"][0]["held"], "500.00",
        "{escrow_before}"
    );

    let server = Server::start_in(server.kill());
    for order in &orders[..2] {
        server
            .act(&seller, *order, "deliver", json!({ "message": "done" }))
            .await;
        server.act(&buyer, *order, "close", json!({})).await;
    }
    let escrow = server.get(&finance, "/escrow").await.ok();
    assert_eq!(escrow["currencies"][0]["held"], "300.00", "{escrow}");
    assert_eq!(
        server.wallet_eur(&seller, seller.id).await.as_deref(),
        Some("160.00")
    );
    let mine = server.get(&buyer, "/orders").await.ok();
    assert_eq!(mine["orders"].as_array().map(Vec::len), Some(5), "{mine}");
    server.assert_books_balance().await;
}
