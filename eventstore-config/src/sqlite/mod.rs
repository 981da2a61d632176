//! The embedded backend: one SQLite database in WAL mode with `synchronous=FULL`, so an append
//! is acknowledged only once its transaction is on disk.
//!
//! One writer thread owns the only writing connection. It takes every append waiting in its
//! queue into one transaction (group commit), checks each append's expected revision on its
//! own, so a refused append fails alone, and commits once for all of them. Readers use their
//! own connections. After each commit the writer publishes the new events to live
//! subscriptions.

mod index;
mod schema;
mod writer;

pub use index::{INDEX_FLUSH_ENTRIES_DEFAULT, INDEX_SLICE_ENTRIES_DEFAULT};

pub use schema::configure_writer as configure_log_writer;

use crate::error::StoreError;
use crate::store::{EventStore, Subscription};
use crate::subscription::{CatchUp, LiveFeed, Target};
use crate::types::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};
use tokio::sync::{oneshot, Semaphore};
use uuid::Uuid;

/// The writer's answer to one append.
type Answer = oneshot::Receiver<Result<AppendResult, StoreError>>;

/// File name of the event log inside the data directory.
pub const LOG_FILE_NAME: &str = "events.sqlite";
/// File whose lock marks the log as having a writer. One process appends at a time: the
/// writer keeps the next position and the streams' revisions in memory, and another
/// process's appends would leave those stale (and its live subscribers blind to them).
pub const LOG_LOCK_FILE_NAME: &str = "events.lock";
/// Committed batches a live subscriber may fall behind before it re-reads from disk.
pub const LIVE_FEED_BATCHES_DEFAULT: usize = 4_096;

/// Tuning of the embedded store; the defaults suit production.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub live_feed_batches: usize,
    /// Index entries kept in memory before they are written to the log in key order…
    pub index_flush_entries: usize,
    /// …this many in each transaction.
    pub index_slice_entries: usize,
    /// A quota: appends that would grow the log past this many pages (4 KiB each) are
    /// refused as a full disk refuses them. How tests reach a full disk without filling one.
    pub max_log_pages: Option<u32>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            live_feed_batches: LIVE_FEED_BATCHES_DEFAULT,
            index_flush_entries: INDEX_FLUSH_ENTRIES_DEFAULT,
            index_slice_entries: INDEX_SLICE_ENTRIES_DEFAULT,
            max_log_pages: None,
        }
    }
}
/// Reads that run at once, each on a connection of its own. Bounded so that every
/// connection is kept and reused: opening one parses the schema and starts with no prepared
/// statements, and a burst of reads (commands on orders the state cache no longer holds)
/// opened and closed hundreds a second (docs/performance.md).
const READERS_MAX: usize = 16;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    // Mutex only to be Sync on older toolchains' mpsc; the lock is held for a send.
    appends: Mutex<Option<mpsc::Sender<writer::AppendRequest>>>,
    readers: Mutex<Vec<Connection>>,
    /// A permit per connection that may be open at once (`READERS_MAX`).
    reading: Arc<Semaphore>,
    live: Arc<LiveFeed>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    names: StreamNames,
    pending: Arc<RwLock<index::Pending>>,
    /// Held while this store may append, until it is closed.
    writer_lock: Mutex<Option<std::fs::File>>,
    /// Another process writes the log: this store may only read it.
    read_only: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) the log in `data_dir`, migrating its schema.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(data_dir, SqliteOptions::default())
    }

    pub fn open_with(data_dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(LOG_FILE_NAME);
        let Some(writer_lock) = lock_log(data_dir)? else {
            return SqliteStore::open_to_read(path, options);
        };
        let connection = Connection::open(&path)?;
        schema::configure_writer(&connection)?;
        schema::migrate(&connection)?;
        if let Some(pages) = options.max_log_pages {
            connection.pragma_update(None, "max_page_count", pages)?;
        }
        let next_position = schema::next_position(&connection)?;
        let pending = Arc::new(RwLock::new(index::Pending::load(&connection)?));
        let live = Arc::new(LiveFeed::new(options.live_feed_batches));
        let (appends, queue) = mpsc::channel();
        let writer = writer::spawn(
            connection,
            &path,
            queue,
            Arc::clone(&live),
            next_position,
            Arc::clone(&pending),
            (
                options.index_flush_entries.max(1),
                options.index_slice_entries.max(1),
            ),
        )?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                appends: Mutex::new(Some(appends)),
                readers: Mutex::new(Vec::new()),
                reading: Arc::new(Semaphore::new(READERS_MAX)),
                live,
                writer: Mutex::new(Some(writer)),
                names: StreamNames::default(),
                pending,
                writer_lock: Mutex::new(Some(writer_lock)),
                read_only: false,
            }),
        })
    }

    /// The log as another process writes it: reads see what was indexed when it was opened
    /// and everything appended since by position; appends are refused.
    fn open_to_read(path: PathBuf, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let connection = open_reader(&path)?;
        let pending = Arc::new(RwLock::new(index::Pending::load(&connection)?));
        let live = Arc::new(LiveFeed::new(options.live_feed_batches));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                appends: Mutex::new(None),
                readers: Mutex::new(vec![connection]),
                reading: Arc::new(Semaphore::new(READERS_MAX)),
                live,
                writer: Mutex::new(None),
                names: StreamNames::default(),
                pending,
                writer_lock: Mutex::new(None),
                read_only: true,
            }),
        })
    }

    /// Whether this store may append: false when another process writes the log.
    pub fn is_writer(&self) -> bool {
        !self.inner.read_only
    }

    /// Refuses a log that another process writes, naming it.
    pub fn to_write(self) -> Result<SqliteStore, StoreError> {
        if self.is_writer() {
            Ok(self)
        } else {
            Err(self.written_elsewhere())
        }
    }

    /// Hands appends to the writer, in this order and with nothing between them.
    fn send(
        &self,
        appends: impl IntoIterator<Item = Append>,
        chain: Option<Arc<AtomicBool>>,
    ) -> Result<Vec<Answer>, StoreError> {
        if self.inner.read_only {
            return Err(self.written_elsewhere());
        }
        let sender = self.inner.appends.lock().map_err(|_| StoreError::Closed)?;
        let sender = sender.as_ref().ok_or(StoreError::Closed)?;
        let mut answers = Vec::new();
        for append in appends {
            let (reply, answer) = oneshot::channel();
            let chain = chain.clone();
            let request = writer::AppendRequest {
                append,
                chain,
                reply,
            };
            sender.send(request).map_err(|_| StoreError::Closed)?;
            answers.push(answer);
        }
        Ok(answers)
    }

    fn written_elsewhere(&self) -> StoreError {
        let dir = self.inner.path.parent().unwrap_or(Path::new("."));
        StoreError::WrittenElsewhere(dir.to_path_buf())
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops taking appends, lets the writer commit what it holds, and waits for it; the log
    /// is then one file. Reads still work, on connections opened anew.
    pub fn close(&self) {
        self.inner.stop_writing();
        // Another store may now write the log.
        if let Ok(mut lock) = self.inner.writer_lock.lock() {
            lock.take();
        }
    }

    async fn with_reader<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        // Owned, so that it is held until the read ends even if this future is dropped.
        let permit = Arc::clone(&inner.reading)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut pool| pool.pop());
            let connection = match pooled {
                Some(connection) => connection,
                None => open_reader(&inner.path)?,
            };
            let result = read(&connection);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(connection);
            }
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Io(format!("read task failed: {e}")))?
    }
}

impl Inner {
    fn stop_writing(&self) {
        // The idle readers close first, so that the writer's connection is the log's last:
        // SQLite then copies the WAL into the database and deletes it, and a stopped store is
        // one file. A read-only connection closing last would leave the log in the WAL.
        if let Ok(mut readers) = self.readers.lock() {
            readers.clear();
        }
        if let Ok(mut sender) = self.appends.lock() {
            sender.take();
        }
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_writing();
    }
}

/// Takes the log's writer lock, or `None` when another process holds it.
fn lock_log(data_dir: &Path) -> Result<Option<std::fs::File>, StoreError> {
    let path = data_dir.join(LOG_LOCK_FILE_NAME);
    try_lock_file(&path).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))
}

/// An exclusive lock on `path` (created if need be), held while the file lives, or `None`
/// when another process holds it: how a data directory's log and views each keep to one
/// writer.
pub fn try_lock_file(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    schema::keep_plans(&connection)?;
    Ok(connection)
}

const SELECT_EVENT: &str = "SELECT e.position, e.stream_id, e.revision, e.event_id, e.event_type, e.data, e.metadata, e.recorded_at
     FROM events e";

/// Every stream's name by its id, loaded from `streams` when a read meets an id past the end.
/// Ids only grow (a new stream gets the next one), so the vector holds every name below its
/// length, and reading `$all` names each event without joining `streams` for every row (that
/// join was a sixth of a rebuild's CPU). Costs ~100 bytes a stream while the store is open.
#[derive(Default)]
struct StreamNames {
    by_id: RwLock<Vec<Option<StreamName>>>,
}

impl StreamNames {
    fn name(&self, db: &Connection, id: i64, position: i64) -> Result<StreamName, StoreError> {
        let index = usize::try_from(id)
            .map_err(|_| StoreError::Corrupt(format!("stream id {id} at {position}")))?;
        // A poisoned lock still holds whole names: every slot is written in one step.
        let known = self.by_id.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(Some(name)) = known.get(index) {
            return Ok(name.clone());
        }
        drop(known);
        let mut names = self.by_id.write().unwrap_or_else(PoisonError::into_inner);
        if index >= names.len() {
            let mut statement =
                db.prepare_cached("SELECT id, name FROM streams WHERE id >= ?1 ORDER BY id")?;
            let mut rows = statement.query(params![names.len() as i64])?;
            while let Some(row) = rows.next()? {
                let (id, name): (i64, String) = (row.get(0)?, row.get(1)?);
                let slot = usize::try_from(id)
                    .map_err(|_| StoreError::Corrupt(format!("stream id {id}")))?;
                let name = StreamName::new(&name)
                    .map_err(|e| StoreError::Corrupt(format!("stream {id}'s name: {e}")))?;
                if slot >= names.len() {
                    names.resize(slot + 1, None);
                }
                names[slot] = Some(name);
            }
        }
        names
            .get(index)
            .cloned()
            .flatten()
            .ok_or_else(|| StoreError::Corrupt(format!("unknown stream id {id} at {position}")))
    }
}

fn row_to_event(
    row: &rusqlite::Row<'_>,
    name: &mut impl FnMut(i64, i64) -> Result<StreamName, StoreError>,
) -> rusqlite::Result<Result<RecordedEvent, StoreError>> {
    let position: i64 = row.get(0)?;
    let stream_id: i64 = row.get(1)?;
    let revision: i64 = row.get(2)?;
    // Borrowed: an owned copy was an allocation a row, freed on another thread.
    let event_id = row.get_ref(3)?.as_blob()?;
    let recorded_at: i64 = row.get(7)?;
    let event = (|| {
        Ok(RecordedEvent {
            stream: name(stream_id, position)?,
            revision: u64::try_from(revision)
                .map_err(|_| StoreError::Corrupt(format!("negative revision at {position}")))?,
            position: u64::try_from(position)
                .map_err(|_| StoreError::Corrupt(format!("negative position {position}")))?,
            event_id: Uuid::from_slice(event_id)
                .map_err(|_| StoreError::Corrupt(format!("event id at {position}")))?,
            event_type: row.get(4).map_err(StoreError::from)?,
            data: row.get(5).map_err(StoreError::from)?,
            metadata: row.get(6).map_err(StoreError::from)?,
            recorded_at: DateTime::<Utc>::from_timestamp_micros(recorded_at)
                .ok_or_else(|| StoreError::Corrupt(format!("recorded_at at {position}")))?,
        })
    })();
    Ok(event)
}

/// Room is made for `max` events at once: a full page grown a doubling at a time was moved
/// 14 times, each move copying the events read so far (1.3% of a rebuild's instructions). A
/// short read gives back what it did not use.
fn collect(
    statement: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    max: usize,
    mut name: impl FnMut(i64, i64) -> Result<StreamName, StoreError>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = statement.query_map(params, |row| row_to_event(row, &mut name))?;
    let mut events = Vec::with_capacity(max);
    for row in rows {
        events.push(row??);
    }
    if events.len() < events.capacity() / 2 {
        events.shrink_to_fit();
    }
    Ok(events)
}

/// Read conditions over a key (`e.position` or `e.revision`), from a bound, in a direction.
const FORWARDS_FROM: &str = "{key} >= {from} ORDER BY {key} ASC";
const FORWARDS_AFTER: &str = "{key} > {from} ORDER BY {key} ASC";
const BACKWARDS_FROM: &str = "{key} <= {from} ORDER BY {key} DESC";

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(&events)?;
        let append = Append {
            stream: stream.clone(),
            expected,
            events,
        };
        let answer = self.send([append], None)?.pop().ok_or(StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Every append is sent to the writer before the first is awaited, so that they share
    /// group commits; they are sent together, so nothing else comes between them.
    async fn append_in_order(&self, appends: Vec<Append>) -> Result<Vec<AppendResult>, StoreError> {
        for append in &appends {
            validate_append(&append.events)?;
        }
        let chain = Arc::new(AtomicBool::new(false));
        let answers = self.send(appends, Some(chain))?;
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(answer.await.map_err(|_| StoreError::Closed)??);
        }
        Ok(results)
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.clone();
        let max = max.min(READ_EVENTS_MAX);
        let inner = Arc::clone(&self.inner);
        self.with_reader(move |db| {
            let stream_id: Option<i64> = db
                .prepare_cached("SELECT id FROM streams WHERE name = ?1")?
                .query_row(params![stream.as_str()], |row| row.get(0))
                .optional()?;
            let Some(stream_id) = stream_id else {
                return Err(StoreError::StreamNotFound(stream));
            };
            let ascending = direction == Direction::Forwards;
            let bound = match (direction, from) {
                (Direction::Forwards, StreamFrom::End) => None,
                (_, StreamFrom::Start) => Some(0),
                (_, StreamFrom::Revision(r)) => Some(r),
                (Direction::Backwards, StreamFrom::End) => Some(u64::MAX),
            };
            let range = index::Range {
                ascending,
                bound,
                max,
            };
            // Taken before the table is read (see `index::entries`).
            let recent = index::read(&inner.pending).of_stream(stream_id).to_vec();
            let entries = index::entries(db, stream_id, range, &[&recent])?;
            let mut statement =
                db.prepare_cached(&format!("{SELECT_EVENT} WHERE e.position = ?1"))?;
            let mut events = Vec::with_capacity(entries.len());
            for (_, position) in entries {
                let event = statement
                    .query_row(params![position as i64], |row| {
                        row_to_event(row, &mut |_, _| Ok(stream.clone()))
                    })
                    .optional()?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "the index names a missing event at {position}"
                        ))
                    })??;
                events.push(event);
            }
            Ok(events)
        })
        .await
    }

    async fn read_all(
        &self,
        from: AllFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max.min(READ_EVENTS_MAX);
        let inner = Arc::clone(&self.inner);
        self.with_reader(move |db| {
            let (condition, start) = match (direction, from) {
                (Direction::Forwards, AllFrom::Start) => (FORWARDS_FROM, 0),
                (Direction::Forwards, AllFrom::Position(p)) => (FORWARDS_FROM, to_sql(p)),
                (Direction::Forwards, AllFrom::End) => (FORWARDS_AFTER, i64::MAX),
                (Direction::Backwards, AllFrom::End) => (BACKWARDS_FROM, i64::MAX),
                (Direction::Backwards, AllFrom::Position(p)) => (BACKWARDS_FROM, to_sql(p)),
                (Direction::Backwards, AllFrom::Start) => (BACKWARDS_FROM, 0),
            };
            let sql = format!(
                "{SELECT_EVENT} WHERE {} LIMIT ?2",
                condition
                    .replace("{key}", "e.position")
                    .replace("{from}", "?1")
            );
            let mut statement = db.prepare_cached(&sql)?;
            collect(
                &mut statement,
                params![start, max as i64],
                max,
                |id, position| inner.names.name(db, id, position),
            )
        })
        .await
    }

    async fn subscribe_all(
        &self,
        from: SubscribeFrom,
    ) -> Result<Box<dyn Subscription>, StoreError> {
        let live = self.inner.live.subscribe_all();
        Ok(Box::new(
            CatchUp::start(self.clone(), Target::All, live, from).await?,
        ))
    }

    async fn subscribe_stream(
        &self,
        stream: &StreamName,
        from: SubscribeFrom,
    ) -> Result<Box<dyn Subscription>, StoreError> {
        let live = self.inner.live.subscribe_stream(stream)?;
        let target = Target::Stream(stream.clone());
        Ok(Box::new(
            CatchUp::start(self.clone(), target, live, from).await?,
        ))
    }
}
