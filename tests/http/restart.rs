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
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["rebuild", "--quiet", "--data-dir"])
        .arg(server.dir.path().join("data"))
        .output()
        .expect("run ledger rebuild");
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
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["rebuild", "--quiet", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run ledger rebuild");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
