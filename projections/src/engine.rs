//! Keeps the views current: reads `$all` from the checkpoint, applies events in batches, and
//! stores every view with the checkpoint in one transaction of a read-model database kept
//! apart from the event store, so it works unchanged on any `EventStore`.
//!
//! Views are stored whole (a snapshot per view, split into chunks so no value nears SQLite's
//! size limit) after at least `SAVE_EVERY_EVENTS` events and `SAVE_INTERVAL` since the last
//! save, and when the engine stops. After a crash the engine resumes from the last stored
//! checkpoint, so no event is ever applied twice to a stored state; what came after it is
//! applied again from the log. A save costs time in proportion to the views' size; storing
//! only the entities that changed is the known next step (see docs/performance.md).

use crate::{Fact, FactError, ViewName, Views};
use ledger_domain::ORDER_STREAM_PREFIX;
use ledger_store::{
    AllFrom, Direction, EventStore, RecordedEvent, StoreError, SubscribeFrom, READ_EVENTS_MAX,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// File name of the read-model database inside the data directory.
pub const READ_MODEL_FILE_NAME: &str = "views.sqlite";
/// Events applied before the views are saved again (if `SAVE_INTERVAL` has passed too).
pub const SAVE_EVERY_EVENTS: u64 = 50_000;
/// Least time between two saves while following the log.
pub const SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// Largest piece of a stored view: far below SQLite's 1 GB limit on one value.
pub const VIEW_CHUNK_BYTES_DEFAULT: usize = 64 * 1024 * 1024;

/// Tuning of the engine; the defaults suit production.
#[derive(Clone, Debug)]
pub struct ProjectorOptions {
    pub view_chunk_bytes: usize,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        ProjectorOptions {
            view_chunk_bytes: VIEW_CHUNK_BYTES_DEFAULT,
        }
    }
}
/// Schema of the read-model database; a newer one is refused.
const READ_MODEL_SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    #[error("the views stopped: {0}")]
    Fact(#[from] FactError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read-model database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored view {view:?} cannot be read: {detail}")]
    CorruptView { view: ViewName, detail: String },
    #[error("the read-model database has schema {0}, newer than this binary's")]
    NewerSchema(i64),
}

/// What a catch-up did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub applied: u64,
    pub checkpoint: Option<u64>,
}

pub struct Projector {
    views: Views,
    // Invariant: `views` reflect exactly the events up to and including `checkpoint`.
    checkpoint: Option<u64>,
    unsaved: u64,
    saved_at: std::time::Instant,
    options: ProjectorOptions,
    db: Connection,
    path: PathBuf,
}

impl Projector {
    /// Opens the read-model database in `data_dir`, loading the stored views and checkpoint.
    pub fn open(data_dir: &Path) -> Result<Projector, ProjectionError> {
        Projector::open_with(data_dir, ProjectorOptions::default())
    }

    pub fn open_with(
        data_dir: &Path,
        options: ProjectorOptions,
    ) -> Result<Projector, ProjectionError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            ProjectionError::Store(StoreError::Io(format!("{}: {e}", data_dir.display())))
        })?;
        let path = data_dir.join(READ_MODEL_FILE_NAME);
        let db = Connection::open(&path)?;
        db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&db)?;
        let mut projector = Projector {
            views: Views::default(),
            checkpoint: None,
            unsaved: 0,
            saved_at: std::time::Instant::now(),
            options,
            db,
            path,
        };
        projector.load()?;
        Ok(projector)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn views(&self) -> &Views {
        &self.views
    }

    pub fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }

    fn load(&mut self) -> Result<(), ProjectionError> {
        let stored: Option<Option<i64>> = self
            .db
            .query_row("SELECT checkpoint FROM progress WHERE id = 0", [], |row| {
                row.get(0)
            })
            .optional()?;
        let Some(checkpoint) = stored else {
            return Ok(());
        };
        for view in ViewName::ALL {
            let mut statement = self
                .db
                .prepare_cached("SELECT state FROM views WHERE name = ?1 ORDER BY chunk")?;
            let mut state = Vec::new();
            for chunk in
                statement.query_map(params![view.as_str()], |row| row.get::<_, Vec<u8>>(0))?
            {
                state.extend(chunk?);
            }
            if !state.is_empty() {
                self.views
                    .load_json(view, &state)
                    .map_err(|e| ProjectionError::CorruptView {
                        view,
                        detail: e.to_string(),
                    })?;
            }
        }
        self.checkpoint = checkpoint.map(|c| c as u64);
        Ok(())
    }

    /// Applies a batch in `$all` order. Events at or before the checkpoint are skipped, so a
    /// batch delivered again changes nothing. An unreadable event stops the views just before
    /// it, with an error naming its position; the events before it stay applied.
    pub fn apply(&mut self, batch: &[RecordedEvent]) -> Result<u64, ProjectionError> {
        let mut applied = 0;
        let mut failure = None;
        for recorded in batch {
            if self.checkpoint.is_some_and(|c| recorded.position <= c) {
                continue;
            }
            if recorded.stream.as_str().starts_with(ORDER_STREAM_PREFIX) {
                match Fact::decode(recorded) {
                    Ok(fact) => self.views.apply(&fact),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            self.checkpoint = Some(recorded.position);
            applied += 1;
        }
        self.unsaved += applied;
        if let Some(error) = failure {
            return Err(error.into());
        }
        if self.unsaved >= SAVE_EVERY_EVENTS && self.saved_at.elapsed() >= SAVE_INTERVAL {
            self.save()?;
        }
        Ok(applied)
    }

    /// Stores every view and the checkpoint in one transaction.
    pub fn save(&mut self) -> Result<(), ProjectionError> {
        let tx = self.db.transaction()?;
        for view in ViewName::ALL {
            let state = self
                .views
                .to_json(view)
                .map_err(|e| ProjectionError::CorruptView {
                    view,
                    detail: e.to_string(),
                })?;
            tx.execute("DELETE FROM views WHERE name = ?1", params![view.as_str()])?;
            for (chunk, piece) in state
                .chunks(self.options.view_chunk_bytes.max(1))
                .enumerate()
            {
                tx.execute(
                    "INSERT INTO views (name, chunk, state) VALUES (?1, ?2, ?3)",
                    params![view.as_str(), chunk as i64, piece],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO progress (id, checkpoint) VALUES (0, ?1)
             ON CONFLICT (id) DO UPDATE SET checkpoint = excluded.checkpoint",
            params![self.checkpoint.map(|c| c as i64)],
        )?;
        tx.commit()?;
        self.unsaved = 0;
        self.saved_at = std::time::Instant::now();
        Ok(())
    }

    /// Reads and applies everything after the checkpoint, then saves.
    pub async fn catch_up(&mut self, store: &dyn EventStore) -> Result<Progress, ProjectionError> {
        let mut applied = 0;
        loop {
            let from = self.checkpoint.map_or(0, |c| c + 1);
            let page = store
                .read_all(
                    AllFrom::Position(from),
                    Direction::Forwards,
                    READ_EVENTS_MAX,
                )
                .await?;
            if page.is_empty() {
                break;
            }
            applied += self.apply(&page)?;
        }
        self.save()?;
        Ok(Progress {
            applied,
            checkpoint: self.checkpoint,
        })
    }

    /// Throws the views away and folds the log again from its first event: all views, or
    /// one, which is refolded up to the checkpoint the others have reached.
    pub async fn rebuild(
        &mut self,
        store: &dyn EventStore,
        only: Option<ViewName>,
        mut on_progress: impl FnMut(u64),
    ) -> Result<Progress, ProjectionError> {
        let until = match only {
            Some(_) => self.catch_up(store).await?.checkpoint,
            None => None,
        };
        let mut rebuilt = Views::default();
        let mut last = None;
        let mut applied = 0;
        let mut next_page = Some(read_page(store, 0));
        while let Some(reading) = next_page.take() {
            let mut page = reading.await?;
            if let Some(u) = until {
                page.retain(|e| e.position <= u);
            }
            let Some(end) = page.last().map(|e| e.position) else {
                break;
            };
            let done = until.is_some_and(|u| end >= u);
            if !done {
                // Read the next page while this one is decoded and folded.
                next_page = Some(read_page(store, end + 1));
            }
            for fact in decode_in_parallel(&page)? {
                rebuilt.apply(&fact);
            }
            last = Some(end);
            applied += page.len() as u64;
            on_progress(applied);
        }
        match only {
            None => {
                self.views = rebuilt;
                self.checkpoint = last;
            }
            Some(view) => {
                let corrupt = |e: serde_json::Error| ProjectionError::CorruptView {
                    view,
                    detail: e.to_string(),
                };
                let json = rebuilt.to_json(view).map_err(corrupt)?;
                self.views.load_json(view, &json).map_err(corrupt)?;
            }
        }
        self.save()?;
        Ok(Progress {
            applied,
            checkpoint: self.checkpoint,
        })
    }

    /// Follows `$all` live from the checkpoint, calling `after_batch` with the views after
    /// each batch, until the subscription ends or `stop` resolves.
    pub async fn follow(
        &mut self,
        store: &dyn EventStore,
        mut after_batch: impl FnMut(&Views, Option<u64>),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), ProjectionError> {
        let from = self
            .checkpoint
            .map_or(SubscribeFrom::Start, SubscribeFrom::After);
        let mut subscription = store.subscribe_all(from).await?;
        tokio::pin!(stop);
        loop {
            let first = tokio::select! {
                event = subscription.next() => event?,
                () = &mut stop => break,
            };
            let mut batch = vec![first];
            // Take whatever else is ready, without waiting.
            while batch.len() < READ_EVENTS_MAX {
                match tokio::time::timeout(std::time::Duration::ZERO, subscription.next()).await {
                    Ok(event) => batch.push(event?),
                    Err(_) => break,
                }
            }
            self.apply(&batch)?;
            after_batch(&self.views, self.checkpoint);
        }
        self.save()
    }
}

/// A page of `$all` from `from`, read concurrently with whatever the caller does meanwhile.
fn read_page(
    store: &dyn EventStore,
    from: u64,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send + '_>,
> {
    store.read_all(
        AllFrom::Position(from),
        Direction::Forwards,
        READ_EVENTS_MAX,
    )
}

/// Decodes a page's order events on every core, keeping their order. Decoding JSON is most
/// of the cost of a rebuild; folding must stay sequential.
fn decode_in_parallel(page: &[RecordedEvent]) -> Result<Vec<Fact>, FactError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = page.len().div_ceil(workers).max(1);
    let decode = |part: &[RecordedEvent]| -> Result<Vec<Fact>, FactError> {
        part.iter()
            .filter(|e| e.stream.as_str().starts_with(ORDER_STREAM_PREFIX))
            .map(Fact::decode)
            .collect()
    };
    if workers == 1 || page.len() < 2 * chunk {
        return decode(page);
    }
    let parts: Vec<Result<Vec<Fact>, FactError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = page
            .chunks(chunk)
            .map(|part| scope.spawn(move || decode(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut facts = Vec::with_capacity(page.len());
    for part in parts {
        facts.extend(part?);
    }
    Ok(facts)
}

fn migrate(db: &Connection) -> Result<(), ProjectionError> {
    let version: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > READ_MODEL_SCHEMA_VERSION {
        return Err(ProjectionError::NewerSchema(version));
    }
    if version < 1 {
        db.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE views (
                name  TEXT    NOT NULL,
                chunk INTEGER NOT NULL,
                state BLOB    NOT NULL,
                PRIMARY KEY (name, chunk)
             );
             CREATE TABLE progress (id INTEGER PRIMARY KEY CHECK (id = 0), checkpoint INTEGER);
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    Ok(())
}
