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

/// A month's end: escrow as it stood then, aged as it was then, however it has moved and
/// aged since.
#[tokio::test]
async fn escrow_as_at_an_instant_holds_and_ages_what_it_held_then() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let before = server.now().await - Duration::seconds(1);
    // Paid for, delivered late and released to the seller twelve days on.
    let released = server.place(&buyer, &seller, "100.00").await;
    let first = server.now().await;
    server.act(&seller, released, "confirm", json!({})).await;
    server.advance(first + Duration::days(12)).await;
    server
        .act(&seller, released, "deliver", json!({ "message": "late" }))
        .await;
    server.act(&buyer, released, "close", json!({})).await;
    // Paid for twelve days on, and still in progress forty days later.
    let open = server.place(&buyer, &seller, "40.00").await;
    server.act(&seller, open, "confirm", json!({})).await;
    let second = server.now().await;
    server.advance(second + Duration::days(40)).await;

    let as_at = |at: chrono::DateTime<chrono::Utc>| {
        format!(
            "/escrow?at={}",
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    };
    let eur = |held: &str, aging: [&str; 4]| {
        json!([{
            "currency": "EUR",
            "held": held,
            "aging": {"0-7": aging[0], "8-30": aging[1], "31-90": aging[2], "over-90": aging[3]},
        }])
    };
    let zero = "0.00";
    for (at, expected) in [
        (
            first + Duration::days(7),
            eur("100.00", ["100.00", zero, zero, zero]),
        ),
        (
            first + Duration::days(8),
            eur("100.00", [zero, "100.00", zero, zero]),
        ),
        (
            second + Duration::days(31),
            eur("40.00", [zero, zero, "40.00", zero]),
        ),
    ] {
        let then = server.get(&finance, &as_at(at)).await.ok();
        assert_eq!(then["currencies"], expected, "{at}: {then}");
        assert_eq!(crate::support::parse_instant(&then["at"]), at);
    }
    let nothing = server.get(&finance, &as_at(before)).await.ok();
    assert_eq!(nothing["currencies"], json!([]), "{nothing}");
    // As at now, what the escrow view holds now.
    let now = server.get(&finance, "/escrow").await.ok();
    assert_eq!(now["currencies"], eur("40.00", [zero, zero, "40.00", zero]));
    let as_at_now = server.get(&finance, &as_at(server.now().await)).await.ok();
    assert_eq!(as_at_now["currencies"], now["currencies"]);
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
