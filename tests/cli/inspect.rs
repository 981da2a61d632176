//! `ledger inspect`: what a data directory holds, and where its views stand against its log.

use crate::support::*;
use chrono::Duration;
use ledger_domain::*;

fn inspect(dir: &std::path::Path) -> String {
    let (output, text) = ledger(&["inspect", "--data-dir", &dir.to_string_lossy()]);
    assert!(output.status.success(), "{text}");
    text
}

fn inspect_json(dir: &std::path::Path) -> serde_json::Value {
    let (output, text) = ledger(&["inspect", "--json", "--data-dir", &dir.to_string_lossy()]);
    assert!(output.status.success(), "{text}");
    serde_json::from_slice(&output.stdout).expect("JSON on standard output")
}

fn rebuild(dir: &std::path::Path) {
    let (output, text) = ledger(&["rebuild", "--quiet", "--data-dir", &dir.to_string_lossy()]);
    assert!(output.status.success(), "{text}");
}

/// The line of `text` that starts with `label`.
fn line<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(label))
        .unwrap_or_else(|| panic!("no line {label}: {text}"))
}

#[tokio::test]
async fn inspect_counts_the_log_and_says_how_far_behind_the_views_are() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let text = inspect(dir.path());
    assert!(
        line(&text, "log ").contains("4 events at positions 0 to 3, recorded "),
        "{text}"
    );
    assert_eq!(line(&text, "streams "), "streams   1 (order 1)", "{text}");
    assert!(line(&text, "views ").contains("none stored"), "{text}");
    for event_type in [
        "OrderPlaced",
        "OrderConfirmed",
        "OrderDelivered",
        "OrderClosed",
    ] {
        let counted: Vec<&str> = line(&text, &format!("  {event_type} "))
            .split_whitespace()
            .collect();
        assert_eq!(counted, [event_type, "1"], "{text}");
    }

    rebuild(dir.path());
    let text = inspect(dir.path());
    assert_eq!(
        line(&text, "views "),
        "views     folded up to position 3, 0 events behind the log",
        "{text}"
    );

    // The log goes on without the views: inspect does not judge the events, only counts them.
    append_raw(
        dir.path(),
        &[refund_of_ten("after close", t0() + Duration::days(3))],
    )
    .await;
    let text = inspect(dir.path());
    assert!(
        line(&text, "log ").contains("5 events at positions 0 to 4"),
        "{text}"
    );
    assert_eq!(
        line(&text, "views "),
        "views     folded up to position 3, 1 event behind the log",
        "{text}"
    );
    assert!(line(&text, "files ").contains("views.sqlite "), "{text}");

    let json = inspect_json(dir.path());
    assert_eq!(json["log"]["events"], 5, "{json}");
    assert_eq!(json["log"]["streams"], 1, "{json}");
    assert_eq!(json["log"]["last"]["position"], 4, "{json}");
    assert_eq!(
        json["log"]["events_by_type"]["PartialRefundIssued"], 1,
        "{json}"
    );
    assert_eq!(json["log"]["events_by_type"]["OrderPlaced"], 1, "{json}");
    assert_eq!(json["views"]["state"], "folded_up_to", "{json}");
    assert_eq!(json["views"]["checkpoint"], 3, "{json}");
    assert_eq!(json["views_behind"], 1, "{json}");
}

#[test]
fn a_simulated_marketplace_is_counted_stream_by_stream_and_type_by_type() {
    let dir = tempfile::tempdir().expect("dir");
    simulated(dir.path(), "40", "5");
    let json = inspect_json(dir.path());
    assert_eq!(json["log"]["streams"], 40, "{json}");
    assert_eq!(json["log"]["streams_by_category"]["order"], 40, "{json}");
    assert_eq!(json["log"]["events_by_type"]["OrderPlaced"], 40, "{json}");
    let by_type: u64 = json["log"]["events_by_type"]
        .as_object()
        .expect("types")
        .values()
        .map(|count| count.as_u64().expect("count"))
        .sum();
    assert_eq!(json["log"]["events"], by_type, "{json}");
    assert_eq!(json["log"]["last"]["position"], by_type - 1, "{json}");
}

#[tokio::test]
async fn views_of_another_log_of_a_newer_binary_or_damaged_are_named_as_such() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let other = tempfile::tempdir().expect("dir");
    simulated(other.path(), "3", "2");
    rebuild(other.path());
    std::fs::copy(
        other.path().join("views.sqlite"),
        dir.path().join("views.sqlite"),
    )
    .expect("views copied");
    let text = inspect(dir.path());
    assert!(
        line(&text, "views ").contains("folded from another log"),
        "{text}"
    );

    let views = rusqlite::Connection::open(dir.path().join("views.sqlite")).expect("views");
    views
        .pragma_update(None, "user_version", 99)
        .expect("schema");
    drop(views);
    let text = inspect(dir.path());
    assert!(
        line(&text, "views ").contains("written by a newer binary (schema 99)"),
        "{text}"
    );

    // Damaged views are named, and the log is still counted.
    std::fs::write(dir.path().join("views.sqlite"), b"damaged").expect("damage");
    let text = inspect(dir.path());
    assert!(
        line(&text, "views ").contains("cannot be read (") && text.contains("ledger rebuild"),
        "{text}"
    );
    assert!(line(&text, "log ").contains("4 events"), "{text}");
    let json = inspect_json(dir.path());
    assert_eq!(json["views"]["state"], "unreadable", "{json}");
    assert!(json["views"]["detail"].is_string(), "{json}");
}

#[test]
fn a_directory_without_a_log_is_refused_and_left_without_one() {
    let dir = tempfile::tempdir().expect("dir");
    let (output, text) = ledger(&["inspect", "--data-dir", &dir.path().to_string_lossy()]);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("there is no event log at"), "{text}");
    assert!(!dir.path().join("events.sqlite").exists());
}
