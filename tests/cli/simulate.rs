//! `ledger simulate`: the same seed gives the same log (each order's history, side by side);
//! the log it writes is sound.

use crate::support::*;
use std::path::Path;

/// The log as exported, without what the store assigns (event ids, recorded instants).
fn log_without_store_ids(dir: &Path) -> Vec<serde_json::Value> {
    let (output, text) = ledger(&["export", "--data-dir", &dir.to_string_lossy()]);
    assert!(output.status.success(), "{text}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("type").is_some())
        .map(|mut v| {
            if let Some(fields) = v.as_object_mut() {
                fields.remove("event_id");
                fields.remove("recorded_at");
            }
            v
        })
        .collect()
}

fn simulate(dir: &Path, seed: &str) -> String {
    simulated(dir, "60", seed)
}

#[test]
fn the_same_seed_gives_the_same_log_and_another_seed_another() {
    let dir = tempfile::tempdir().expect("dir");
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let summary = simulate(&a, "42");
    assert!(
        summary.contains("simulated 60 orders with seed 42"),
        "{summary}"
    );
    assert!(
        summary.contains(" 0 timer commands refused"),
        "every due timer acts on an order its rule applies to: {summary}"
    );
    simulate(&b, "42");
    simulate(&c, "43");
    let (first, second, other) = (
        log_without_store_ids(&a),
        log_without_store_ids(&b),
        log_without_store_ids(&c),
    );
    assert!(
        first.len() > 150,
        "a marketplace's worth of events: {}",
        first.len()
    );
    assert_eq!(first, second);
    assert_ne!(first, other);
    let (output, text) = ledger(&["verify", "--data-dir", &a.to_string_lossy()]);
    assert!(
        output.status.success(),
        "the simulated log is sound: {text}"
    );
}

/// Side by side, the interleaving varies from run to run, but each order's history is the
/// same for a seed, and the log is sound.
#[test]
fn simulations_side_by_side_give_each_order_the_same_history_for_a_seed() {
    let dir = tempfile::tempdir().expect("dir");
    let histories = |name: &str| {
        let store = dir.path().join(name);
        let (output, text) = ledger(&[
            "simulate",
            "--orders",
            "60",
            "--seed",
            "42",
            "--concurrency",
            "8",
            "--quiet",
            "--data-dir",
            &store.to_string_lossy(),
        ]);
        assert!(output.status.success(), "{text}");
        assert!(text.contains("simulated 60 orders with seed 42"), "{text}");
        let (output, text) = ledger(&["verify", "--data-dir", &store.to_string_lossy()]);
        assert!(output.status.success(), "the log is sound: {text}");
        let mut events = log_without_store_ids(&store);
        for event in &mut events {
            if let Some(fields) = event.as_object_mut() {
                fields.remove("position");
            }
        }
        events.sort_by_key(|e| (e["stream"].to_string(), e["revision"].as_u64()));
        events
    };
    let (first, second) = (histories("a"), histories("b"));
    let streams: std::collections::HashSet<String> =
        first.iter().map(|e| e["stream"].to_string()).collect();
    assert_eq!(streams.len(), 60, "one stream an order");
    assert_eq!(first, second);
    let (output, text) = ledger(&["simulate", "--concurrency", "0", "--data-dir", "unused"]);
    assert_eq!(output.status.code(), Some(2), "{text}");
}

#[test]
fn simulate_refuses_a_store_that_already_holds_events() {
    let dir = tempfile::tempdir().expect("dir");
    simulate(dir.path(), "1");
    let (output, text) = ledger(&[
        "simulate",
        "--orders",
        "5",
        "--quiet",
        "--data-dir",
        &dir.path().to_string_lossy(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("already holds events"), "{text}");
}

/// Cents of an amount as events write it ("570.00").
fn cents(money: &serde_json::Value) -> i64 {
    let text = money["amount"].as_str().expect("an amount");
    let (units, fraction) = text.split_once('.').expect("two places");
    units.parse::<i64>().expect("units") * 100 + fraction.parse::<i64>().expect("cents")
}

/// The scripts read what escrow holds from their orders' outcomes: a partial refund gives
/// back half of it (the refund and what escrow holds after it are both in the event).
#[test]
fn a_simulated_partial_refund_gives_back_half_of_what_escrow_holds() {
    let dir = tempfile::tempdir().expect("dir");
    simulate(dir.path(), "42");
    let refunds: Vec<serde_json::Value> = log_without_store_ids(dir.path())
        .into_iter()
        .filter(|event| event["type"] == "PartialRefundIssued")
        .collect();
    assert!(!refunds.is_empty(), "seed 42 issues partial refunds");
    for refund in refunds {
        let (amount, after) = (
            cents(&refund["data"]["amount"]),
            cents(&refund["data"]["escrow_after"]),
        );
        let held = amount + after;
        assert!(
            (2 * amount - held).abs() <= 1,
            "half of {held} cents, not {amount}: {refund}"
        );
    }
}
