//! `ledger bench http --url`: the load goes to a service already running, with tokens minted
//! from its secret; a secret it does not share is refused before any load. An HTTPS service
//! is loaded trusting the authority named with `--ca`; `--https` starts one that serves a
//! certificate made for the run.

use crate::eventstoredb::certificates;
use crate::https::start_https;
use crate::support::*;
use std::process::Command;

/// Two clients for one second, at 20 commands a second: enough to see the load go through.
const SHORT_LOAD: [&str; 8] = [
    "--clients",
    "2",
    "--seconds",
    "1",
    "--warmup",
    "0",
    "--rate",
    "20",
];

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
    let load = [&["--url", server.base.as_str()], &SHORT_LOAD[..]].concat();

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
    let cells = load_row(&text, 2);
    assert_eq!(cells[2], "20", "offered: {text}");
    assert!(commands_per_second(&cells) > 0.0, "{text}");
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

    let (ok, text) = bench_http(&["--url", "ftp://localhost:1/"], SECRET, scratch.path());
    assert!(!ok && text.contains("only http:// and https://"), "{text}");
}

/// The cells of the table's row for `clients` clients (the first, `cells[0]`, is empty).
fn load_row(text: &str, clients: usize) -> Vec<&str> {
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("| {clients} |")))
        .unwrap_or_else(|| panic!("no row for {clients} clients in:\n{text}"));
    row.split('|').map(str::trim).collect()
}

fn commands_per_second(cells: &[&str]) -> f64 {
    cells[3].parse().expect("commands/s")
}

#[tokio::test]
async fn an_https_service_is_loaded_trusting_the_authority_named() {
    let (server, ca) = start_https();
    let ca = ca.to_string_lossy().into_owned();
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let scratch = tempfile::tempdir().expect("temp dir");
    let load = |extra: &[&str]| {
        let args = [&["--url", server.base.as_str()], extra, &SHORT_LOAD[..]].concat();
        bench_http(&args, SECRET, scratch.path())
    };

    let (ok, text) = load(&[]);
    assert!(!ok && text.contains("--ca"), "{text}");

    let (ok, text) = load(&["--ca", &ca]);
    assert!(ok, "{text}");
    let cells = load_row(&text, 2);
    assert!(commands_per_second(&cells) > 0.0, "{text}");
    assert_eq!(cells[8], "0", "no command failed: {text}");
    // Its /metrics were read over HTTPS too.
    assert!(
        text.lines()
            .any(|l| l.starts_with("| 2 |") && l.ends_with(" ms |") && l.contains('%')),
        "{text}"
    );

    // A certificate that did not issue the service's is not trusted.
    let stranger = tempfile::tempdir().expect("temp dir");
    certificates(stranger.path());
    let stranger_ca = stranger.path().join("ca.pem");
    let (ok, text) = load(&["--ca", &stranger_ca.to_string_lossy()]);
    assert!(!ok, "{text}");
}

#[test]
fn a_started_service_is_loaded_over_https_when_asked() {
    let scratch = tempfile::tempdir().expect("temp dir");
    // The caller's own configuration is not the scratch service's.
    std::fs::write(
        scratch.path().join("ledger.toml"),
        "tls_cert = \"missing.pem\"\ntls_key = \"missing.key\"\n",
    )
    .expect("config");
    let https = [&["--https"], &SHORT_LOAD[..]].concat();
    let (ok, text) = bench_http(&https, SECRET, scratch.path());
    assert!(ok, "{text}");
    assert!(
        text.contains("started here on a scratch store, at https://127.0.0.1:"),
        "{text}"
    );
    let cells = load_row(&text, 2);
    assert!(commands_per_second(&cells) > 0.0, "{text}");
    assert_eq!(cells[8], "0", "no command failed: {text}");

    let (ok, text) = bench_http(&SHORT_LOAD, SECRET, scratch.path());
    assert!(ok, "{text}");
    assert!(
        text.contains("started here on a scratch store, at http://127.0.0.1:"),
        "{text}"
    );
}
