//! Benchmark measurements. The workload is `ledger simulate` (driven by the binary, which
//! owns the simulation); this module measures what it wrote: the ceiling of raw batched
//! SQLite inserts of the very same rows, and a rebuild of every view from the log.

use chrono::Utc;
use ledger_store::{
    configure_log_writer, AllPages, EventData, RecordedEvent, SqliteStore, StoreError, StreamName,
    INDEX_FLUSH_ENTRIES_DEFAULT, INDEX_SLICE_ENTRIES_DEFAULT, LOG_FILE_NAME,
};
use std::path::Path;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a benchmark command failed: {0}")]
    Command(String),
}

#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    pub operations: u64,
    pub seconds: f64,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// Every row of the log in `data_dir`, as the pipeline wrote it, for the raw ceiling.
pub async fn rows_of(data_dir: &Path) -> Result<Vec<(StreamName, u64, EventData)>, BenchError> {
    let store = SqliteStore::open(data_dir)?;
    let mut rows = Vec::new();
    let mut pages = AllPages::from(&store, 0);
    while let Some(page) = pages.next().await? {
        rows.extend(page.into_iter().map(RecordedEvent::into_event_data));
    }
    store.close();
    Ok(rows)
}

/// Rows per second inserted straight into the store's schema, `batch` rows per durable
/// transaction: what SQLite alone can do on this disk. The per-stream index is written as
/// the store writes it: kept aside until `INDEX_FLUSH_ENTRIES_DEFAULT` wait, then inserted in
/// key order, `INDEX_SLICE_ENTRIES_DEFAULT` with each transaction.
pub fn raw_insert_ceiling(
    data_dir: &Path,
    rows: &[(StreamName, u64, EventData)],
    batch: usize,
) -> Result<Throughput, BenchError> {
    SqliteStore::open(data_dir)?.close();
    let mut db = rusqlite::Connection::open(data_dir.join(LOG_FILE_NAME))?;
    // The store's own settings, so that the ceiling is SQLite's, not a worse configuration's.
    configure_log_writer(&db)?;
    let started = Instant::now();
    let recorded_at = Utc::now().timestamp_micros();
    // Hashed as the store's writer hashes stream names: with std's SipHash this map was a few
    // per cent of the ceiling's time, which flattered the pipeline's ratio to it.
    let mut stream_ids: ledger_projections::rows::FastMap<&str, i64> = Default::default();
    let mut unindexed: Vec<(i64, i64, i64)> = Vec::new();
    // The round being written: entries in key order, how many are written, where it ends.
    let (mut round, mut written, mut ends_at) = (Vec::new(), 0, 0);
    for (chunk_index, chunk) in rows.chunks(batch.max(1)).enumerate() {
        let tx = db.transaction()?;
        if round.is_empty() && unindexed.len() >= INDEX_FLUSH_ENTRIES_DEFAULT {
            round = std::mem::take(&mut unindexed);
            round.sort_unstable();
            (written, ends_at) = (0, (chunk_index * batch) as i64);
        }
        if !round.is_empty() {
            let mut index = tx.prepare_cached(
                "INSERT OR IGNORE INTO stream_index (stream_id, revision, position) VALUES (?1, ?2, ?3)",
            )?;
            let end = (written + INDEX_SLICE_ENTRIES_DEFAULT).min(round.len());
            for (stream_id, revision, position) in &round[written..end] {
                index.execute(rusqlite::params![stream_id, revision, position])?;
            }
            written = end;
            if written == round.len() {
                tx.prepare_cached("UPDATE indexed SET upto = ?1 WHERE id = 0")?
                    .execute(rusqlite::params![ends_at])?;
                round.clear();
            }
        }
        {
            let mut new_stream =
                tx.prepare_cached("INSERT INTO streams (id, name) VALUES (?1, ?2)")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (position, stream_id, revision, event_id, event_type, data, metadata, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (i, (stream, revision, event)) in chunk.iter().enumerate() {
                let position = (chunk_index * batch + i) as i64;
                let next_id = stream_ids.len() as i64;
                let stream_id = match stream_ids.get(stream.as_str()) {
                    Some(id) => *id,
                    None => {
                        new_stream.execute(rusqlite::params![next_id, stream.as_str()])?;
                        stream_ids.insert(stream.as_str(), next_id);
                        next_id
                    }
                };
                unindexed.push((stream_id, *revision as i64, position));
                insert.execute(rusqlite::params![
                    position,
                    stream_id,
                    *revision as i64,
                    event.event_id.as_bytes(),
                    event.event_type,
                    event.data,
                    event.metadata,
                    recorded_at,
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(Throughput {
        operations: rows.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What a rebuild of every view cost.
#[derive(Clone, Copy, Debug)]
pub struct RebuildFigures {
    pub events: u64,
    pub seconds: f64,
    /// Peak resident memory of the process during the rebuild, in bytes (Linux only).
    pub peak_rss_bytes: Option<u64>,
    /// Resident memory the rebuilt views added, in bytes (Linux only).
    pub views_rss_bytes: Option<u64>,
    pub orders: usize,
    /// Of `seconds`, what storing the rebuilt views took: the time after the last page was folded.
    pub save_seconds: f64,
    /// CPU time of the process until the last page was folded, and over the whole rebuild.
    pub fold_cpu_seconds: Option<f64>,
    pub cpu_seconds: Option<f64>,
}

/// Rebuilds every view from the log in `log_dir` into a fresh read-model database.
pub async fn rebuild_throughput(
    log_dir: &Path,
    views_dir: &Path,
) -> Result<RebuildFigures, BenchError> {
    let store = SqliteStore::open(log_dir)?;
    reset_peak_rss();
    let before = rss_bytes("VmRSS:");
    let cpu = CpuSince::start(None);
    let started = Instant::now();
    let mut folded_at = started;
    let mut folded_cpu = None;
    let (projector, progress) =
        ledger_projections::Projector::rebuild_all(views_dir, &store, |_| {
            folded_at = Instant::now();
            folded_cpu = cpu.spent();
        })
        .await
        .map_err(|e| BenchError::Command(e.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    let save_seconds = folded_at.elapsed().as_secs_f64();
    let after = rss_bytes("VmRSS:");
    let figures = RebuildFigures {
        events: progress.applied,
        seconds,
        peak_rss_bytes: rss_bytes("VmHWM:"),
        views_rss_bytes: after.zip(before).map(|(a, b)| a.saturating_sub(b)),
        orders: projector.views().orders.len(),
        save_seconds,
        fold_cpu_seconds: folded_cpu,
        cpu_seconds: cpu.spent(),
    };
    drop(projector);
    store.close();
    Ok(figures)
}

/// CPU time (user + system, all threads) a process has used so far: `None` for this process.
/// On a shared machine wall-clock rates move with the neighbours; CPU per operation moves far
/// less, so the benches report both. Linux only (`/proc`); `None` elsewhere.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    cpu_seconds_of_stat(&std::fs::read_to_string(path).ok()?)
}

/// CPU time a process spends from the moment this is made: what the benches divide by the
/// operations they count.
#[derive(Clone, Copy, Debug)]
pub struct CpuSince {
    pid: Option<u32>,
    start: Option<f64>,
}

impl CpuSince {
    /// `pid` as `cpu_seconds` takes it: `None` for this process.
    pub fn start(pid: Option<u32>) -> CpuSince {
        CpuSince {
            pid,
            start: cpu_seconds(pid),
        }
    }

    /// Seconds of CPU spent since `start`; `None` where `/proc` is not there.
    pub fn spent(&self) -> Option<f64> {
        cpu_seconds(self.pid)
            .zip(self.start)
            .map(|(now, start)| now - start)
    }
}

/// `utime` and `stime` of a `/proc/<pid>/stat` line, in clock ticks of `USER_HZ`, which Linux
/// fixes at 100 for what `/proc` reports.
fn cpu_seconds_of_stat(stat: &str) -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / USER_HZ)
}

/// Resets the kernel's peak-RSS mark so the next reading covers only what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rss_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (ledger (bench) x) S 1 4242 4242 0 -1 4194560 3000 0 0 0 \
                    1234 566 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_seconds_of_stat(stat), Some(18.0));
        assert_eq!(cpu_seconds_of_stat("4242 (cut short) S 1 2"), None);
    }

    #[test]
    fn this_process_cpu_time_is_readable_on_linux() {
        let spent = cpu_seconds(None);
        if cfg!(target_os = "linux") {
            assert!(spent.is_some_and(|s| s >= 0.0));
        }
    }
}
