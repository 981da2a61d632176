//! The conformance suite on the embedded SQLite backend, and what is particular to it.

use ledger_store::conformance::{event, events, stream};
use ledger_store::*;

async fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open store");
    (store, dir)
}

ledger_store::conformance_tests!(fresh());

/// Every few entries the per-stream index is written to its table, a stream or two per
/// transaction, so that reads and the writer's checks merge the table with the entries still
/// in memory at every turn.
mod index_written_often {
    use super::*;

    async fn fresh() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_writing_index_every(dir.path(), 3);
        (store, dir)
    }

    ledger_store::conformance_tests!(fresh());
}

/// A store that writes its index once `entries` are pending, two entries' worth of streams
/// per transaction.
fn open_writing_index_every(path: &std::path::Path, entries: usize) -> SqliteStore {
    let options = SqliteOptions {
        index_flush_entries: entries,
        index_slice_entries: 2,
        ..SqliteOptions::default()
    };
    SqliteStore::open_with(path, options).expect("open store")
}

/// Each stream's events, read forwards and backwards, as `(revision, event id)`.
async fn stream_contents(store: &SqliteStore, name: &str) -> Vec<(u64, uuid::Uuid)> {
    let forwards = store
        .read_stream(&stream(name), StreamFrom::Start, Direction::Forwards, 1_000)
        .await
        .expect("read forwards");
    let mut backwards = store
        .read_stream(&stream(name), StreamFrom::End, Direction::Backwards, 1_000)
        .await
        .expect("read backwards");
    backwards.reverse();
    let contents: Vec<(u64, uuid::Uuid)> =
        forwards.iter().map(|e| (e.revision, e.event_id)).collect();
    let reversed: Vec<(u64, uuid::Uuid)> =
        backwards.iter().map(|e| (e.revision, e.event_id)).collect();
    assert_eq!(contents, reversed, "{name} reads the same both ways");
    contents
}

#[tokio::test]
async fn the_index_not_yet_written_is_rebuilt_from_the_log_on_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let names = ["order-a", "order-b", "order-c"];
    let mut written: std::collections::HashMap<&str, Vec<uuid::Uuid>> = Default::default();
    let mut last_append = None;
    {
        // 23 events with the index written every 5 entries: some in the table, some not.
        let store = open_writing_index_every(dir.path(), 5);
        for i in 0..23u64 {
            let name = names[(i * 7 % 3) as usize];
            let batch = vec![event("Tested", i)];
            let ids = written.entry(name).or_default();
            let expected = match ids.len() {
                0 => ExpectedRevision::NoStream,
                n => ExpectedRevision::Exact(n as u64 - 1),
            };
            ids.push(batch[0].event_id);
            let result = store
                .append(&stream(name), expected, batch.clone())
                .await
                .expect("append");
            last_append = Some((name, expected, batch, result));
        }
        store.close();
    }
    for flush_every in [5, INDEX_FLUSH_ENTRIES_DEFAULT] {
        let store = open_writing_index_every(dir.path(), flush_every);
        for name in names {
            let contents = stream_contents(&store, name).await;
            let expected: Vec<(u64, uuid::Uuid)> = written[name]
                .iter()
                .enumerate()
                .map(|(i, id)| (i as u64, *id))
                .collect();
            assert_eq!(contents, expected, "{name} after reopening");
        }
        // The writer's checks see the same: a stale revision is refused, a retried append
        // answers as it was answered.
        let (name, expected, batch, first) = last_append.clone().expect("appended");
        let stale = store
            .append(&stream(name), expected, vec![event("Tested", 99)])
            .await;
        assert!(
            matches!(stale, Err(StoreError::WrongExpectedRevision { .. })),
            "{stale:?}"
        );
        let retried = store
            .append(&stream(name), expected, batch)
            .await
            .expect("retry");
        assert_eq!(retried, first);
        store.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_while_the_index_is_written_see_every_acknowledged_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_writing_index_every(dir.path(), 7);
    let mut writers = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = [0u64; 5];
            for i in 0..60 {
                let which = i % 5;
                let name = format!("order-{writer}-{which}");
                store
                    .append(&stream(&name), ExpectedRevision::Any, events(1))
                    .await
                    .expect("append");
                acknowledged[which] += 1;
                let read = store
                    .read_stream(&stream(&name), StreamFrom::Start, Direction::Forwards, 100)
                    .await
                    .expect("read");
                let revisions: Vec<u64> = read.iter().map(|e| e.revision).collect();
                let expected: Vec<u64> = (0..acknowledged[which]).collect();
                assert_eq!(revisions, expected, "{name} after {i} appends");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
}

#[tokio::test]
async fn a_log_of_the_first_schema_is_migrated_and_reads_as_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        // The first schema, as a log written by an earlier release holds it.
        let db = rusqlite::Connection::open(dir.path().join(LOG_FILE_NAME)).expect("db");
        db.execute_batch(
            "CREATE TABLE streams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             CREATE TABLE events (
                position INTEGER PRIMARY KEY, stream_id INTEGER NOT NULL REFERENCES streams (id),
                revision INTEGER NOT NULL, event_id BLOB NOT NULL, event_type TEXT NOT NULL,
                data BLOB NOT NULL, metadata BLOB NOT NULL, recorded_at INTEGER NOT NULL);
             CREATE UNIQUE INDEX events_by_stream ON events (stream_id, revision);
             INSERT INTO streams VALUES (0, 'order-a'), (1, 'order-b');
             PRAGMA user_version = 1;",
        )
        .expect("first schema");
        for (position, (stream_id, revision)) in [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
            .into_iter()
            .enumerate()
        {
            db.execute(
                "INSERT INTO events VALUES (?1, ?2, ?3, ?4, 'Tested', x'7b7d', x'7b7d', 0)",
                rusqlite::params![
                    position as i64,
                    stream_id,
                    revision,
                    uuid::Uuid::new_v4().as_bytes()
                ],
            )
            .expect("event");
        }
    }
    let store = SqliteStore::open(dir.path()).expect("open and migrate");
    let revisions = |contents: Vec<(u64, uuid::Uuid)>| -> Vec<u64> {
        contents.into_iter().map(|(r, _)| r).collect()
    };
    assert_eq!(
        revisions(stream_contents(&store, "order-a").await),
        [0, 1, 2]
    );
    assert_eq!(revisions(stream_contents(&store, "order-b").await), [0, 1]);
    let next = store
        .append(&stream("order-b"), ExpectedRevision::Exact(1), events(1))
        .await
        .expect("append after migrating");
    assert_eq!(next.next_expected_revision, 2);
    assert_eq!(next.position, 5);
}

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

/// A full disk refuses an append as such (the service answers 503 `storage_full`, not 500),
/// writes none of it, and leaves no gap: once there is room, positions go on from the last
/// acknowledged one.
#[tokio::test]
async fn an_append_refused_by_a_full_disk_says_so_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let big = |n: u64| {
        let mut data = event("Tested", n);
        data.data = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(2_000)).into_bytes();
        vec![data]
    };
    let acknowledged = {
        let options = SqliteOptions {
            max_log_pages: Some(32),
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(dir.path(), options).expect("open");
        let mut acknowledged = 0;
        let refusal = loop {
            assert!(acknowledged < 1_000, "32 pages never filled up");
            match store
                .append(&stream("order-a"), ExpectedRevision::Any, big(acknowledged))
                .await
            {
                Ok(result) => {
                    assert_eq!(result.position, acknowledged);
                    acknowledged += 1;
                }
                Err(error) => break error,
            }
        };
        assert!(
            matches!(refusal, StoreError::Full(_)),
            "a full disk is told apart from other I/O errors: {refusal:?}"
        );
        assert!(refusal.to_string().contains("full"), "{refusal}");
        let logged = store
            .read_all(AllFrom::Start, Direction::Forwards, 10_000)
            .await
            .expect("read");
        assert_eq!(
            logged.len() as u64,
            acknowledged,
            "the refused append wrote nothing"
        );
        store.close();
        acknowledged
    };
    assert!(acknowledged > 0);
    let store = SqliteStore::open(dir.path()).expect("reopen with room");
    let next = store
        .append(
            &stream("order-a"),
            ExpectedRevision::Exact(acknowledged - 1),
            big(0),
        )
        .await
        .expect("append once there is room");
    assert_eq!(
        next.position, acknowledged,
        "no gap where the refused append was"
    );
    assert_eq!(next.next_expected_revision, acknowledged);
}

/// An ordered batch that meets a full disk stops there: nothing after the refused append is
/// made, even an append small enough to fit, so a log being loaded never has a hole.
#[tokio::test]
async fn appends_in_order_stop_at_a_full_disk_and_leave_no_hole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let padded = |n: u64| {
        let mut data = event("Tested", n);
        data.data = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(6_000)).into_bytes();
        data
    };
    let options = SqliteOptions {
        max_log_pages: Some(32),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path(), options).expect("open");
    let mut filled = 0;
    while store
        .append(
            &stream("order-fill"),
            ExpectedRevision::Any,
            vec![padded(filled)],
        )
        .await
        .is_ok()
    {
        filled += 1;
        assert!(filled < 1_000, "32 pages never filled up");
    }
    let append = |name: &str, event: EventData| Append {
        stream: stream(name),
        expected: ExpectedRevision::NoStream,
        events: vec![event],
    };
    // More than one transaction takes, so the last small ones are committed apart from the
    // big one, where they would fit.
    let mut batch = vec![append("order-big", padded(0))];
    batch.extend((0..4_100).map(|n| Append {
        stream: stream("order-small"),
        expected: ExpectedRevision::Any,
        events: vec![event("Tested", n)],
    }));
    match store.append_in_order(batch.clone()).await {
        Err(StoreError::Full(_)) => {}
        other => panic!("expected a full disk, got {other:?}"),
    }
    let logged = store
        .read_all(AllFrom::Start, Direction::Forwards, 10_000)
        .await
        .expect("read");
    assert_eq!(logged.len() as u64, filled, "none of the batch was made");
    store.close();
    let store = SqliteStore::open(dir.path()).expect("reopen with room");
    let results = store
        .append_in_order(batch)
        .await
        .expect("the same batch once there is room");
    let positions: Vec<u64> = results.iter().map(|r| r.position).collect();
    let expected: Vec<u64> = (filled..filled + 4_101).collect();
    assert_eq!(positions, expected, "no gap");
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
        ..SqliteOptions::default()
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

/// A WAL that fills slowly is copied into the database in rounds of ~1,000 frames, not only
/// once it holds 4,000: each round's sync then flushes less to the disk at once, which the
/// commits' own syncs would otherwise wait behind.
#[tokio::test]
async fn a_wal_that_fills_slowly_is_copied_in_small_rounds() {
    let (store, dir) = fresh().await;
    let database = dir.path().join(LOG_FILE_NAME);
    let size = || std::fs::metadata(&database).map_or(0, |m| m.len());
    let page = 4_096;
    // A page of data an event: ~1,500 frames, well under the 4,000 of a checkpoint, with
    // pauses longer than the least time between two early rounds.
    for batch in 0..150 {
        if batch % 50 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        let events = (0..10)
            .map(|n| EventData {
                data: vec![b'7'; page],
                ..event("Tested", batch * 10 + n)
            })
            .collect();
        store
            .append(&stream("order-slow"), ExpectedRevision::Any, events)
            .await
            .expect("append");
    }
    // A commit asks for a round; the last one asks for it after the last pause.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    store
        .append(&stream("order-slow"), ExpectedRevision::Any, events(1))
        .await
        .expect("append");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while size() < 1_000 * page as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL was not copied: the database holds {} bytes",
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A store that has stopped is one file: its WAL copied in and gone, so that the log is
/// whole in `events.sqlite` for whoever copies the data directory's files afterwards.
#[tokio::test]
async fn a_closed_store_leaves_its_log_in_one_file() {
    let (store, dir) = fresh().await;
    for name in ["order-a", "order-b"] {
        store
            .append(&stream(name), ExpectedRevision::NoStream, events(3))
            .await
            .expect("append");
    }
    let read = store
        .read_all(AllFrom::Start, Direction::Forwards, 100)
        .await
        .expect("read");
    assert_eq!(read.len(), 6);
    drop(store);
    let wal = dir.path().join("events.sqlite-wal");
    assert!(!wal.exists(), "{} is left", wal.display());

    let copy = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        dir.path().join("events.sqlite"),
        copy.path().join("events.sqlite"),
    )
    .expect("copy the log's file alone");
    let reopened = SqliteStore::open(copy.path()).expect("open the copy");
    let again = reopened
        .read_all(AllFrom::Start, Direction::Forwards, 100)
        .await
        .expect("read the copy");
    assert_eq!(again, read);
}
