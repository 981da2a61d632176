//! `ledger bench http`, `bench commands` and `bench rebuild`: the load they report is the load
//! they were asked for.

use crate::support::*;

/// The figures of a `bench http` table row: offered rate, commands/s and failures.
fn http_row(output: &str, clients: usize) -> (String, f64, u64) {
    let row = output
        .lines()
        .find(|l| l.starts_with(&format!("| {clients} |")))
        .unwrap_or_else(|| panic!("no row for {clients} clients in:\n{output}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let per_second = cells[3].parse().expect("commands/s is a number");
    let failed = cells[8].parse().expect("failures is a count");
    (cells[2].to_owned(), per_second, failed)
}

#[test]
fn an_open_loop_offers_no_more_than_its_rate() {
    let (output, text) = ledger(&[
        "bench",
        "http",
        "--clients",
        "4",
        "--seconds",
        "2",
        "--warmup",
        "1",
        "--rate",
        "40",
    ]);
    assert!(output.status.success(), "{text}");
    let (offered, per_second, failed) = http_row(&text, 4);
    assert_eq!(offered, "40");
    assert_eq!(failed, 0, "{text}");
    // 80 slots fall in the 2 measured seconds; none is sent early or twice.
    assert!(per_second > 0.0 && per_second <= 40.0, "{text}");

    // The service's own timings of the same seconds, read from its /metrics.
    let inside = text
        .split("| requests over 10 ms |")
        .nth(1)
        .and_then(|table| table.lines().find(|l| l.starts_with("| 4 |")))
        .unwrap_or_else(|| panic!("no row of the service's timings in:\n{text}"));
    let cells: Vec<&str> = inside.split('|').map(str::trim).collect();
    let ms = |cell: &str| -> f64 {
        let figure = cell
            .strip_suffix(" ms")
            .unwrap_or_else(|| panic!("{cell}: {text}"));
        figure.parse().unwrap_or_else(|_| panic!("{cell}: {text}"))
    };
    let (request_p50, request_p99) = (ms(cells[2]), ms(cells[3]));
    assert!(request_p50 > 0.0 && request_p50 <= request_p99, "{text}");
    let over: f64 = cells[4]
        .strip_suffix('%')
        .and_then(|share| share.parse().ok())
        .unwrap_or_else(|| panic!("{}: {text}", cells[4]));
    assert!((0.0..=100.0).contains(&over), "{text}");
    assert!(ms(cells[5]) > 0.0 && ms(cells[5]) <= ms(cells[6]), "{text}");
    assert!(ms(cells[7]) <= ms(cells[8]), "{text}");
}

#[test]
fn a_closed_loop_says_so_and_a_zero_rate_is_refused() {
    let (output, text) = ledger(&[
        "bench",
        "http",
        "--clients",
        "2",
        "--seconds",
        "1",
        "--warmup",
        "0",
        "--stream-subscribers",
        "3",
    ]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("with 3 idle SSE subscribers"), "{text}");
    let (offered, per_second, failed) = http_row(&text, 2);
    assert_eq!(offered, "as fast as answered");
    assert!(per_second > 0.0, "{text}");
    assert_eq!(failed, 0, "{text}");

    let (output, text) = ledger(&["bench", "http", "--clients", "2", "--rate", "0"]);
    assert!(!output.status.success());
    assert!(text.contains("at least one command a second"), "{text}");
}

#[test]
fn the_pipeline_and_its_ceiling_are_measured_in_turn_round_after_round() {
    let (output, text) = ledger(&[
        "bench",
        "commands",
        "--producers",
        "1,2",
        "--orders-per-producer",
        "2",
        "--rounds",
        "2",
    ]);
    assert!(output.status.success(), "{text}");
    // One row per producer level, then one per round, each with its own ratio.
    for level in ["| 1 | 2 |", "| 2 | 4 |"] {
        assert!(text.lines().any(|l| l.starts_with(level)), "{text}");
    }
    let rounds = text
        .split("| round |")
        .nth(1)
        .unwrap_or_else(|| panic!("no table of rounds in:\n{text}"));
    let ratios: Vec<f64> = rounds
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| -"))
        .enumerate()
        .map(|(index, row)| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[1], (index + 1).to_string(), "{text}");
            cells[6].parse::<f64>().expect("a ratio")
        })
        .collect();
    assert_eq!(ratios.len(), 2, "{text}");
    assert!(ratios.iter().all(|r| *r > 0.0), "{text}");
    assert!(
        text.contains("2 producers / ceiling: median") && text.contains("of 2 rounds"),
        "{text}"
    );
}

#[test]
fn a_rebuild_reads_its_log_warm_by_default_and_from_the_disk_when_asked() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let log_dir = scratch.path().join("log");
    let log_dir = log_dir.to_string_lossy();
    let rebuilt = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("rebuilt every view from "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|events| events.parse().ok())
            .unwrap_or_else(|| panic!("no rebuild figure in:\n{text}"))
    };
    let (output, warm) = ledger(&["bench", "rebuild", "--events", "500", "--log-dir", &log_dir]);
    assert!(output.status.success(), "{warm}");
    assert!(warm.contains("read through once"), "{warm}");
    let (output, cold) = ledger(&[
        "bench",
        "rebuild",
        "--events",
        "500",
        "--log-dir",
        &log_dir,
        "--cold-log",
    ]);
    assert!(output.status.success(), "{cold}");
    assert!(cold.contains("reusing the log"), "{cold}");
    assert!(cold.contains("dropped from the page cache"), "{cold}");
    assert!(rebuilt(&warm) >= 500, "{warm}");
    assert_eq!(rebuilt(&cold), rebuilt(&warm), "{cold}");
}
