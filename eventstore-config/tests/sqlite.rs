//! The conformance suite on the embedded SQLite backend, and what is particular to it.

use ledger_store::conformance::{event, events, stream};
use ledger_store::*;

async fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open store");
    (store, dir)
}

ledger_store::conformance_tests!(fresh());

#[tokio::test]
async fn the_log_survives_reopening_and_positions_continue() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .append(&stream("order-a"), ExpectedRevision::NoStream, events(3))
            .await
            .expect("append");
        store.close();
    }
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let r = store
        .append(&stream("order-a"), ExpectedRevision::Exact(2), events(1))
        .await
        .expect("append");
    assert_eq!(
        r,
        AppendResult {
            next_expected_revision: 3,
            position: 3
        }
    );
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    SqliteStore::open(dir.path()).expect("open").close();
    set_user_version(&dir.path().join(LOG_FILE_NAME), 99);
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("newer"), "{message}"),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
}

/// Writes SQLite's header field `user_version` (offset 60, big-endian) directly.
fn set_user_version(path: &std::path::Path, version: u32) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open db file");
    file.seek(SeekFrom::Start(60)).expect("seek");
    file.write_all(&version.to_be_bytes()).expect("write");
    file.sync_all().expect("sync");
}

#[tokio::test]
async fn configuration_defaults_to_the_embedded_store_in_data() {
    let config = StoreConfig::load(Some(std::path::Path::new("/nonexistent/ledger.toml")))
        .expect("defaults");
    assert_eq!(config.store, StoreKind::Embedded);
    assert_eq!(config.data_dir, std::path::PathBuf::from("./data"));
}

#[tokio::test]
async fn configuration_refuses_eventstoredb_without_a_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ledger.toml");
    std::fs::write(&file, "store = \"eventstoredb\"\n").expect("write");
    assert!(matches!(
        StoreConfig::load(Some(&file)),
        Err(ConfigError::MissingEventStoreDbUrl)
    ));
    std::fs::write(
        &file,
        "store = \"eventstoredb\"\neventstoredb_url = \"esdb://localhost:2113?tls=false\"\n",
    )
    .expect("write");
    assert_eq!(
        StoreConfig::load(Some(&file)).expect("valid").store,
        StoreKind::EventStoreDb
    );
    std::fs::write(&file, "store = \"floppy\"\n").expect("write");
    assert!(matches!(
        StoreConfig::load(Some(&file)),
        Err(ConfigError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_live_subscriber_that_falls_far_behind_rereads_and_misses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteOptions {
        live_feed_batches: 4,
    };
    let store = SqliteStore::open_with(dir.path(), options).expect("open");
    let mut subscription = store
        .subscribe_all(SubscribeFrom::Start)
        .await
        .expect("subscribe");
    // Not consuming while the feed overflows: the subscriber must notice and re-read.
    let waiting =
        tokio::time::timeout(std::time::Duration::from_millis(50), subscription.next()).await;
    assert!(waiting.is_err(), "nothing to deliver yet");
    for i in 0..40 {
        store
            .append(
                &stream(&format!("order-{}", i % 3)),
                ExpectedRevision::Any,
                events(2),
            )
            .await
            .expect("append");
    }
    for expected in 0..80 {
        let event = subscription.next().await.expect("event");
        assert_eq!(event.position, expected);
    }
}

#[tokio::test]
async fn an_imported_event_keeps_its_recorded_instant() {
    let (store, _dir) = fresh().await;
    let then = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("instant");
    let mut imported = events(1);
    imported[0].recorded_at = Some(then);
    store
        .append(&stream("order-old"), ExpectedRevision::NoStream, imported)
        .await
        .expect("append");
    store
        .append(&stream("order-new"), ExpectedRevision::NoStream, events(1))
        .await
        .expect("append");
    let all = store
        .read_all(AllFrom::Start, Direction::Forwards, 10)
        .await
        .expect("read");
    assert_eq!(all[0].recorded_at, then);
    assert!(
        all[1].recorded_at > then,
        "without one, the store records now"
    );
}

/// The embedded store numbers `$all` without gaps, from 0, whatever the concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn positions_are_gapless_from_zero_under_concurrent_appends() {
    let (store, _dir) = fresh().await;
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &stream(&format!("order-{i}")),
                    ExpectedRevision::Any,
                    events(3),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("append");
    }
    let all = store
        .read_all(AllFrom::Start, Direction::Forwards, READ_EVENTS_MAX)
        .await
        .expect("read");
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, (0..96).collect::<Vec<_>>());
}

/// Bytes of event data the WAL-reuse test appends: several times what the store lets the WAL
/// hold (4,000 frames of 4 KiB) before copying it into the database.
const STEADY_LOAD_BYTES: usize = 96 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_steady_load_the_wal_is_copied_back_and_starts_over() {
    let (store, dir) = fresh().await;
    let store = std::sync::Arc::new(store);
    let wal = dir.path().join(format!("{LOG_FILE_NAME}-wal"));
    // A page of data an event, in appends of 16, from 8 writers that never pause: the
    // checkpoint never finds the writer idle.
    let event_bytes = 4_000;
    let appends_per_writer = STEADY_LOAD_BYTES / event_bytes / 16 / 8;
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = std::sync::Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for _ in 0..appends_per_writer {
                let batch = (0..16)
                    .map(|n| EventData {
                        data: vec![b'7'; event_bytes],
                        ..event("Tested", n)
                    })
                    .collect();
                store
                    .append(&stream(&format!("order-{w}")), ExpectedRevision::Any, batch)
                    .await
                    .expect("append");
            }
        }));
    }
    let mut largest_wal = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    assert!(
        largest_wal < (STEADY_LOAD_BYTES / 3) as u64,
        "the WAL grew to {largest_wal} bytes for {STEADY_LOAD_BYTES} bytes appended"
    );
}
