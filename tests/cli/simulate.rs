//! `ledger simulate`: the same seed gives the same log; the log it writes is sound.

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
    let (output, text) = ledger(&[
        "simulate",
        "--orders",
        "60",
        "--seed",
        seed,
        "--quiet",
        "--data-dir",
        &dir.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{text}");
    text
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
