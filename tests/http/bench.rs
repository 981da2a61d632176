//! `ledger bench http --url`: the load goes to a service already running, with tokens minted
//! from its secret; a secret it does not share is refused before any load.

use crate::support::*;
use std::process::Command;

/// `ledger bench http ARGS` with `secret` configured; whether it succeeded, and its output.
fn bench_http(args: &[&str], secret: &str, dir: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["bench", "http"])
        .args(args)
        .env("LEDGER_JWT_SECRET", secret)
        .current_dir(dir)
        .output()
        .expect("ledger bench runs");
    (output.status.success(), printed(&output))
}

#[tokio::test]
async fn a_running_service_takes_the_load_when_the_tokens_are_minted_from_its_secret() {
    let server = Server::start();
    let scratch = tempfile::tempdir().expect("temp dir");
    let load = [
        "--url",
        server.base.as_str(),
        "--clients",
        "2",
        "--seconds",
        "1",
        "--warmup",
        "0",
        "--rate",
        "20",
    ];

    let (ok, text) = bench_http(&load, "not-the-service-secret", scratch.path());
    assert!(!ok, "{text}");
    assert!(text.contains("was not accepted"), "{text}");
    assert_eq!(
        server.log_head().await,
        None,
        "a refused run sent no command"
    );

    let (ok, text) = bench_http(&load, SECRET, scratch.path());
    assert!(ok, "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("| 2 | 20 |"))
        .unwrap_or_else(|| panic!("no row for 2 clients at 20/s in:\n{text}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let commands: f64 = cells[3].parse().expect("commands/s");
    assert!(commands > 0.0, "{text}");
    assert_eq!(cells[8], "0", "no command failed: {text}");
    assert_eq!(cells[9], "n/a", "a service elsewhere is not timed: {text}");
    // The orders are in the running service's log, and its own timings were read.
    assert!(
        server.log_head().await.is_some_and(|head| head > 0),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("| 2 |") && l.ends_with(" ms |") && l.contains('%')),
        "{text}"
    );

    let (ok, text) = bench_http(&["--url", "https://localhost:1/"], SECRET, scratch.path());
    assert!(!ok && text.contains("only http://"), "{text}");
}
