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

/// A mediator settling a dispute reads the parties' words and the deadlines in the timeline,
/// not only who acted and what money moved.
#[tokio::test]
async fn the_timeline_gives_each_events_words_and_deadlines() {
    use ledger_commands::{CommandHandler, CommandRequest};
    let dir = tempfile::tempdir().expect("dir");
    let store = std::sync::Arc::new(ledger_store::SqliteStore::open(dir.path()).expect("store"));
    let handler = CommandHandler::new(store.clone(), Policy::default());
    let mediator = Actor::new(Role::Mediator, UserId(uuid::Uuid::from_u128(3)));
    let hour = |h: i64| t0() + Duration::hours(h);
    let mut commands = closed_order_commands()[..2].to_vec();
    commands.extend([
        Command::PartialRefund {
            by: seller(),
            at: hour(2),
            amount: eur("10.00"),
            reason: "the font came late".into(),
        },
        Command::Deliver {
            by: seller(),
            at: hour(3),
            message: "logo.svg attached".into(),
        },
        Command::RequestRevision {
            by: buyer(),
            at: hour(4),
            reason: "the blue is off".into(),
        },
        Command::RefuseRevision {
            by: seller(),
            at: hour(5),
            reason: "out of scope".into(),
        },
        Command::OpenDispute {
            by: buyer(),
            at: hour(6),
            reason: "not what I ordered".into(),
        },
        Command::ResolveDispute {
            by: mediator,
            at: hour(7),
            resolution: Resolution::Split {
                refund: eur("30.00"),
            },
            note: "half the work is usable".into(),
        },
    ]);
    for command in commands {
        let request = CommandRequest::new(uuid::Uuid::new_v4(), ORDER, command);
        handler.handle(request).await.expect("accepted");
    }
    store.close();

    let (output, text) = history(dir.path(), &[]);
    assert!(output.status.success(), "{text}");
    let line = |event: &str| {
        text.lines()
            .find(|l| l.contains(event))
            .unwrap_or_else(|| panic!("no {event}: {text}"))
            .to_owned()
    };
    assert!(
        line("OrderConfirmed").ends_with("due 2026-03-05 10:00:00"),
        "{text}"
    );
    assert!(
        line("PartialRefundIssued")
            .ends_with("[10.00 EUR refunded to the buyer]  \"the font came late\""),
        "{text}"
    );
    assert!(
        line("OrderDelivered").ends_with("delivery 1: \"logo.svg attached\""),
        "{text}"
    );
    assert!(
        line("RevisionRefused")
            .ends_with("\"out of scope\"; the buyer decides by 2026-03-09 14:00:00"),
        "{text}"
    );
    assert!(
        line("DisputeOpened").ends_with("by the buyer: \"not what I ordered\""),
        "{text}"
    );
    assert!(
        line("DisputeResolved")
            .ends_with("split, 30.00 EUR to the buyer: \"half the work is usable\""),
        "{text}"
    );
    assert!(
        line("OrderClosed").ends_with("dispute_split; reviews before 2026-09-03 00:00:00"),
        "{text}"
    );
}
