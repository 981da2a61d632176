//! `ledger verify` names each kind of broken history by stream and revision, exits non-zero
//! on any, and is quiet and successful on a sound one.

use crate::support::*;
use chrono::Duration;
use ledger_domain::*;
use ledger_store::LOG_FILE_NAME;
use std::process::Output;

fn verify(dir: &std::path::Path) -> (Output, String) {
    ledger(&["verify", "--data-dir", &dir.to_string_lossy()])
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
    assert!(text.contains("verified 4 events of 1 order:"), "{text}");
}

#[tokio::test]
async fn a_refund_after_close_is_named_by_stream_and_revision() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    append_raw(
        dir.path(),
        &[refund_of_ten("after close", t0() + Duration::days(3))],
    )
    .await;
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

/// A log longer than one page of reads (10,000 events) is verified whole, its stages handing
/// pages on in order: a violation past the first page is named at its position.
#[tokio::test]
async fn a_log_of_several_pages_is_verified_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().to_string_lossy().to_string();
    let (output, text) = ledger(&[
        "simulate",
        "--orders",
        "4500",
        "--concurrency",
        "16",
        "--quiet",
        "--data-dir",
        &data_dir,
    ]);
    assert!(output.status.success(), "{text}");
    let (output, text) = verify(dir.path());
    assert!(output.status.success(), "{text}");
    let events: u64 = text
        .split("verified ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count: {text}"));
    assert!(events > 20_000, "more than two pages: {text}");

    append_raw(dir.path(), &[refund_of_ten("no order", t0())]).await;
    let (output, text) = verify(dir.path());
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "{} revision 0 (position {events}): illegal PartialRefundIssued",
            stream()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("in {} events of ", events + 1)),
        "{text}"
    );
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

fn verify_views(dir: &std::path::Path) -> (Output, String) {
    ledger(&["verify", "--views", "--data-dir", &dir.to_string_lossy()])
}

/// `--views` shows the stored views to be what the log folds to, or names each that is not,
/// and views folded from another log for what they are; it changes nothing either way.
#[test]
fn verify_with_views_compares_the_stored_views_with_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    let (ours, other) = (dir.path().join("ours"), dir.path().join("other"));
    simulated(&ours, "20", "42");
    let (output, text) = verify_views(&ours);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("views: none stored"), "{text}");
    let views = ledger_projections::READ_MODEL_FILE_NAME;
    assert!(!ours.join(views).exists(), "verify created the views' file");

    let (output, text) = ledger(&["rebuild", "--quiet", "--data-dir", &ours.to_string_lossy()]);
    assert!(output.status.success(), "{text}");
    let (output, text) = verify_views(&ours);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("the stored views are what the log folds to"),
        "{text}"
    );

    // Views folded from another, longer log: it holds an event at their checkpoint.
    simulated(&other, "30", "43");
    std::fs::copy(ours.join(views), other.join(views)).expect("copy the views");
    let (output, text) = verify_views(&other);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("folded from another log"), "{text}");

    // A stored order lost: that view, and only it, is named; the views stay as they were.
    let db = rusqlite::Connection::open(ours.join(views)).expect("views");
    let lost = db
        .execute(
            "DELETE FROM rows WHERE id = (SELECT MIN(id) FROM rows WHERE view = 'orders')",
            [],
        )
        .expect("lose a row");
    assert_eq!(lost, 1);
    drop(db);
    for _ in 0..2 {
        let (output, text) = verify_views(&ours);
        assert!(!output.status.success(), "{text}");
        assert!(
            text.contains("the stored orders view differs") && !text.contains("escrow view"),
            "{text}"
        );
        assert!(text.contains("`ledger rebuild` folds them again"), "{text}");
    }

    // Views of an older layout are named as such and left as they are, where a start (or
    // opening them to compare) would drop them.
    let db = rusqlite::Connection::open(ours.join(views)).expect("views");
    db.pragma_update(None, "user_version", 6)
        .expect("older layout");
    let rows = |db: &rusqlite::Connection| -> i64 {
        db.query_row("SELECT COUNT(*) FROM rows", [], |row| row.get(0))
            .expect("rows")
    };
    let before = rows(&db);
    drop(db);
    let (output, text) = verify_views(&ours);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("older layout (schema 6)"), "{text}");
    let db = rusqlite::Connection::open(ours.join(views)).expect("views");
    assert_eq!(rows(&db), before, "verify dropped the older views");
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    assert_eq!(version, 6);
}
