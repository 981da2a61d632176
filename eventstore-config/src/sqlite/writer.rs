//! The single writer: group commit with a per-append expected-revision check.

use super::index::{self, Pending, Round};
use super::schema;
use crate::error::StoreError;
use crate::subscription::LiveFeed;
use crate::types::*;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Keyed by stream name, which callers choose: randomly seeded (see `index::FastMap`).
type StreamStates = index::FastMap<StreamName, StreamState>;

/// Most appends committed in one transaction; bounds the latency of the first one.
pub const GROUP_COMMIT_APPENDS_MAX: usize = 4_096;
/// With `ExpectedRevision::Any` or `StreamExists`, a retried append is recognised if its
/// events are among the stream's last this-many events (EventStoreDB is likewise best-effort).
pub const IDEMPOTENCY_WINDOW_EVENTS: u64 = 1_000;
/// Streams the writer remembers; past this it forgets them all and re-reads as needed.
const STREAM_CACHE_MAX: usize = 250_000;

pub(crate) struct AppendRequest {
    pub append: Append,
    /// Of an `append_in_order`: set once one of its appends failed, so that none after it is
    /// made, in this transaction or a later one.
    pub chain: Option<Arc<AtomicBool>>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// What the writer knows of a stream: its row id (once it has one) and its last revision.
#[derive(Clone, Copy, Debug)]
struct StreamState {
    id: Option<i64>,
    revision: Option<u64>,
}

thread_local! {
    /// Frames in the WAL after this thread's last commit, as SQLite's WAL hook reports them.
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

pub(crate) fn spawn(
    db: Connection,
    path: &Path,
    queue: mpsc::Receiver<AppendRequest>,
    live: Arc<LiveFeed>,
    next_position: u64,
    pending: Arc<RwLock<Pending>>,
    index_entries: (usize, usize),
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let next_stream_id = schema::next_stream_id(&db)?;
    // Replaces SQLite's automatic checkpoint, which ran inside the commit that crossed its
    // threshold: 10-14 ms during which no append was acknowledged (docs/performance.md).
    db.wal_hook(Some(note_wal_frames));
    let writer = Writer {
        db,
        live,
        next_position,
        next_stream_id,
        streams: StreamStates::default(),
        checkpointer: Checkpointer::spawn(path)?,
        pending,
        index_entries,
        round: None,
        early_round_at: CHECKPOINTER_EARLY_FRAMES,
        last_early_round: std::time::Instant::now(),
        failing: None,
    };
    std::thread::Builder::new()
        .name("ledger-store-writer".into())
        .spawn(move || writer.run(queue))
        .map_err(|e| StoreError::Io(format!("cannot start the writer: {e}")))
}

struct Writer {
    db: Connection,
    live: Arc<LiveFeed>,
    next_position: u64,
    next_stream_id: i64,
    /// Committed state of recently written streams.
    streams: StreamStates,
    checkpointer: Checkpointer,
    /// Index entries not yet in `stream_index`; readers merge them in (`index.rs`).
    pending: Arc<RwLock<Pending>>,
    /// Entries pending before a round begins, and written per transaction during one.
    index_entries: (usize, usize),
    /// The round writing pending entries to the table, a slice per transaction.
    round: Option<Round>,
    /// WAL frames at which the checkpointer is next asked for an early round.
    early_round_at: i64,
    last_early_round: std::time::Instant,
    /// Transactions failing in a row, e.g. while the disk is full.
    failing: Option<FailingStreak>,
}

/// A run of failed transactions, logged when it starts, every `FAILING_LOGGED_EVERY` while it
/// lasts, and when it ends: a full disk fails every transaction, hundreds a second, and a
/// line for each would bury the rest of the log (each caller still gets its error).
#[derive(Debug)]
struct FailingStreak {
    since: std::time::Instant,
    failed: u64,
    logged: std::time::Instant,
}

const FAILING_LOGGED_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl FailingStreak {
    /// Counts a failure at `now`; the streak when it is to be logged.
    fn failed(
        streak: &mut Option<FailingStreak>,
        now: std::time::Instant,
    ) -> Option<&FailingStreak> {
        match streak {
            None => Some(streak.insert(FailingStreak {
                since: now,
                failed: 1,
                logged: now,
            })),
            Some(going) => {
                going.failed += 1;
                if now.duration_since(going.logged) < FAILING_LOGGED_EVERY {
                    return None;
                }
                going.logged = now;
                Some(going)
            }
        }
    }
}

/// Frames the writer may find still to copy when it finishes a checkpoint between two
/// commits; with more, the checkpointer goes round again first. The writer's copy holds up
/// every append: finishing after one round of the checkpointer, it copied what a round's
/// minutes of commits had added, 5 to 22 ms at 10,000 commands/s (docs/performance.md).
const WRITER_COPY_FRAMES_MAX: i64 = 256;

/// WAL frames between two early rounds of the checkpointer, before the WAL reaches
/// `WAL_AUTOCHECKPOINT_PAGES`: each round's sync then flushes a quarter as much to the disk,
/// and a commit's `fsync`, which waits for whatever was written before it, waits less.
const CHECKPOINTER_EARLY_FRAMES: i64 = 1_000;

/// Least time between two early rounds. A WAL that fills faster is copied in the usual
/// rounds only: early ones would copy its hot pages again and again, on the cores the
/// appends need (docs/performance.md).
const CHECKPOINTER_EARLY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Rounds the checkpointer makes before the writer copies the rest, however much: a load that
/// commits faster than the checkpointer copies must not keep the WAL from starting over.
const CHECKPOINTER_ROUNDS_MAX: u32 = 4;

/// Copies the WAL into the database on a thread and connection of its own, so that commits
/// go on meanwhile (SQLite lets one checkpoint run beside the writer). Passive: it never
/// waits for a reader or the writer; what it cannot copy now, the next one does.
struct Checkpointer {
    wake: mpsc::SyncSender<()>,
    /// What the run asked for copied, once it has finished.
    done: Arc<Mutex<Option<Copied>>>,
    /// Whether a run was asked for and its outcome not yet taken (the writer's own).
    asked: bool,
    /// Runs since the writer last finished a checkpoint (the writer's own).
    rounds: u32,
    thread: std::thread::JoinHandle<()>,
}

/// What one run of the checkpointer copied.
#[derive(Clone, Copy, Debug)]
struct Copied {
    /// The WAL's frames now in the database.
    frames: i64,
    /// Whether it copied every frame it saw: no reader held it back, nothing failed.
    whole: bool,
}

impl Checkpointer {
    fn spawn(path: &Path) -> Result<Checkpointer, StoreError> {
        let db = Connection::open(path)?;
        let file = std::fs::File::open(path).map_err(|e| {
            StoreError::Io(format!("cannot open the log for the checkpointer: {e}"))
        })?;
        let (wake, wakes) = mpsc::sync_channel::<()>(1);
        let done = Arc::new(Mutex::new(None));
        let outcome = Arc::clone(&done);
        let thread = std::thread::Builder::new()
            .name("ledger-store-checkpointer".into())
            .spawn(move || {
                while wakes.recv().is_ok() {
                    let copied = db
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                        })
                        .map(|(log, frames)| Copied {
                            frames,
                            whole: frames == log,
                        })
                        .unwrap_or_else(|error| {
                            tracing::warn!(%error, "checkpoint failed; the next one retries");
                            Copied {
                                frames: 0,
                                whole: false,
                            }
                        });
                    // SQLite syncs the database only after a copy that reached the WAL's end,
                    // which under load is the writer's: it then flushed this round's pages too.
                    if copied.frames > 0 {
                        if let Err(error) = file.sync_data() {
                            tracing::warn!(%error, "syncing the checkpoint's copy failed");
                        }
                    }
                    if let Ok(mut done) = outcome.lock() {
                        *done = Some(copied);
                    }
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer {
            wake,
            done,
            asked: false,
            rounds: 0,
            thread,
        })
    }

    /// Asks for a run before the WAL is due a checkpoint, if none is running; it does not
    /// count towards the rounds before the writer copies the rest. Says whether it asked.
    fn request_early(&mut self) -> bool {
        if self.asked && self.finished().is_none() {
            return false;
        }
        self.asked = self.wake.try_send(()).is_ok();
        self.asked
    }

    /// Asks for a run; false if the checkpointer is gone, and the writer must copy alone.
    fn request(&mut self) -> bool {
        self.asked = self.wake.try_send(()).is_ok();
        self.rounds += 1;
        self.asked
    }

    /// What the run asked for copied, once it has finished.
    fn finished(&mut self) -> Option<Copied> {
        let copied = self.done.lock().ok()?.take()?;
        self.asked = false;
        Some(copied)
    }

    /// Lets a checkpoint in progress finish; the writer's connection, closing last, does
    /// the final one.
    fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}

/// What one transaction produced, before it is known to be durable.
struct Batch {
    position: u64,
    next_stream_id: i64,
    streams: StreamStates,
    outcomes: Vec<Result<AppendResult, StoreError>>,
    committed: Vec<RecordedEvent>,
    /// This transaction's index entries, merged into the shared ones once it is durable.
    index: Pending,
}

impl Writer {
    fn log_failure(&mut self, error: &StoreError) {
        match FailingStreak::failed(&mut self.failing, std::time::Instant::now()) {
            Some(streak) if streak.failed == 1 => {
                tracing::error!(%error, "append transaction failed");
            }
            Some(streak) => tracing::error!(
                %error,
                failed = streak.failed,
                since_s = streak.logged.duration_since(streak.since).as_secs_f64(),
                "append transactions still failing"
            ),
            None => {}
        }
    }

    fn run(mut self, queue: mpsc::Receiver<AppendRequest>) {
        while let Ok(first) = queue.recv() {
            let mut requests = vec![first];
            while requests.len() < GROUP_COMMIT_APPENDS_MAX {
                match queue.try_recv() {
                    Ok(request) => requests.push(request),
                    Err(_) => break,
                }
            }
            self.commit(requests);
            let frames = i64::from(WAL_FRAMES.get());
            if frames < self.early_round_at - CHECKPOINTER_EARLY_FRAMES {
                // The WAL started over.
                self.early_round_at = CHECKPOINTER_EARLY_FRAMES;
            }
            if frames >= schema::WAL_AUTOCHECKPOINT_PAGES {
                self.checkpoint(frames);
            } else if frames >= self.early_round_at
                && self.last_early_round.elapsed() >= CHECKPOINTER_EARLY_INTERVAL
                && self.checkpointer.request_early()
            {
                self.early_round_at = frames + CHECKPOINTER_EARLY_FRAMES;
                self.last_early_round = std::time::Instant::now();
            }
        }
        let Writer {
            db, checkpointer, ..
        } = self;
        checkpointer.stop();
        drop(db);
    }

    /// The checkpointer copies the bulk of the WAL beside the commits, in rounds until little
    /// is left; the writer, between two commits, copies the rest. Only a WAL copied to its
    /// last frame can start again from its beginning at the next commit: with the
    /// checkpointer alone, a steady load kept it growing.
    fn checkpoint(&mut self, frames: i64) {
        let checkpointer = &mut self.checkpointer;
        let go_round = if checkpointer.asked {
            let Some(copied) = checkpointer.finished() else {
                return;
            };
            // A round of an earlier WAL, which started over since, says nothing of this one.
            let stale = copied.frames > frames;
            let much_left = copied.whole && frames - copied.frames > WRITER_COPY_FRAMES_MAX;
            stale || (much_left && checkpointer.rounds < CHECKPOINTER_ROUNDS_MAX)
        } else {
            true
        };
        if go_round && checkpointer.request() {
            return;
        }
        checkpointer.rounds = 0;
        let done = self
            .db
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if let Err(error) = done {
            tracing::warn!(%error, "checkpoint failed; the next one retries");
        }
    }

    fn commit(&mut self, requests: Vec<AppendRequest>) {
        let mut replies = Vec::with_capacity(requests.len());
        let mut appends = Vec::with_capacity(requests.len());
        let mut chains = Vec::new();
        for request in requests {
            replies.push(request.reply);
            if let Some(chain) = &request.chain {
                chains.push(Arc::clone(chain));
            }
            appends.push((request.append, request.chain));
        }
        let start = Batch {
            position: self.next_position,
            next_stream_id: self.next_stream_id,
            streams: StreamStates::default(),
            outcomes: Vec::with_capacity(appends.len()),
            committed: Vec::new(),
            index: Pending::default(),
        };
        // The round's slice for this transaction, if a round runs: written with it, and
        // forgotten from memory once it is durable.
        let (slice, mut written) = {
            let pending = index::read(&self.pending);
            let (flush, slice_entries) = self.index_entries;
            if self.round.is_none() && pending.len() >= flush {
                self.round = Some(pending.round(self.next_position, slice_entries));
            }
            let slice = self.round.as_ref().map(Round::slice);
            let index_slice = self.round.as_ref().zip(slice.clone());
            let written = write(
                &mut self.db,
                &self.streams,
                &pending,
                index_slice,
                start,
                appends,
            );
            (slice, written)
        };
        if let Ok(batch) = &mut written {
            // Before any reply or live event, so a reader that learns of these events finds
            // them in the index.
            let mut pending = index::write(&self.pending);
            if let (Some(round), Some(slice)) = (&mut self.round, slice) {
                pending.written(round, slice.clone());
                if round.advance(slice) {
                    self.round = None;
                }
            }
            pending.extend(std::mem::take(&mut batch.index));
        }
        match written {
            Ok(batch) => {
                if let Some(streak) = self.failing.take() {
                    tracing::info!(
                        failed = streak.failed,
                        lasted_s = streak.since.elapsed().as_secs_f64(),
                        "append transactions succeed again"
                    );
                }
                self.next_position = batch.position;
                self.next_stream_id = batch.next_stream_id;
                if self.streams.len() + batch.streams.len() > STREAM_CACHE_MAX {
                    self.streams.clear();
                }
                self.streams.extend(batch.streams);
                if !batch.committed.is_empty() {
                    self.live.publish(batch.committed);
                }
                for (reply, outcome) in replies.into_iter().zip(batch.outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                // Nothing of this transaction is on disk: forget what we assumed and refuse all.
                self.log_failure(&error);
                self.streams.clear();
                if let (Ok(position), Ok(stream_id)) = (
                    schema::next_position(&self.db),
                    schema::next_stream_id(&self.db),
                ) {
                    self.next_position = position;
                    self.next_stream_id = stream_id;
                }
                let refusal = match error {
                    StoreError::Io(_) | StoreError::Full(_) => error,
                    other => StoreError::Io(other.to_string()),
                };
                for chain in chains {
                    chain.store(true, Ordering::Release);
                }
                for reply in replies {
                    let _ = reply.send(Err(refusal.clone()));
                }
            }
        }
    }
}

fn write(
    db: &mut Connection,
    cache: &StreamStates,
    pending: &Pending,
    index_slice: Option<(&Round, std::ops::Range<usize>)>,
    mut batch: Batch,
    appends: Vec<(Append, Option<Arc<AtomicBool>>)>,
) -> Result<Batch, StoreError> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some((round, slice)) = index_slice {
        round.write(&tx, slice)?;
    }
    // Truncated to what the column keeps, so the live copy equals what a read returns.
    let now = Utc::now();
    let recorded_micros = now.timestamp_micros();
    let now = (
        recorded_micros,
        DateTime::from_timestamp_micros(recorded_micros).unwrap_or(now),
    );
    // Prepared once a transaction: looking a statement up in the cache hashes its text.
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (position, stream_id, revision, event_id, event_type, data, metadata, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (append, chain) in appends {
        if chain
            .as_ref()
            .is_some_and(|broken| broken.load(Ordering::Acquire))
        {
            batch.outcomes.push(Err(StoreError::EarlierAppendFailed));
            continue;
        }
        let outcome = append_one(&tx, cache, pending, &mut batch, &mut insert, append, now)?;
        if let (Err(_), Some(broken)) = (&outcome, &chain) {
            broken.store(true, Ordering::Release);
        }
        batch.outcomes.push(outcome);
    }
    drop(insert);
    tx.commit()?;
    Ok(batch)
}

/// One append within the transaction: its outcome, or the error that fails the transaction.
fn append_one(
    tx: &Transaction<'_>,
    cache: &StreamStates,
    pending: &Pending,
    batch: &mut Batch,
    insert: &mut rusqlite::CachedStatement<'_>,
    Append {
        stream,
        expected,
        events,
    }: Append,
    now: (i64, DateTime<Utc>),
) -> Result<Result<AppendResult, StoreError>, StoreError> {
    let (recorded_micros, recorded_at) = now;
    // A stream's index entries not yet in the table: committed before, or in this batch.
    let recent = |id: i64| [pending.of_stream(id), batch.index.of_stream(id)];
    let known = match batch.streams.get(&stream).or_else(|| cache.get(&stream)) {
        Some(state) => *state,
        None => stored_stream(tx, &stream, recent)?,
    };
    if let Some(outcome) = already_appended(tx, &stream, expected, known, &events, recent)? {
        return Ok(outcome);
    }
    if !expected_holds(expected, known.revision) {
        return Ok(Err(StoreError::WrongExpectedRevision {
            stream,
            expected,
            actual: known.revision,
        }));
    }
    let stream_id = match known.id {
        Some(id) => id,
        None => {
            let id = batch.next_stream_id;
            tx.prepare_cached("INSERT INTO streams (id, name) VALUES (?1, ?2)")?
                .execute(params![id, stream.as_str()])?;
            batch.next_stream_id += 1;
            id
        }
    };
    let mut revision = known.revision.map_or(0, |r| r + 1);
    for event in events {
        let (recorded_micros, recorded_at) = match event.recorded_at {
            Some(at) => (at.timestamp_micros(), truncated_to_micros(at)),
            None => (recorded_micros, recorded_at),
        };
        insert.execute(params![
            batch.position as i64,
            stream_id,
            revision as i64,
            event.event_id.as_bytes(),
            event.event_type,
            event.data,
            event.metadata,
            recorded_micros,
        ])?;
        batch.index.add(stream_id, revision, batch.position);
        batch.committed.push(RecordedEvent {
            stream: stream.clone(),
            revision,
            position: batch.position,
            event_id: event.event_id,
            event_type: event.event_type,
            data: event.data,
            metadata: event.metadata,
            recorded_at,
        });
        batch.position += 1;
        revision += 1;
    }
    let last_revision = revision - 1;
    let state = StreamState {
        id: Some(stream_id),
        revision: Some(last_revision),
    };
    batch.streams.insert(stream, state);
    Ok(Ok(AppendResult {
        next_expected_revision: last_revision,
        position: batch.position - 1,
    }))
}

fn truncated_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

fn stored_stream<'a>(
    tx: &Transaction<'_>,
    stream: &StreamName,
    recent: impl Fn(i64) -> [&'a [(u64, u64)]; 2],
) -> Result<StreamState, StoreError> {
    let id: Option<i64> = tx
        .prepare_cached("SELECT id FROM streams WHERE name = ?1")?
        .query_row(params![stream.as_str()], |row| row.get(0))
        .optional()?;
    let Some(id) = id else {
        return Ok(StreamState {
            id: None,
            revision: None,
        });
    };
    Ok(StreamState {
        id: Some(id),
        revision: index::last_revision(tx, id, &recent(id))?,
    })
}

fn expected_holds(expected: ExpectedRevision, current: Option<u64>) -> bool {
    match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => current.is_none(),
        ExpectedRevision::StreamExists => current.is_some(),
        ExpectedRevision::Exact(n) => current == Some(n),
    }
}

/// EventStoreDB's idempotency: if these ids already sit in the stream, consecutively, where
/// this append would have put them, the append already happened; answer as it was answered.
/// With an exact expectation that holds, nothing can be there yet and nothing is read.
fn already_appended<'a>(
    tx: &Transaction<'_>,
    stream: &StreamName,
    expected: ExpectedRevision,
    known: StreamState,
    events: &[EventData],
    recent: impl Fn(i64) -> [&'a [(u64, u64)]; 2],
) -> Result<Option<Result<AppendResult, StoreError>>, StoreError> {
    let (Some(stream_id), Some(current)) = (known.id, known.revision) else {
        return Ok(None);
    };
    let window_start = match expected {
        ExpectedRevision::Exact(n) if n == current => return Ok(None),
        ExpectedRevision::Exact(n) => n.saturating_add(1),
        ExpectedRevision::NoStream => 0,
        ExpectedRevision::Any | ExpectedRevision::StreamExists => {
            current.saturating_sub(IDEMPOTENCY_WINDOW_EVENTS - 1)
        }
    };
    let window = if matches!(
        expected,
        ExpectedRevision::Any | ExpectedRevision::StreamExists
    ) {
        IDEMPOTENCY_WINDOW_EVENTS
    } else {
        events.len() as u64
    };
    let range = index::Range {
        ascending: true,
        bound: Some(window_start),
        max: usize::try_from(window).unwrap_or(usize::MAX),
    };
    let mut event_id = tx.prepare_cached("SELECT event_id FROM events WHERE position = ?1")?;
    let mut stored: index::FastMap<Uuid, (u64, u64)> = index::FastMap::default();
    for (revision, position) in index::entries(tx, stream_id, range, &recent(stream_id))? {
        let id: Vec<u8> = event_id.query_row(params![position as i64], |row| row.get(0))?;
        if let Ok(id) = Uuid::from_slice(&id) {
            stored.insert(id, (revision, position));
        }
    }
    let found: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| stored.get(&e.event_id).copied())
        .collect();
    let Some(&(first, _)) = found.first() else {
        return Ok(None);
    };
    let consecutive = found
        .iter()
        .enumerate()
        .all(|(i, (r, _))| *r == first + i as u64);
    if found.len() != events.len() || !consecutive {
        return Ok(Some(Err(StoreError::PartialIdempotentAppend(
            stream.clone(),
        ))));
    }
    let (last_revision, last_position) = found[found.len() - 1];
    Ok(Some(Ok(AppendResult {
        next_expected_revision: last_revision,
        position: last_position,
    })))
}

#[cfg(test)]
mod tests {
    use super::{FailingStreak, FAILING_LOGGED_EVERY};
    use std::time::{Duration, Instant};

    #[test]
    fn a_run_of_failed_transactions_is_logged_when_it_starts_and_every_ten_seconds() {
        let start = Instant::now();
        let mut streak = None;
        let mut logged = Vec::new();
        // A failure every 10 ms for 25 s, as while the disk is full.
        for tick in 0..2_500u64 {
            let now = start + Duration::from_millis(tick * 10);
            if let Some(line) = FailingStreak::failed(&mut streak, now) {
                logged.push((now.duration_since(start), line.failed));
            }
        }
        let every = FAILING_LOGGED_EVERY;
        assert_eq!(
            logged,
            [(Duration::ZERO, 1), (every, 1_001), (every * 2, 2_001)]
        );
    }
}
