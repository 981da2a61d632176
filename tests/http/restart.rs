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
    drop(resumed);

    // What the service stored as it went, across the restart, is what a rebuild would store.
    let dir = server.stop();
    let output = ledger_on(&dir.path().join("data"), &["verify", "--views"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("the stored views are what the log folds to, up to their checkpoint 3"),
        "{stdout}"
    );
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

/// The checkpoint stored in the read-model database of `data_dir`, if there is one yet.
fn stored_views_checkpoint(data_dir: &std::path::Path) -> Option<i64> {
    let db = rusqlite::Connection::open_with_flags(
        data_dir.join("views.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    db.busy_timeout(std::time::Duration::from_secs(5)).ok()?;
    db.query_row("SELECT checkpoint FROM progress WHERE id = 0", [], |row| {
        row.get(0)
    })
    .ok()
    .flatten()
}

#[tokio::test]
async fn a_running_service_saves_its_views_so_a_killed_one_resumes_from_there() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    for _ in 0..3 {
        let order = server.place(&buyer, &seller, "100.00").await;
        server.act(&seller, order, "confirm", json!({})).await;
    }
    // Six events, positions 0 to 5; the service saves its views every two seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while stored_views_checkpoint(&server.dir.path().join("data")) != Some(5) {
        assert!(
            std::time::Instant::now() < deadline,
            "the views were not saved while serving (stored checkpoint {:?})",
            stored_views_checkpoint(&server.dir.path().join("data"))
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dir = server.kill();
    assert_eq!(stored_views_checkpoint(&dir.path().join("data")), Some(5));
    let server = Server::start_in(dir);
    let mine = server.get(&buyer, "/orders").await.ok();
    assert_eq!(mine["orders"].as_array().map(Vec::len), Some(3), "{mine}");
    server.assert_books_balance().await;
}

#[tokio::test]
async fn a_rebuild_while_the_service_runs_on_the_same_data_is_refused_and_changes_nothing() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "100.00").await;
    let output = ledger_on(&server.dir.path().join("data"), &["rebuild", "--quiet"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another process"),
        "a clear reason: {stderr}"
    );
    // The service's views are untouched and it goes on.
    server.act(&seller, order, "confirm", json!({})).await;
    assert_eq!(server.order(&buyer, order).await["status"], "InProgress");
    let dir = server.stop();
    let output = ledger_on(&dir.path().join("data"), &["rebuild", "--quiet"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Each amount entered is at most 1,000,000,000; their sums are not. An order whose extras
/// take its escrow past it, and a seller whose wallet passes it, are read back from the log
/// and from the stored views like any other: before, the first stopped the views for good
/// (every later command answered "before the views folded it", a refusal on that order 500),
/// and the second kept the service from starting again.
#[tokio::test]
async fn sums_past_the_largest_amount_entered_are_folded_and_survive_a_restart() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let largest = "999999999.99";
    let order = server.place(&buyer, &seller, largest).await;
    server.act(&seller, order, "confirm", json!({})).await;
    let extra = json!({"kind": "option", "description": "d", "price": largest, "extra_days": 1});
    server.act(&buyer, order, "extras", extra).await;
    // A refusal is checked against the order's stream, which now holds the big sum.
    server
        .post(&seller, &format!("/orders/{order}/confirm"), json!({}))
        .await
        .problem(reqwest::StatusCode::UNPROCESSABLE_ENTITY, "wrong_state");
    let summary = server.order(&buyer, order).await;
    assert_eq!(
        summary["escrow_held"]["amount"], "1999999999.98",
        "{summary}"
    );
    let second = server.place(&buyer, &seller, largest).await;
    server.act(&seller, second, "confirm", json!({})).await;
    let escrow = server.get(&finance, "/escrow").await.ok();
    assert_eq!(escrow["currencies"][0]["held"], "2999999999.97", "{escrow}");
    for order in [order, second] {
        server
            .act(&seller, order, "deliver", json!({ "message": "done" }))
            .await;
        server.act(&buyer, order, "close", json!({})).await;
    }
    // Each release less its 20% commission, rounded to the cent: 1,999,999,999.98 −
    // 400,000,000.00 and 999,999,999.99 − 200,000,000.00.
    let wallet = Some("2399999999.97".to_owned());
    assert_eq!(server.wallet_eur(&seller, seller.id).await, wallet);
    server.assert_books_balance().await;

    let server = Server::start_in(server.stop());
    assert_eq!(server.wallet_eur(&seller, seller.id).await, wallet);
    let ready = server.get(&finance, "/readyz").await.ok();
    assert_eq!(ready["ready"], true, "{ready}");
    server.assert_books_balance().await;
}

/// `--dev`'s clock moved forward is not forgotten by a restart: it resumes from the last
/// event's instant, so the orders acted on "in the future" can still be acted on. (Without
/// `--dev` the clock holds at that instant until the machine's catches up.)
#[tokio::test]
async fn a_restart_resumes_the_dev_clock_from_the_last_event() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "100.00").await;
    let confirmed = server.act(&seller, order, "confirm", json!({})).await;
    let due = crate::support::parse_instant(&confirmed["order"]["due_at"]);
    server.advance(due + chrono::Duration::days(2)).await;
    let delivered = server
        .act(&seller, order, "deliver", json!({ "message": "late" }))
        .await;
    assert_eq!(delivered["order"]["late"], true, "{delivered}");

    let server = Server::start_in(server.stop());
    assert!(server.now().await >= due + chrono::Duration::days(2));
    let closed = server.act(&buyer, order, "close", json!({})).await;
    assert_eq!(closed["order"]["status"], "Closed", "{closed}");
}

/// `ledger <args> --data-dir <data>`, run to its end.
fn ledger_on(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run ledger")
}
