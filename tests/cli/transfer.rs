//! `ledger export` and `ledger import`: byte-for-byte round trips, checksums, idempotence.

use crate::support::*;
use std::path::Path;

fn export(dir: &Path, extra: &[&str]) -> Vec<u8> {
    let dir = dir.to_string_lossy();
    let mut args = vec!["export", "--data-dir", &dir];
    args.extend_from_slice(extra);
    let (output, text) = ledger(&args);
    assert!(output.status.success(), "{text}");
    output.stdout
}

fn import(file: &Path, dir: &Path, extra: &[&str]) -> (std::process::Output, String) {
    let (file, dir) = (file.to_string_lossy(), dir.to_string_lossy());
    let mut args = vec!["import", &file, "--data-dir", &dir];
    args.extend_from_slice(extra);
    ledger(&args)
}

/// A log of two orders, and its export in a file.
async fn exported() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("log");
    closed_order(&log).await;
    let bytes = export(&log, &[]);
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, &bytes).expect("write export");
    (dir, file, bytes)
}

#[tokio::test]
async fn the_export_of_an_import_equals_the_original_byte_for_byte() {
    let (dir, file, original) = exported().await;
    let lines: Vec<&[u8]> = original
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 5, "four events and the trailer");
    let trailer: serde_json::Value = serde_json::from_slice(lines[4]).expect("trailer");
    assert_eq!(trailer["count"], 4);
    let first: serde_json::Value = serde_json::from_slice(lines[0]).expect("line");
    assert_eq!(
        (first["type"].as_str(), first["schema_version"].as_u64()),
        (Some("OrderPlaced"), Some(1))
    );
    let copy = dir.path().join("copy");
    let (output, text) = import(&file, &copy, &[]);
    assert!(output.status.success(), "{text}");
    assert_eq!(export(&copy, &[]), original);
}

#[tokio::test]
async fn an_export_piped_into_import_or_replay_as_dash_is_loaded_whole_or_not_at_all() {
    let (dir, _, original) = exported().await;
    let copy = dir.path().join("copy");
    let (output, text) = ledger_fed(
        &["import", "-", "--data-dir", &copy.to_string_lossy()],
        Some(&original),
    );
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("imported 4 events from standard input"),
        "{text}"
    );
    assert_eq!(export(&copy, &[]), original);

    let cut = dir.path().join("cut");
    let half = &original[..original.len() / 2];
    let (output, text) = ledger_fed(
        &["import", "-", "--data-dir", &cut.to_string_lossy()],
        Some(half),
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("nothing was imported"), "{text}");
    assert!(
        !cut.join("events.sqlite").exists(),
        "nothing written: {text}"
    );

    let (output, text) = ledger_fed(&["replay", "-"], Some(&original));
    assert!(output.status.success(), "{text}");
    assert!(text.contains("every invariant holds"), "{text}");
}

#[tokio::test]
async fn importing_the_same_file_again_appends_nothing() {
    let (dir, file, original) = exported().await;
    let copy = dir.path().join("copy");
    assert!(import(&file, &copy, &[]).0.status.success());
    let (output, text) = import(&file, &copy, &[]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a non-empty store needs --append: {text}"
    );
    assert!(text.contains("--append"), "{text}");
    let (output, text) = import(&file, &copy, &["--append"]);
    assert!(output.status.success(), "{text}");
    assert_eq!(export(&copy, &[]), original, "nothing was appended");
}

#[tokio::test]
async fn an_increment_that_overlaps_the_store_imports_only_what_is_new() {
    let (dir, _, original) = exported().await;
    let log = dir.path().join("log");
    let write = |name: &str, bytes: Vec<u8>| {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).expect("write");
        file
    };
    let first_two = write("first-two.jsonl", export(&log, &["--to", "1"]));
    // Each export says where the next increment starts, also when it found nothing new.
    let log_dir = log.to_string_lossy();
    for (range, said) in [
        (
            ["--to", "1"],
            "exported 2 events; the next increment: --from 2",
        ),
        (
            ["--from", "2"],
            "exported 2 events; the next increment: --from 4",
        ),
        (
            ["--from", "4"],
            "exported 0 events; the next increment: --from 4",
        ),
    ] {
        let (output, text) = ledger(&["export", "--data-dir", &log_dir, range[0], range[1]]);
        assert!(output.status.success() && text.contains(said), "{text}");
    }
    // From position 1, which the store will hold already: a backup taken with overlap.
    let from_one = write("from-one.jsonl", export(&log, &["--from", "1"]));
    let copy = dir.path().join("copy");
    assert!(import(&first_two, &copy, &[]).0.status.success());
    let (output, text) = import(&from_one, &copy, &["--append"]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("imported 2 events") && text.contains("held the other 1 already"),
        "{text}"
    );
    assert_eq!(export(&copy, &[]), original);

    // A store whose history went another way at revision 2 is refused, and keeps its own.
    let other = dir.path().join("other");
    assert!(import(&first_two, &other, &[]).0.status.success());
    append_raw(&other, &closed_order_events()[..1]).await;
    let before = export(&other, &[]);
    let (output, text) = import(&from_one, &other, &["--append"]);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("order-{ORDER} at revision 2 holds another event")),
        "{text}"
    );
    assert_eq!(export(&other, &[]), before, "nothing was appended");
}

/// A simulated log of four orders, its export in `whole.jsonl`, and a store in `target`
/// holding the log's first event only.
fn simulated_and_its_first_event(dir: &Path) -> (Vec<u8>, std::path::PathBuf, std::path::PathBuf) {
    let source = dir.join("source");
    let (output, text) = ledger(&[
        "simulate",
        "--orders",
        "4",
        "--quiet",
        "--data-dir",
        &source.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{text}");
    let whole = export(&source, &[]);
    let file = dir.join("whole.jsonl");
    std::fs::write(&file, &whole).expect("write");
    let target = dir.join("target");
    let first = dir.join("first.jsonl");
    std::fs::write(&first, export(&source, &["--to", "0"])).expect("write");
    assert!(import(&first, &target, &[]).0.status.success());
    (whole, file, target)
}

/// Appends to `stream` in the store in `target` an event that no export holds.
async fn append_a_stranger(target: &Path, stream: &str, expected: ledger_store::ExpectedRevision) {
    let store = ledger_store::SqliteStore::open(target).expect("store");
    let stranger = ledger_store::EventData {
        event_id: uuid::Uuid::new_v4(),
        event_type: "OrderPlaced".into(),
        data: b"{}".to_vec(),
        metadata: b"{}".to_vec(),
        recorded_at: None,
    };
    let stream = ledger_store::StreamName::new(stream).expect("name");
    ledger_store::EventStore::append(&store, &stream, expected, vec![stranger])
        .await
        .expect("append");
    store.close();
}

#[tokio::test]
async fn an_import_into_a_store_with_another_history_writes_nothing_at_all() {
    let dir = tempfile::tempdir().expect("dir");
    let (whole, file, target) = simulated_and_its_first_event(dir.path());
    let lines: Vec<serde_json::Value> = whole
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("line"))
        .filter(|l: &serde_json::Value| l.get("stream").is_some())
        .collect();
    // The stream that starts last, so that other streams' events come before its first.
    let last_start = lines
        .iter()
        .filter(|l| l["revision"] == 0)
        .max_by_key(|l| l["position"].as_u64())
        .expect("a stream");
    let (late, late_at) = (
        last_start["stream"].as_str().expect("stream"),
        last_start["position"].as_u64().expect("position"),
    );
    assert!(
        late_at > 1,
        "events of other streams precede {late}'s first"
    );

    // The store holds the first event, and another first event of `late`.
    append_a_stranger(&target, late, ledger_store::ExpectedRevision::NoStream).await;
    let before = export(&target, &[]);

    let (output, text) = import(&file, &target, &["--append"]);
    assert!(!output.status.success(), "{text}");
    assert_eq!(
        export(&target, &[]),
        before,
        "not even the events that fitted: {text}"
    );
    assert!(
        text.contains("nothing was imported")
            && text.contains(&format!("{late} at revision 0 holds another event")),
        "{text}"
    );
}

#[tokio::test]
async fn a_tampered_export_is_refused_by_its_checksum_and_writes_nothing() {
    let (dir, file, original) = exported().await;
    let tampered = String::from_utf8(original)
        .expect("utf8")
        .replacen("100.00", "900.00", 1);
    std::fs::write(&file, tampered).expect("write");
    let copy = dir.path().join("copy");
    let (output, text) = import(&file, &copy, &[]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("checksum does not match") && text.contains("nothing was imported"),
        "{text}"
    );
    assert!(
        !copy.join(ledger_store::LOG_FILE_NAME).exists(),
        "no store was even created"
    );
}

#[tokio::test]
async fn a_cut_short_or_malformed_export_is_a_clear_error() {
    let (dir, file, original) = exported().await;
    let text = String::from_utf8(original).expect("utf8");
    let without_trailer: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, without_trailer).expect("write");
    let (output, out) = import(&file, &dir.path().join("a"), &[]);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("cut short"), "{out}");
    std::fs::write(&file, format!("{{not json\n{text}")).expect("write");
    let (output, out) = import(&file, &dir.path().join("b"), &[]);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("line 1:"), "{out}");
    let (output, out) = import(
        &dir.path().join("missing.jsonl"),
        &dir.path().join("c"),
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("opening") && !out.contains("panicked"),
        "{out}"
    );
    // A directory where a file should be: the cause said once, not twice.
    let (output, out) = import(dir.path(), &dir.path().join("d"), &[]);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let cause = "Is a directory (os error 21)";
    assert_eq!(out.matches(cause).count(), 1, "{out}");
}

/// A sound export (checksum and count right) holding an event the store would refuse is
/// refused before anything is written, not halfway through.
/// An export's event lines, without the trailer.
fn event_lines(export: Vec<u8>) -> Vec<String> {
    let text = String::from_utf8(export).expect("utf8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.pop();
    lines
}

/// Writes `lines` with a trailer that fits them, as someone editing an export by hand would:
/// what the checksum cannot catch.
fn write_resealed(file: &Path, lines: &[String]) {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let sha256: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let trailer = serde_json::json!({"count": lines.len(), "sha256": sha256});
    std::fs::write(file, format!("{}\n{trailer}\n", lines.join("\n"))).expect("write");
}

#[tokio::test]
async fn an_export_holding_an_event_the_store_refuses_imports_nothing() {
    let (dir, file, original) = exported().await;
    let mut lines = event_lines(original);
    let last = lines.len() - 1;
    lines[last] = lines[last].replacen(r#""type":"Order"#, r#""type":"Order\nevent: forged"#, 1);
    write_resealed(&file, &lines);
    let copy = dir.path().join("copy");
    let (output, out) = import(&file, &copy, &[]);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "line {}: an event type cannot contain control characters",
            lines.len()
        )) && out.contains("nothing was imported"),
        "{out}"
    );
    assert!(
        !copy.join(ledger_store::LOG_FILE_NAME).exists(),
        "no store was even created"
    );
}

#[tokio::test]
async fn an_export_holding_an_event_this_binary_cannot_read_imports_nothing() {
    let (dir, file, original) = exported().await;
    let lines = event_lines(original);
    let copy = dir.path().join("copy");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    let refused = |edit: &dyn Fn(&mut serde_json::Value), expected: &str| {
        let mut event = first.clone();
        edit(&mut event);
        let mut edited = lines.clone();
        edited[0] = event.to_string();
        write_resealed(&file, &edited);
        let (output, out) = import(&file, &copy, &[]);
        assert_eq!(output.status.code(), Some(1), "{out}");
        assert!(
            out.contains(&format!("line 1: {expected}")) && out.contains("nothing was imported"),
            "{out}"
        );
        assert!(!copy.join(ledger_store::LOG_FILE_NAME).exists(), "{out}");
    };
    refused(
        &|e| e["type"] = "OrderTeleported".into(),
        "position 0: event type `OrderTeleported` is unknown to this binary",
    );
    refused(
        &|e| e["data"]["price"]["amount"] = "abc".into(),
        "position 0: OrderPlaced cannot be read: `abc` is not a decimal amount",
    );
    refused(
        &|e| e["stream"] = "order-without-an-id".into(),
        "position 0: stream `order-without-an-id` is not an order stream",
    );
    refused(
        &|e| e["metadata"]["schema_version"] = 99.into(),
        "position 0: OrderPlaced has schema version 99",
    );
    refused(
        &|e| {
            if let Some(metadata) = e["metadata"].as_object_mut() {
                metadata.remove("command_id");
            }
        },
        "event at position 0 has unreadable metadata: missing field `command_id`",
    );
    // With a broken line further on, the first refusal is still the one named.
    let mut unknown = first.clone();
    unknown["type"] = "OrderTeleported".into();
    let mut edited = lines.clone();
    edited[0] = unknown.to_string();
    edited[2] = "{not json".to_owned();
    write_resealed(&file, &edited);
    let (output, out) = import(&file, &copy, &[]);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("line 1: position 0: event type"), "{out}");
    // The lines as exported import.
    write_resealed(&file, &lines);
    let (output, out) = import(&file, &copy, &[]);
    assert!(output.status.success(), "{out}");
}

#[tokio::test]
async fn an_export_whose_lines_are_repeated_or_reordered_imports_nothing() {
    let (dir, file, original) = exported().await;
    let lines = event_lines(original);
    let copy = dir.path().join("copy");
    let refused = |edited: Vec<String>, expected: String| {
        write_resealed(&file, &edited);
        let (output, out) = import(&file, &copy, &[]);
        assert_eq!(output.status.code(), Some(1), "{out}");
        assert!(
            out.contains(&expected) && out.contains("nothing was imported"),
            "{out}"
        );
        assert!(!copy.join(ledger_store::LOG_FILE_NAME).exists(), "{out}");
    };
    // The last line twice: the store would pass over the repeat, and the count would lie.
    let mut repeated = lines.clone();
    repeated.push(lines[lines.len() - 1].clone());
    refused(repeated, format!("line {}: position", lines.len() + 1));
    // Two lines of one stream swapped: its revisions out of turn.
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    refused(swapped, "at revision 2 after revision 0".to_owned());
    // Positions rising, but a stream's revision skipped: the import would stop half-way.
    let mut skipped = lines.clone();
    skipped.remove(1);
    let renumbered: Vec<String> = skipped
        .iter()
        .enumerate()
        .map(|(at, line)| {
            let mut event: serde_json::Value = serde_json::from_str(line).expect("json");
            event["position"] = serde_json::json!(at);
            event.to_string()
        })
        .collect();
    refused(renumbered, "line 2: `order-".to_owned());
}

/// The store and the file agree on a stream's first event and differ on its second, which the
/// file holds further on: found from what the first run's read saw ahead, before any write.
#[tokio::test]
async fn another_history_later_in_a_stream_is_found_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("dir");
    let (whole, file, target) = simulated_and_its_first_event(dir.path());
    let first_line: serde_json::Value =
        serde_json::from_slice(whole.split(|b| *b == b'\n').next().expect("a line")).expect("json");
    let stream = first_line["stream"].as_str().expect("stream").to_owned();

    // The store holds the first event, then another second event of its stream.
    append_a_stranger(&target, &stream, ledger_store::ExpectedRevision::Exact(0)).await;
    let before = export(&target, &[]);

    let (output, text) = import(&file, &target, &["--append"]);
    assert!(!output.status.success(), "{text}");
    assert_eq!(export(&target, &[]), before, "nothing written: {text}");
    assert!(
        text.contains(&format!("{stream} at revision 1 holds another event")),
        "{text}"
    );
}

#[tokio::test]
async fn an_export_whose_reader_stops_early_ends_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("dir");
    let (output, text) = ledger(&[
        "simulate",
        "--orders",
        "300",
        "--quiet",
        "--data-dir",
        &dir.path().to_string_lossy(),
    ]);
    assert!(output.status.success(), "{text}");
    let mut export = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["export", "--data-dir", &dir.path().to_string_lossy()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ledger export");
    // Like `ledger export | head -c 100`: read a little, then close the pipe.
    let mut head = [0u8; 100];
    export
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut head)
        .expect("the export's first bytes");
    let output = export.wait_with_output().expect("export ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert_eq!(stderr, "", "no error for a reader that had enough");
}

#[tokio::test]
async fn an_export_can_be_limited_to_positions_or_one_stream() {
    let (dir, _, _) = exported().await;
    let log = dir.path().join("log");
    let ranged = String::from_utf8(export(&log, &["--from", "1", "--to", "2"])).expect("utf8");
    let positions: Vec<u64> = ranged
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["position"].as_u64())
        .collect();
    assert_eq!(positions, vec![1, 2]);
    let stream = ledger_domain::order_stream_name(ORDER);
    let one = String::from_utf8(export(&log, &["--stream", &stream])).expect("utf8");
    assert_eq!(one.lines().count(), 5);
    let log_dir = log.to_string_lossy();
    // A stream the log lacks is a mistyped name: an error, not an empty export to keep.
    for (name, words) in [
        (
            "order-elsewhere",
            "the log holds no stream `order-elsewhere`",
        ),
        (
            &ORDER.0.to_string(),
            "(an order's stream is named `order-<id>`)",
        ),
    ] {
        let (output, text) = ledger(&["export", "--data-dir", &log_dir, "--stream", name]);
        assert_eq!(output.status.code(), Some(1), "{text}");
        assert!(text.contains(words), "{text}");
        assert!(output.stdout.is_empty(), "no export, not even a trailer");
    }
    let (output, text) = ledger(&["export", "--data-dir", &log_dir, "--from", "2", "--to", "1"]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("--to 1 is before --from 2"), "{text}");
    assert!(output.stdout.is_empty(), "no export, not even a trailer");
}

#[tokio::test]
async fn replay_prints_the_totals_and_keeps_the_store_when_asked() {
    let (dir, file, _) = exported().await;
    let kept = dir.path().join("kept");
    let (output, text) = ledger(&[
        "replay",
        &file.to_string_lossy(),
        "--keep",
        &kept.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(
            "EUR: escrow held 0.00, wallet credit 80.00, commission 20.00, trial balance 0.00"
        ),
        "{text}"
    );
    assert!(text.contains("every invariant holds"), "{text}");
    let (output, text) = ledger(&["verify", "--data-dir", &kept.to_string_lossy()]);
    assert!(output.status.success(), "the kept store is usable: {text}");
}

#[tokio::test]
async fn replay_reports_a_broken_history_and_fails() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("log");
    let events = closed_order(&log).await;
    let broken = dir.path().join("broken");
    let mut leaky = events.clone();
    if let Some(ledger_domain::Event::OrderClosed(closed)) = leaky.last_mut() {
        closed.commission = eur("10.00");
    }
    append_raw(&broken, &leaky).await;
    let file = dir.path().join("broken.jsonl");
    std::fs::write(&file, export(&broken, &[])).expect("write");
    let (output, text) = ledger(&["replay", &file.to_string_lossy()]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("violation:") && text.contains("commission"),
        "{text}"
    );
}

fn copy(source: &Path, config: &Path) -> (std::process::Output, String) {
    ledger(&[
        "copy",
        "--to",
        &config.to_string_lossy(),
        "--data-dir",
        &source.to_string_lossy(),
    ])
}

fn target_config(dir: &Path, target: &Path) -> std::path::PathBuf {
    let config = dir.join(format!(
        "{}.toml",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("target")
    ));
    std::fs::write(
        &config,
        format!(
            "store = \"embedded\"\ndata_dir = {:?}\n",
            target.to_string_lossy()
        ),
    )
    .expect("config");
    config
}

#[tokio::test]
async fn copy_reproduces_the_log_and_resumes_where_the_target_ends() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("source");
    closed_order(&source).await;
    let target = dir.path().join("target");
    let config = target_config(dir.path(), &target);
    let (output, text) = copy(&source, &config);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("copied 4 events from position 0"), "{text}");
    assert_eq!(export(&target, &[]), export(&source, &[]));
    let (output, text) = copy(&source, &config);
    assert!(
        output.status.success() && text.contains("copied 0 events from position 4"),
        "{text}"
    );
    // The source moves on; the next copy takes only what is new.
    let mut more = closed_order_events();
    more.truncate(2);
    append_raw(&source, &more).await;
    let (output, text) = copy(&source, &config);
    assert!(
        output.status.success() && text.contains("copied 2 events from position 4"),
        "{text}"
    );
    assert_eq!(export(&target, &[]), export(&source, &[]));
}

#[tokio::test]
async fn copy_refuses_a_target_that_is_not_a_copy_of_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("source");
    closed_order(&source).await;
    let target = dir.path().join("target");
    closed_order(&target).await;
    let (output, text) = copy(&source, &target_config(dir.path(), &target));
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("not a copy of this log"), "{text}");
    let (output, text) = ledger(&[
        "copy",
        "--to",
        "/nowhere.toml",
        "--data-dir",
        &source.to_string_lossy(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{text}");
}

/// `copy --from` a position the target holds already passes over what it holds and says
/// so; the target stays a copy of the source.
#[tokio::test]
async fn a_copy_from_a_position_the_target_holds_copies_only_what_is_new() {
    let (dir, _, original) = exported().await;
    let log = dir.path().join("log");
    let target = dir.path().join("target");
    let config = dir.path().join("target.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", target.display().to_string()),
    )
    .expect("config");
    let copy = |extra: &[&str]| {
        let (log, config) = (log.to_string_lossy(), config.to_string_lossy());
        let mut args = vec!["copy", "--data-dir", &log, "--to", &config];
        args.extend_from_slice(extra);
        let (output, text) = ledger(&args);
        assert!(output.status.success(), "{text}");
        text
    };
    assert!(copy(&[]).contains("copied 4 events from position 0"));
    let again = copy(&["--from", "1"]);
    assert!(again.contains("copied 0 events"), "{again}");
    assert_eq!(export(&target, &[]), original, "nothing appended twice");

    // Into itself, named another way: refused as such, not blamed on another process.
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", format!("{}/../log", log.display())),
    )
    .expect("config");
    let (log_dir, config) = (log.to_string_lossy(), config.to_string_lossy());
    let (output, text) = ledger(&["copy", "--data-dir", &log_dir, "--to", &config]);
    assert!(!output.status.success());
    assert!(text.contains("the target is the source"), "{text}");
}

/// A file often handed over for an export by mistake is named for what it is, and nothing is
/// imported: a compressed export, or the store's own database.
#[tokio::test]
async fn a_compressed_export_or_the_store_itself_is_named_for_what_it_is() {
    let (dir, _file, original) = exported().await;
    let copy = dir.path().join("copy");
    // The export behind a gzip header, as `gzip` begins its files.
    let gzipped = dir.path().join("events.jsonl.gz");
    let mut bytes = vec![0x1f, 0x8b, 0x08, 0x00];
    bytes.extend_from_slice(&original);
    std::fs::write(&gzipped, &bytes).expect("write");
    let database = dir.path().join("log").join(ledger_store::LOG_FILE_NAME);
    for (file, expected) in [
        (&gzipped, "line 1: this is a gzip file: decompress it first"),
        (
            &database,
            "line 1: this is a SQLite database, not an export",
        ),
    ] {
        let (output, out) = import(file, &copy, &[]);
        assert_eq!(output.status.code(), Some(1), "{out}");
        assert!(
            out.contains(expected) && out.contains("nothing was imported"),
            "{out}"
        );
        assert!(!copy.join(ledger_store::LOG_FILE_NAME).exists(), "{out}");
    }
}

/// Events another application appended through the EventStoreDB protocol (`invoice-1` here):
/// whatever their bytes, they are backed up, restored and verified with the ledger's own.
#[tokio::test]
async fn another_applications_events_travel_byte_for_byte_and_are_passed_by_verify() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("source");
    simulated(&source, "3", "1");
    let payloads: [(&[u8], &[u8]); 4] = [
        (b"{\n  \"n\": 1\n}", b"{}"),
        (&[0xff, 0x00, 0x7f], b""),
        (b"plain text", br#"{"by":"billing"}"#),
        (br#"{"n":2}"#, b" {} "),
    ];
    let store = ledger_store::SqliteStore::open(&source).expect("store");
    let stream = ledger_store::StreamName::new("invoice-1").expect("name");
    for (data, metadata) in payloads {
        let event = ledger_store::EventData {
            event_id: uuid::Uuid::new_v4(),
            event_type: "InvoiceSent".into(),
            data: data.to_vec(),
            metadata: metadata.to_vec(),
            recorded_at: None,
        };
        let appended = ledger_store::EventStore::append(
            &store,
            &stream,
            ledger_store::ExpectedRevision::Any,
            vec![event],
        );
        appended.await.expect("append");
    }
    store.close();

    let (output, text) = ledger(&["verify", "--data-dir", &source.to_string_lossy()]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(
            "(and 4 events of other applications' streams, passed by): every invariant holds"
        ),
        "{text}"
    );

    let original = export(&source, &[]);
    let lines = event_lines(original.clone());
    let invoices: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("one event a line"))
        .filter(|line| line["stream"] == "invoice-1")
        .collect();
    assert_eq!(invoices.len(), 4, "{lines:?}");
    assert_eq!(invoices[1]["data_encoding"], "base64", "{:?}", invoices[1]);
    assert_eq!(
        invoices[3]["data"],
        serde_json::json!({"n": 2}),
        "JSON on one line goes as JSON"
    );

    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, &original).expect("export written");
    let copy = dir.path().join("copy");
    let (output, text) = import(&file, &copy, &[]);
    assert!(output.status.success(), "{text}");
    assert_eq!(
        export(&copy, &[]),
        original,
        "the export of the import is the original"
    );
    let store = ledger_store::SqliteStore::open(&copy).expect("store");
    let restored = ledger_store::read_whole_stream(&store, &stream)
        .await
        .expect("read");
    store.close();
    let restored: Vec<(&[u8], &[u8])> = restored
        .iter()
        .map(|event| (event.data.as_slice(), event.metadata.as_slice()))
        .collect();
    assert_eq!(restored, payloads, "byte for byte");

    let (output, text) = ledger(&["replay", &file.to_string_lossy()]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("every invariant holds"), "{text}");

    // A line whose base64 was damaged (and the trailer fixed) is refused before anything is
    // written.
    let damaged: Vec<String> = lines
        .iter()
        .map(|line| line.replace(r#""data":"/wB/""#, r#""data":"/w!/""#))
        .collect();
    assert_ne!(damaged, lines, "the binary event's line: {lines:?}");
    write_resealed(&file, &damaged);
    let fresh = dir.path().join("fresh");
    let (output, text) = import(&file, &fresh, &[]);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("data is not base64") && text.contains("nothing was imported"),
        "{text}"
    );
    assert!(!fresh.join(ledger_store::LOG_FILE_NAME).exists(), "{text}");
}
