//! `ledger.toml`: a key nothing reads is refused, so a typo cannot leave a default in place.

use crate::support::*;
use std::time::{Duration, Instant};

const TYPO: &str = "`data-dir` that nothing reads (a typo?)";

#[tokio::test]
async fn a_configuration_key_nothing_reads_is_refused_by_every_command() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("log");
    closed_order(&log).await;
    let typo = dir.path().join("typo.toml");
    let log_text = log.to_string_lossy();
    std::fs::write(
        &typo,
        format!("data-dir = \"{log_text}\"\ntimer_interval_ms = 500\n"),
    )
    .expect("config");
    let typo_text = typo.to_string_lossy();

    for args in [
        vec!["export", "--config", &typo_text, "--data-dir", &log_text],
        vec![
            "token",
            "--role",
            "buyer",
            "--sub",
            "00000000-0000-0000-0000-000000000001",
            "--config",
            &typo_text,
        ],
    ] {
        let (output, text) = ledger(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains(TYPO) && text.contains("data_dir"), "{text}");
    }

    // The service refuses to start, before it opens any store.
    let stderr = refused_start(dir.path(), &["--config", &typo_text]);
    assert!(stderr.contains(TYPO), "{stderr}");
    assert!(!dir.path().join("data").exists(), "no store was created");

    // Spelt right, the same file is read.
    std::fs::write(
        &typo,
        format!("data_dir = \"{log_text}\"\ntimer_interval_ms = 500\n"),
    )
    .expect("config");
    let (output, text) = ledger(&["export", "--config", &typo_text]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("exported 4 events"), "{text}");
}

/// A `LEDGER_*` variable that names no setting is named in a warning, where it would
/// otherwise leave a default in place unseen; a variable spelt right is taken, and no
/// warning given.
#[tokio::test]
async fn a_ledger_variable_that_names_no_setting_is_warned_of() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("log");
    closed_order(&log).await;
    let run = |variable: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(["export", "--data-dir", &log.to_string_lossy()])
            .env_remove("LEDGER_STORE")
            .env_remove("LEDGER_DATA_DIR")
            .env(variable, dir.path().join("elsewhere"))
            .output()
            .expect("run ledger");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run("LEDGER_DATA_DIRR");
    assert!(
        stderr.contains("warning: LEDGER_DATA_DIRR names no setting and is ignored (a typo?)")
            && stderr.contains("LEDGER_DATA_DIR,"),
        "{stderr}"
    );
    let stderr = run("LEDGER_JWT_SECRET");
    assert!(!stderr.contains("warning"), "{stderr}");

    // The service logs it as it logs the rest: JSON with `--log-format json`.
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args([
            "serve",
            "--dev",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("served"))
        .env("LEDGER_DATA_DIRR", dir.path().join("elsewhere"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = std::io::BufReader::new(serve.stderr.take().expect("stderr"));
    let first = std::io::BufRead::lines(stderr).next();
    let _ = serve.kill();
    let _ = serve.wait();
    let line = first.expect("a log line").expect("text");
    let logged: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(logged["level"], "WARN", "{line}");
    assert_eq!(logged["fields"]["variables"], "LEDGER_DATA_DIRR", "{line}");
}

/// `ledger serve --dev` in `dir` with `args`, which must stop at its start (within 30 s, not
/// serve): its standard error.
fn refused_start(dir: &std::path::Path, args: &[&str]) -> String {
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = serve.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = serve.kill();
            panic!("serve started despite the configuration");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success(), "{stderr}");
    stderr
}

/// TOML's trap: a key written after a `[[grpc_users]]` entry belongs to that entry. Taken
/// there without a word, `grpc_anonymous_read = true` did nothing; a user's unknown key is
/// refused as the file's are.
#[test]
fn a_key_a_grpc_user_does_not_take_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("ledger.toml"),
        "[[grpc_users]]\nusername = \"subscriber\"\npassword = \"pw\"\n\
         grpc_anonymous_read = true\n",
    )
    .expect("config");
    let stderr = refused_start(dir.path(), &[]);
    assert!(stderr.contains("found `grpc_anonymous_read`"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "no store was created");
}

/// The TLS files, the node's and the HTTP API's, are read before anything listens: a
/// certificate without its key, a file that is not there, a key that is not the certificate's,
/// or TLS for a node that is not served stops the start and names what is wrong.
#[test]
fn tls_files_that_cannot_serve_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let write_pair = |name: &str| {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("pair");
        let (certificate, key) = (format!("{name}.pem"), format!("{name}.key"));
        std::fs::write(dir.path().join(&certificate), pair.cert.pem()).expect("certificate");
        std::fs::write(dir.path().join(&key), pair.signing_key.serialize_pem()).expect("key");
        (certificate, key)
    };
    let (certificate, key) = write_pair("node");
    let (_, other_key) = write_pair("other");
    let listen = ["--grpc-listen", "127.0.0.1:0"];
    let cases: [(&str, &[&str], String); 8] = [
        (
            "grpc_tls_cert and grpc_tls_key go together",
            &listen,
            format!("grpc_tls_cert = \"{certificate}\"\n"),
        ),
        (
            "go together",
            &listen,
            format!("grpc_tls_key = \"{key}\"\n"),
        ),
        (
            "the certificate file missing.pem",
            &listen,
            format!("grpc_tls_cert = \"missing.pem\"\ngrpc_tls_key = \"{key}\"\n"),
        ),
        (
            "cannot serve TLS together",
            &listen,
            format!("grpc_tls_cert = \"{certificate}\"\ngrpc_tls_key = \"{other_key}\"\n"),
        ),
        (
            "the EventStoreDB protocol is not served",
            &[],
            format!("grpc_tls_cert = \"{certificate}\"\ngrpc_tls_key = \"{key}\"\n"),
        ),
        // The HTTP API's own pair, refused the same ways.
        (
            "tls_cert and tls_key go together",
            &[],
            format!("tls_key = \"{key}\"\n"),
        ),
        (
            "tls_cert/tls_key: the certificate file missing.pem",
            &[],
            format!("tls_cert = \"missing.pem\"\ntls_key = \"{key}\"\n"),
        ),
        (
            "tls_cert/tls_key: the certificate and the key cannot serve TLS together",
            &[],
            format!("tls_cert = \"{certificate}\"\ntls_key = \"{other_key}\"\n"),
        ),
    ];
    for (expected, args, config) in cases {
        std::fs::write(dir.path().join("ledger.toml"), &config).expect("config");
        let stderr = refused_start(dir.path(), args);
        assert!(stderr.contains(expected), "{config}: {stderr}");
        assert!(
            !dir.path().join("data").exists(),
            "{config}: no store was created"
        );
    }
}

/// The EventStoreDB client reads a connection string's certificate files in a task of its
/// own and panics there on one it cannot read, and panics on a host or a connection name it
/// cannot send; the service refuses them at start instead.
#[test]
fn a_connection_strings_file_or_name_the_client_cannot_use_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("not-pem.txt"), "not a certificate\n").expect("file");
    for (parameters, said) in [
        (
            "tlsCaFile=missing.pem",
            "tlsCaFile `missing.pem` cannot be used",
        ),
        ("tlsCaFile=not-pem.txt", "holds no PEM certificate"),
        (
            "userCertFile=not-pem.txt&userKeyFile=not-pem.txt",
            "userCertFile `not-pem.txt` cannot be used",
        ),
        (
            "connectionName=a%0Ab",
            "connectionName `a\\nb` cannot be sent",
        ),
    ] {
        std::fs::write(
            dir.path().join("ledger.toml"),
            format!(
                "store = \"eventstoredb\"\n\
                 eventstoredb_url = \"esdb://ledger:secret@127.0.0.1:1?{parameters}\"\n"
            ),
        )
        .expect("config");
        let stderr = refused_start(dir.path(), &[]);
        assert!(stderr.contains(said), "{parameters}: {stderr}");
        assert!(!stderr.contains("panicked"), "{parameters}: {stderr}");
        assert!(
            !stderr.contains("secret"),
            "the password is never shown: {stderr}"
        );
    }
}
