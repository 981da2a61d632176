//! `ledger history`: the timeline, and the order as it stood at an instant or revision.

use crate::support::*;
use chrono::Duration;
use ledger_domain::*;

fn history(dir: &std::path::Path, extra: &[&str]) -> (std::process::Output, String) {
    let order = ORDER.0.to_string();
    let dir = dir.to_string_lossy();
    let mut args = vec!["history", order.as_str(), "--data-dir", &dir];
    args.extend_from_slice(extra);
    ledger(&args)
}

#[tokio::test]
async fn the_timeline_names_who_did_what_and_what_money_moved() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let (output, text) = history(dir.path(), &[]);
    assert!(output.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("OrderPlaced") && lines[0].contains("100.00 EUR paid into escrow"),
        "{text}"
    );
    assert!(
        lines[0].contains(&format!("buyer {}", buyer().user_id)),
        "{text}"
    );
    assert!(
        lines[3].contains("OrderClosed")
            && lines[3].contains("80.00 EUR released to the seller, 20.00 EUR commission"),
        "{text}"
    );
    assert!(text.contains("Closed, escrow held 0.00 EUR"), "{text}");
}

#[tokio::test]
async fn as_of_an_instant_the_order_is_the_fold_of_the_events_until_then() {
    let dir = tempfile::tempdir().expect("dir");
    let events = closed_order(dir.path()).await;
    // Just after delivery, before the close.
    let instant = t0() + Duration::days(1) + Duration::minutes(1);
    let (output, text) = history(dir.path(), &["--json", "--at", &instant.to_rfc3339()]);
    assert!(output.status.success(), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let expected = OrderState::from_events(events.iter().filter(|e| e.at() <= instant));
    assert_eq!(
        json["state"],
        serde_json::to_value(&expected).expect("json")
    );
    assert_eq!(json["entries"].as_array().map(Vec::len), Some(3));
    assert_eq!(expected.status(), Some(Status::Delivered));
}

#[tokio::test]
async fn before_its_placement_the_order_is_said_to_have_no_event_yet() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let before = t0() - Duration::seconds(1);
    let (output, text) = history(dir.path(), &["--at", &before.to_rfc3339()]);
    assert!(output.status.success(), "{text}");
    assert_eq!(
        text.trim(),
        format!(
            "order {}: no event yet at that instant; it was placed later",
            ORDER.0
        )
    );
}

#[tokio::test]
async fn as_of_a_revision_the_order_is_the_fold_of_the_events_up_to_it() {
    let dir = tempfile::tempdir().expect("dir");
    let events = closed_order(dir.path()).await;
    let (output, text) = history(dir.path(), &["--json", "--revision", "1"]);
    assert!(output.status.success(), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let expected = OrderState::from_events(&events[..2]);
    assert_eq!(
        json["state"],
        serde_json::to_value(&expected).expect("json")
    );
}

#[tokio::test]
async fn an_unknown_order_or_a_bad_instant_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let unknown = uuid::Uuid::from_u128(0xdead).to_string();
    let (output, text) = ledger(&[
        "history",
        &unknown,
        "--data-dir",
        &dir.path().to_string_lossy(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("order {unknown} does not exist")),
        "{text}"
    );
    let (output, text) = history(dir.path(), &["--at", "yesterday"]);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("invalid value 'yesterday'"), "{text}");
    let (output, text) = ledger(&[
        "history",
        "not-a-uuid",
        "--data-dir",
        &dir.path().to_string_lossy(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[tokio::test]
async fn a_revision_the_order_has_not_reached_is_refused_not_answered_with_today() {
    let dir = tempfile::tempdir().expect("dir");
    let events = closed_order(dir.path()).await;
    let past_last = events.len().to_string();
    let (output, text) = history(dir.path(), &["--revision", &past_last]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "has revisions 0 to {}; {past_last} is not one yet",
            events.len() - 1
        )),
        "{text}"
    );
}
