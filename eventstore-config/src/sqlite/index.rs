//! The per-stream index (`stream_id`, `revision`) → `position`, kept in memory for recent
//! events and written to `stream_index` in sorted batches. Row by row, the index cost the
//! writer 7–9 µs of CPU an event, more than the event itself: appends land on streams spread
//! over the whole index, so nearly every row dirtied a page of its own. Written ~20,000 at a
//! time in key order, each page is touched once for many (docs/performance.md). Such a round
//! is written a slice of whole streams per transaction, so that no one commit carries a
//! whole round's inserts.
//!
//! The memory part is never the only copy: the events hold `stream_id` and `revision`, and
//! on open everything from `indexed.upto` on is indexed again from the log.

use crate::error::StoreError;
use rusqlite::{params, Connection, Transaction};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Index entries kept in memory before the writer writes them to `stream_index`.
pub const INDEX_FLUSH_ENTRIES_DEFAULT: usize = 20_000;
/// Entries a transaction writes while a round runs, about: each slice ends with a stream.
pub const INDEX_SLICE_ENTRIES_DEFAULT: usize = 2_000;

/// Hash maps of the writer's hot path. Randomly seeded: stream names are the callers' to
/// choose, and chosen keys must not make the buckets collide.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A stream's entries, `(revision, position)`, by ascending revision.
pub(crate) type Entries = Vec<(u64, u64)>;

/// The index entries of committed events not known to be in `stream_index` (all of them at
/// or after `indexed.upto`).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    streams: FastMap<i64, Entries>,
    entries: usize,
}

impl Pending {
    /// What the log holds past `indexed.upto`.
    pub(crate) fn load(db: &Connection) -> Result<Pending, StoreError> {
        let upto: i64 = db.query_row("SELECT upto FROM indexed WHERE id = 0", [], |row| {
            row.get(0)
        })?;
        let mut pending = Pending::default();
        let mut statement = db.prepare(
            "SELECT stream_id, revision, position FROM events WHERE position >= ?1 ORDER BY position",
        )?;
        let mut rows = statement.query(params![upto])?;
        while let Some(row) = rows.next()? {
            let (stream_id, revision, position): (i64, i64, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            let (Ok(revision), Ok(position)) = (u64::try_from(revision), u64::try_from(position))
            else {
                return Err(StoreError::Corrupt(format!(
                    "negative revision or position at {position}"
                )));
            };
            pending.add(stream_id, revision, position);
        }
        Ok(pending)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    pub(crate) fn add(&mut self, stream_id: i64, revision: u64, position: u64) {
        self.streams
            .entry(stream_id)
            .or_default()
            .push((revision, position));
        self.entries += 1;
    }

    /// Takes in the entries of a write transaction (kept in a `Pending` of its own until it
    /// is durable).
    pub(crate) fn extend(&mut self, batch: Pending) {
        for (stream_id, entries) in batch.streams {
            self.entries += entries.len();
            self.streams.entry(stream_id).or_default().extend(entries);
        }
    }

    pub(crate) fn of_stream(&self, stream_id: i64) -> &[(u64, u64)] {
        self.streams.get(&stream_id).map_or(&[], Vec::as_slice)
    }

    /// A round writing everything pending now; `ends_at` is the log's next position.
    pub(crate) fn round(&self, ends_at: u64, slice_entries: usize) -> Round {
        let mut streams: Vec<(i64, Entries)> = self
            .streams
            .iter()
            .map(|(stream_id, entries)| (*stream_id, entries.clone()))
            .collect();
        streams.sort_unstable_by_key(|(stream_id, _)| *stream_id);
        Round {
            streams,
            next: 0,
            ends_at,
            slice_entries,
        }
    }

    /// Forgets what a slice of `round` made durable in the table.
    pub(crate) fn written(&mut self, round: &Round, slice: std::ops::Range<usize>) {
        for (stream_id, _) in &round.streams[slice] {
            if let Some(entries) = self.streams.get_mut(stream_id) {
                let before = entries.len();
                entries.retain(|(_, position)| *position >= round.ends_at);
                self.entries -= before - entries.len();
                if entries.is_empty() {
                    self.streams.remove(stream_id);
                }
            }
        }
    }
}

/// What was pending when a round began, by stream in key order, written a slice at a time.
#[derive(Debug)]
pub(crate) struct Round {
    streams: Vec<(i64, Entries)>,
    next: usize,
    ends_at: u64,
    slice_entries: usize,
}

impl Round {
    /// The next slice: whole streams, `slice_entries` entries or more unless the last.
    pub(crate) fn slice(&self) -> std::ops::Range<usize> {
        let (mut end, mut entries) = (self.next, 0);
        while end < self.streams.len() && entries < self.slice_entries {
            entries += self.streams[end].1.len();
            end += 1;
        }
        self.next..end
    }

    /// Writes a slice within the writer's transaction; the last one also records that the
    /// table now holds everything before `ends_at`. `OR IGNORE`: after a crash mid-round, the
    /// next round writes again what an earlier slice already had.
    pub(crate) fn write(
        &self,
        tx: &Transaction<'_>,
        slice: std::ops::Range<usize>,
    ) -> Result<(), StoreError> {
        let last = slice.end == self.streams.len();
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO stream_index (stream_id, revision, position) VALUES (?1, ?2, ?3)",
        )?;
        for (stream_id, entries) in &self.streams[slice] {
            for (revision, position) in entries {
                insert.execute(params![stream_id, *revision as i64, *position as i64])?;
            }
        }
        if last {
            tx.prepare_cached("UPDATE indexed SET upto = ?1 WHERE id = 0")?
                .execute(params![self.ends_at as i64])?;
        }
        Ok(())
    }

    /// After a slice is durable; whether the round is done.
    pub(crate) fn advance(&mut self, slice: std::ops::Range<usize>) -> bool {
        self.next = slice.end;
        self.next == self.streams.len()
    }
}

/// `Pending` is changed only by the writer, by steps that cannot panic halfway, so a lock
/// poisoned elsewhere still guards whole entries; refusing reads and appends for it would
/// only turn one failed thread into a store that answers nothing.
pub(crate) fn read(pending: &RwLock<Pending>) -> RwLockReadGuard<'_, Pending> {
    pending.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write(pending: &RwLock<Pending>) -> RwLockWriteGuard<'_, Pending> {
    pending.write().unwrap_or_else(PoisonError::into_inner)
}

/// Which of a stream's entries a read wants: from `bound` on in `ascending` order, or from
/// `bound` down, at most `max`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Range {
    pub ascending: bool,
    /// Inclusive; `None` when nothing can match (forwards from the end).
    pub bound: Option<u64>,
    pub max: usize,
}

impl Range {
    fn holds(&self, revision: u64) -> bool {
        match self.bound {
            None => false,
            Some(bound) if self.ascending => revision >= bound,
            Some(bound) => revision <= bound,
        }
    }
}

const ENTRIES_FORWARDS: &str = "SELECT revision, position FROM stream_index
     WHERE stream_id = ?1 AND revision >= ?2 ORDER BY revision ASC LIMIT ?3";
const ENTRIES_BACKWARDS: &str = "SELECT revision, position FROM stream_index
     WHERE stream_id = ?1 AND revision <= ?2 ORDER BY revision DESC LIMIT ?3";

/// A stream's `(revision, position)` pairs in `range`: `stream_index`'s merged with the
/// entries not yet written. `recent` must be taken before this reads the table: the writer
/// forgets entries only after they are durable in it, so between the two nothing is missed
/// (an entry in both is kept once).
pub(crate) fn entries(
    db: &Connection,
    stream_id: i64,
    range: Range,
    recent: &[&[(u64, u64)]],
) -> Result<Entries, StoreError> {
    let Some(bound) = range.bound else {
        return Ok(Vec::new());
    };
    let sql = if range.ascending {
        ENTRIES_FORWARDS
    } else {
        ENTRIES_BACKWARDS
    };
    let mut statement = db.prepare_cached(sql)?;
    let rows = statement.query_map(
        params![
            stream_id,
            i64::try_from(bound).unwrap_or(i64::MAX),
            range.max as i64
        ],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
    )?;
    let mut found = Vec::new();
    for row in rows {
        let (revision, position) = row?;
        let (Ok(revision), Ok(position)) = (u64::try_from(revision), u64::try_from(position))
        else {
            return Err(StoreError::Corrupt(format!(
                "negative revision or position in stream {stream_id}'s index"
            )));
        };
        found.push((revision, position));
    }
    for entries in recent {
        found.extend(
            entries
                .iter()
                .filter(|(revision, _)| range.holds(*revision)),
        );
    }
    if range.ascending {
        found.sort_unstable();
    } else {
        found.sort_unstable_by(|a, b| b.cmp(a));
    }
    found.dedup_by_key(|(revision, _)| *revision);
    found.truncate(range.max);
    Ok(found)
}

/// The stream's last revision: its newest entry in memory, else in the table.
pub(crate) fn last_revision(
    db: &Connection,
    stream_id: i64,
    recent: &[&[(u64, u64)]],
) -> Result<Option<u64>, StoreError> {
    if let Some(last) = recent
        .iter()
        .filter_map(|e| e.last())
        .map(|(r, _)| *r)
        .max()
    {
        return Ok(Some(last));
    }
    let max: Option<i64> = db
        .prepare_cached("SELECT MAX(revision) FROM stream_index WHERE stream_id = ?1")?
        .query_row(params![stream_id], |row| row.get(0))?;
    Ok(max.and_then(|r| u64::try_from(r).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    #[test]
    fn reading_a_stream_again_reuses_its_plan() -> Result<(), StoreError> {
        let db = Connection::open_in_memory()?;
        crate::sqlite::schema::keep_plans(&db)?;
        crate::sqlite::schema::migrate(&db)?;
        for revision in 0..10_i64 {
            db.execute(
                "INSERT INTO stream_index (stream_id, revision, position) VALUES (7, ?1, ?2)",
                params![revision, revision * 3],
            )?;
        }
        for max in 1..=12 {
            for ascending in [true, false] {
                let bound = Some(if ascending { 2 } else { 8 });
                let range = Range {
                    ascending,
                    bound,
                    max,
                };
                let found = entries(&db, 7, range, &[])?;
                let revisions: Vec<u64> = found.iter().map(|(r, _)| *r).collect();
                let expected: Vec<u64> = if ascending {
                    (2..10).take(max).collect()
                } else {
                    (0..=8).rev().take(max).collect()
                };
                assert_eq!(revisions, expected, "max {max}, ascending {ascending}");
            }
        }
        for sql in [ENTRIES_FORWARDS, ENTRIES_BACKWARDS] {
            let statement = db.prepare_cached(sql)?;
            assert_eq!(statement.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
        Ok(())
    }
}
