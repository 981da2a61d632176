//! What finance reads of escrow: totals per currency and their aging.

use crate::support::{user, Server};
use chrono::Duration;
use serde_json::json;

#[tokio::test]
async fn escrow_ages_in_buckets_listed_in_order_with_every_amount_in_cents() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let old = server.place(&buyer, &seller, "100.00").await;
    server.act(&seller, old, "confirm", json!({})).await;
    server
        .advance(server.now().await + Duration::days(10))
        .await;
    server.place(&buyer, &seller, "25.50").await;

    let escrow = server.get(&finance, "/escrow").await.ok();
    assert_eq!(
        escrow["currencies"],
        json!([{
            "currency": "EUR",
            "held": "125.50",
            "aging": {"0-7": "25.50", "8-30": "100.00", "31-90": "0.00", "over-90": "0.00"},
        }]),
        "{escrow}"
    );
    // A report read top to bottom: youngest bucket first, as the days run.
    let text = server
        .client()
        .get(server.url("/escrow"))
        .bearer_auth(&finance.token)
        .send()
        .await
        .expect("escrow")
        .text()
        .await
        .expect("text");
    let at = |key: &str| text.find(&format!("\"{key}\"")).expect(key);
    assert!(
        at("0-7") < at("8-30") && at("8-30") < at("31-90") && at("31-90") < at("over-90"),
        "{text}"
    );
}
