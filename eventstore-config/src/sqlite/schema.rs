//! The schema, versioned with `PRAGMA user_version` and migrated on open.

use crate::error::StoreError;
use rusqlite::config::DbConfig;
use rusqlite::Connection;

/// The schema this code writes. A database with a newer one is refused, never guessed at.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: [&str; 2] = [
    // 1: the log. `position` is the rowid: gapless, assigned by the single writer. Streams
    // are keyed by a small integer so the per-stream index stays compact; there is no global
    // index on event ids (idempotency looks where the append would land, in its stream).
    "CREATE TABLE streams (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
     );
     CREATE TABLE events (
        position    INTEGER PRIMARY KEY,
        stream_id   INTEGER NOT NULL REFERENCES streams (id),
        revision    INTEGER NOT NULL,
        event_id    BLOB    NOT NULL,
        event_type  TEXT    NOT NULL,
        data        BLOB    NOT NULL,
        metadata    BLOB    NOT NULL,
        recorded_at INTEGER NOT NULL
     );
     CREATE UNIQUE INDEX events_by_stream ON events (stream_id, revision);",
    // 2: the per-stream index becomes a table written in sorted batches (`index.rs`): an
    // index kept row by row cost the writer more than the rows themselves, since appends land
    // on streams spread over all of it. `indexed.upto`: every event below it is in
    // `stream_index`; the events from it on are indexed in memory, from the log, on open.
    "CREATE TABLE stream_index (
        stream_id INTEGER NOT NULL,
        revision  INTEGER NOT NULL,
        position  INTEGER NOT NULL,
        PRIMARY KEY (stream_id, revision)
     ) WITHOUT ROWID;
     INSERT INTO stream_index (stream_id, revision, position)
        SELECT stream_id, revision, position FROM events ORDER BY stream_id, revision;
     DROP INDEX events_by_stream;
     CREATE TABLE indexed (id INTEGER PRIMARY KEY CHECK (id = 0), upto INTEGER NOT NULL);
     INSERT INTO indexed (id, upto) SELECT 0, COALESCE(MAX(position) + 1, 0) FROM events;",
];

/// Sets up the connection that writes the log: WAL, durable commits, the writer's cache and
/// checkpoints. Public so that a benchmark's raw ceiling runs SQLite exactly as the store does.
pub fn configure_writer(db: &Connection) -> Result<(), StoreError> {
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Io(format!(
            "cannot enable WAL (journal_mode is {mode})"
        )));
    }
    // FULL: the WAL is synced at every commit, so an acknowledged append survives power loss.
    db.pragma_update(None, "synchronous", "FULL")?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    keep_plans(db)?;
    db.pragma_update(None, "cache_size", WRITER_CACHE_KIB.to_string())?;
    db.pragma_update(
        None,
        "wal_autocheckpoint",
        WAL_AUTOCHECKPOINT_PAGES.to_string(),
    )?;
    Ok(())
}

/// Plans that do not depend on bound values. Without this, SQLite reads the value bound to
/// `LIMIT ?` while planning, and so re-prepares the statement every time it is bound again:
/// a stream read parsed and planned its index query anew on every call (docs/performance.md).
pub(crate) fn keep_plans(db: &Connection) -> Result<(), StoreError> {
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Page cache of the writing connection (negative: KiB): the indexes' hot pages. Every commit
/// also scans the cache's hash (SQLite's `pcache1TruncateUnsafe`), so bigger is not free:
/// 16 MiB measured faster than both 64 MiB and 4 MiB (docs/performance.md).
const WRITER_CACHE_KIB: i64 = -16_384;

/// WAL pages after which the WAL is copied into the database (SQLite's default is 1,000).
/// Fewer, larger checkpoints copy a hot index page once for more commits. A bare connection
/// (the benchmark's ceiling) copies inside the commit that crosses it; the store's writer
/// replaces that with its checkpointer (`writer.rs`).
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 4_000;

pub(crate) fn migrate(db: &Connection) -> Result<(), StoreError> {
    let version: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "schema version {version} is newer than this binary's {SCHEMA_VERSION}"
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let target = index as i64 + 1;
        db.execute_batch(&format!(
            "BEGIN IMMEDIATE; {migration}; PRAGMA user_version = {target}; COMMIT;"
        ))?;
    }
    Ok(())
}

pub(crate) fn next_stream_id(db: &Connection) -> Result<i64, StoreError> {
    let max: Option<i64> = db.query_row("SELECT MAX(id) FROM streams", [], |row| row.get(0))?;
    Ok(max.map_or(0, |id| id + 1))
}

pub(crate) fn next_position(db: &Connection) -> Result<u64, StoreError> {
    let max: Option<i64> =
        db.query_row("SELECT MAX(position) FROM events", [], |row| row.get(0))?;
    Ok(max.map_or(0, |p| p as u64 + 1))
}
