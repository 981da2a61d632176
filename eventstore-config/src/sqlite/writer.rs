//! The single writer: group commit with a per-append expected-revision check.

use super::schema;
use crate::error::StoreError;
use crate::subscription::CommittedBatch;
use crate::types::*;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::HashMap;
use std::sync::mpsc;
use tokio::sync::{broadcast, oneshot};

/// Most appends committed in one transaction; bounds the latency of the first one.
pub const GROUP_COMMIT_APPENDS_MAX: usize = 4_096;
/// Streams whose current revision the writer remembers; past this it forgets them all.
const REVISION_CACHE_STREAMS_MAX: usize = 250_000;

pub(crate) struct AppendRequest {
    pub stream: StreamName,
    pub expected: ExpectedRevision,
    pub events: Vec<EventData>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

pub(crate) fn spawn(
    db: Connection,
    queue: mpsc::Receiver<AppendRequest>,
    live: broadcast::Sender<CommittedBatch>,
    next_position: u64,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let writer = Writer {
        db,
        live,
        next_position,
        revisions: HashMap::new(),
    };
    std::thread::Builder::new()
        .name("ledger-store-writer".into())
        .spawn(move || writer.run(queue))
        .map_err(|e| StoreError::Io(format!("cannot start the writer: {e}")))
}

struct Writer {
    db: Connection,
    live: broadcast::Sender<CommittedBatch>,
    next_position: u64,
    /// Committed current revision per stream.
    revisions: HashMap<StreamName, u64>,
}

/// What one transaction produced, before it is known to be durable.
struct Batch {
    position: u64,
    revisions: HashMap<StreamName, u64>,
    outcomes: Vec<Result<AppendResult, StoreError>>,
    committed: Vec<RecordedEvent>,
}

impl Writer {
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
        }
    }

    fn commit(&mut self, requests: Vec<AppendRequest>) {
        let mut replies = Vec::with_capacity(requests.len());
        let mut appends = Vec::with_capacity(requests.len());
        for request in requests {
            replies.push(request.reply);
            appends.push((request.stream, request.expected, request.events));
        }
        let recorded_at = Utc::now();
        match write(
            &mut self.db,
            &self.revisions,
            self.next_position,
            appends,
            recorded_at,
        ) {
            Ok(batch) => {
                self.next_position = batch.position;
                if self.revisions.len() + batch.revisions.len() > REVISION_CACHE_STREAMS_MAX {
                    self.revisions.clear();
                }
                self.revisions.extend(batch.revisions);
                if !batch.committed.is_empty() {
                    // No subscriber is not an error.
                    let _ = self.live.send(batch.committed.into());
                }
                for (reply, outcome) in replies.into_iter().zip(batch.outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                // Nothing of this transaction is on disk: forget what we assumed and refuse all.
                tracing::error!(%error, "append transaction failed");
                self.revisions.clear();
                if let Ok(position) = schema::next_position(&self.db) {
                    self.next_position = position;
                }
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Io(error.to_string())));
                }
            }
        }
    }
}

fn write(
    db: &mut Connection,
    cache: &HashMap<StreamName, u64>,
    position: u64,
    appends: Vec<(StreamName, ExpectedRevision, Vec<EventData>)>,
    recorded_at: DateTime<Utc>,
) -> Result<Batch, StoreError> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut batch = Batch {
        position,
        revisions: HashMap::new(),
        outcomes: Vec::with_capacity(appends.len()),
        committed: Vec::new(),
    };
    // Truncated to what the column keeps, so the live copy equals what a read returns.
    let recorded_micros = recorded_at.timestamp_micros();
    let recorded_at = DateTime::from_timestamp_micros(recorded_micros).unwrap_or(recorded_at);
    for (stream, expected, events) in appends {
        let current = match batch.revisions.get(&stream).or_else(|| cache.get(&stream)) {
            Some(revision) => Some(*revision),
            None => stored_revision(&tx, &stream)?,
        };
        if let Some(outcome) = already_appended(&tx, &stream, expected, current, &events)? {
            batch.outcomes.push(outcome);
            continue;
        }
        if !expected_holds(expected, current) {
            batch.outcomes.push(Err(StoreError::WrongExpectedRevision {
                stream,
                expected,
                actual: current,
            }));
            continue;
        }
        let mut revision = current.map_or(0, |r| r + 1);
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (position, stream, revision, event_id, event_type, data, metadata, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for event in events {
            insert.execute(params![
                batch.position as i64,
                stream.as_str(),
                revision as i64,
                event.event_id.as_bytes(),
                event.event_type,
                event.data,
                event.metadata,
                recorded_micros,
            ])?;
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
        batch.revisions.insert(stream, last_revision);
        batch.outcomes.push(Ok(AppendResult {
            next_expected_revision: last_revision,
            position: batch.position - 1,
        }));
    }
    tx.commit()?;
    Ok(batch)
}

fn stored_revision(tx: &Transaction<'_>, stream: &StreamName) -> Result<Option<u64>, StoreError> {
    let max: Option<i64> = tx
        .prepare_cached("SELECT MAX(revision) FROM events WHERE stream = ?1")?
        .query_row(params![stream.as_str()], |row| row.get(0))?;
    Ok(max.map(|r| r as u64))
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
fn already_appended(
    tx: &Transaction<'_>,
    stream: &StreamName,
    expected: ExpectedRevision,
    current: Option<u64>,
    events: &[EventData],
) -> Result<Option<Result<AppendResult, StoreError>>, StoreError> {
    if current.is_none() {
        return Ok(None);
    }
    let mut lookup = tx.prepare_cached(
        "SELECT revision, position FROM events WHERE event_id = ?1 AND stream = ?2",
    )?;
    let mut found = Vec::new();
    for event in events {
        let hit: Option<(i64, i64)> = lookup
            .query_row(params![event.event_id.as_bytes(), stream.as_str()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        if let Some((revision, position)) = hit {
            found.push((revision as u64, position as u64));
        }
    }
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
    let where_expected = match expected {
        ExpectedRevision::Exact(n) => first == n + 1,
        ExpectedRevision::NoStream => first == 0,
        ExpectedRevision::Any | ExpectedRevision::StreamExists => true,
    };
    if !where_expected {
        return Ok(Some(Err(StoreError::WrongExpectedRevision {
            stream: stream.clone(),
            expected,
            actual: current,
        })));
    }
    let (last_revision, last_position) = found[found.len() - 1];
    Ok(Some(Ok(AppendResult {
        next_expected_revision: last_revision,
        position: last_position,
    })))
}
