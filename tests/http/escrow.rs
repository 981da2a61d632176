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

#[tokio::test]
async fn the_orders_holding_escrow_come_a_page_at_a_time_when_asked_each_once() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    for price in ["10.00", "20.00", "30.00", "40.00", "50.00"] {
        server.place(&buyer, &seller, price).await;
    }
    let whole = server.get(&finance, "/escrow/orders").await;
    assert!(whole.headers.get("link").is_none(), "no page asked for");
    let whole = whole.ok();
    assert_eq!(whole.as_array().map(Vec::len), Some(5), "{whole}");

    let mut paged = Vec::new();
    let mut next = Some("/escrow/orders?limit=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let page = server.get(&finance, &path).await;
        next = page.next_page();
        let page = page.ok();
        assert!(page.as_array().is_some_and(|p| p.len() <= 2), "{page}");
        paged.extend(page.as_array().cloned().unwrap_or_default());
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(serde_json::Value::Array(paged), whole);

    server
        .get(&finance, "/escrow/orders?limit=2&after=yesterday")
        .await
        .problem(reqwest::StatusCode::BAD_REQUEST, "invalid_query");
}
