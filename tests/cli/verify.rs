//! `ledger verify` names each kind of broken history by stream and revision, exits non-zero
//! on any, and is quiet and successful on a sound one.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_commands::{encode, stream_for, CommandHandler, CommandRequest};
use ledger_domain::*;
use ledger_store::{EventStore, ExpectedRevision, SqliteStore, LOG_FILE_NAME};
use std::process::{Command as Process, Output};
use std::sync::Arc;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("instant")
}
fn eur(a: &str) -> Money {
    Money::parse(a, Currency::from_code("EUR").expect("EUR")).expect("amount")
}
fn buyer() -> Actor {
    Actor::new(Role::Buyer, UserId(Uuid::from_u128(1)))
}
fn seller() -> Actor {
    Actor::new(Role::Seller, UserId(Uuid::from_u128(2)))
}

const ORDER: OrderId = OrderId(Uuid::from_u128(0xa));

/// A sound history: one order placed, confirmed, delivered and closed, through the pipeline.
async fn closed_order(dir: &std::path::Path) -> Vec<Event> {
    let store = Arc::new(SqliteStore::open(dir).expect("store"));
    let handler = CommandHandler::new(store.clone(), Policy::default());
    let commands = vec![
        Command::Place {
            by: buyer(),
            at: t0(),
            order_id: ORDER,
            seller: seller().user_id,
            title: "logo".into(),
            price: eur("100.00"),
            delivery_days: 3,
        },
        Command::Confirm {
            by: seller(),
            at: t0() + Duration::hours(1),
        },
        Command::Deliver {
            by: seller(),
            at: t0() + Duration::days(1),
            message: String::new(),
        },
        Command::Close {
            by: buyer(),
            at: t0() + Duration::days(2),
        },
    ];
    let mut events = Vec::new();
    for command in commands {
        let outcome = handler
            .handle(CommandRequest::new(Uuid::new_v4(), ORDER, command))
            .await
            .expect("accepted");
        events.extend(outcome.events);
    }
    store.close();
    events
}

/// Appends events as they are, without the rules: how a broken history gets in.
async fn append_raw(dir: &std::path::Path, events: &[Event]) {
    let store = SqliteStore::open(dir).expect("store");
    let metadata = EventMetadata {
        schema_version: EVENT_SCHEMA_VERSION,
        command_id: Uuid::new_v4(),
        command_digest: String::new(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        actor: seller(),
    };
    let data = events.iter().map(|e| encode(e, &metadata)).collect();
    store
        .append(&stream_for(ORDER), ExpectedRevision::Any, data)
        .await
        .expect("append");
    store.close();
}

fn verify(dir: &std::path::Path) -> (Output, String) {
    let output = Process::new(env!("CARGO_BIN_EXE_ledger"))
        .arg("verify")
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LEDGER_STORE")
        .env_remove("LEDGER_DATA_DIR")
        .output()
        .expect("run ledger");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

fn stream() -> String {
    order_stream_name(ORDER)
}

#[tokio::test]
async fn a_sound_history_verifies() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let (output, text) = verify(dir.path());
    assert!(output.status.success(), "{text}");
    assert!(text.contains("verified 4 events of 1 orders"), "{text}");
}

#[tokio::test]
async fn a_refund_after_close_is_named_by_stream_and_revision() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let refund = Event::PartialRefundIssued(PartialRefundIssued {
        amount: eur("10.00"),
        reason: "after close".into(),
        escrow_after: eur("0.00"),
        by: seller(),
        at: t0() + Duration::days(3),
    });
    append_raw(dir.path(), &[refund]).await;
    let (output, text) = verify(dir.path());
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "{} revision 4 (position 4): illegal PartialRefundIssued",
            stream()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_refund_that_would_make_escrow_negative_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    let events = closed_order(dir.path()).await;
    let fresh = tempfile::tempdir().expect("dir");
    let overdraw = Event::PartialRefundIssued(PartialRefundIssued {
        amount: eur("150.00"),
        reason: "more than held".into(),
        escrow_after: eur("0.00"),
        by: seller(),
        at: t0() + Duration::hours(2),
    });
    append_raw(
        fresh.path(),
        &[events[0].clone(), events[1].clone(), overdraw],
    )
    .await;
    let (output, text) = verify(fresh.path());
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("{} revision 2", stream()))
            && text.contains("does not leave money in escrow"),
        "{text}"
    );
}

#[tokio::test]
async fn a_money_leak_is_named_and_breaks_conservation() {
    let dir = tempfile::tempdir().expect("dir");
    let events = closed_order(dir.path()).await;
    let fresh = tempfile::tempdir().expect("dir");
    let mut leaky = events.clone();
    if let Some(Event::OrderClosed(closed)) = leaky.last_mut() {
        closed.seller_credit = eur("90.00");
    }
    append_raw(fresh.path(), &leaky).await;
    let (output, text) = verify(fresh.path());
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("{} revision 3", stream())) && text.contains("is not the release"),
        "{text}"
    );
    assert!(text.contains("money not conserved in EUR"), "{text}");
}

#[tokio::test]
async fn a_revision_gap_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let db = rusqlite::Connection::open(dir.path().join(LOG_FILE_NAME)).expect("open log");
    db.execute("DELETE FROM events WHERE revision = 1", [])
        .expect("delete a row");
    drop(db);
    let (output, text) = verify(dir.path());
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "{} revision 2 (position 2): revision gap: expected revision 1",
            stream()
        )),
        "{text}"
    );
    assert!(text.contains("position gap: expected 1"), "{text}");
}

#[test]
fn a_missing_log_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("dir");
    let (output, text) = verify(&dir.path().join("nowhere"));
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("error: there is no event log at"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}
