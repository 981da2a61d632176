//! Keeps the views current: reads `$all` from the checkpoint, applies events in batches, and
//! stores every view with the checkpoint in one transaction of a read-model database kept
//! apart from the event store, so it works unchanged on any `EventStore`.
//!
//! Views are stored as rows, one per entity or appended item, and only the rows that changed
//! are written (see `rows`). They are saved after at least `SAVE_EVERY_EVENTS` events and
//! `SAVE_INTERVAL` since the last save, and when the engine stops. After a crash the engine
//! resumes from the last stored checkpoint, so no event is ever applied twice to a stored
//! state; what came after it is applied again from the log.

use crate::rows::{PendingRows, RowChange, RowSink};
use crate::{Fact, FactError, ViewName, Views};
use ledger_domain::is_order_stream;
use ledger_store::{
    read_all_page, AllFrom, Direction, EventStore, RecordedEvent, StoreError, SubscribeFrom,
    READ_EVENTS_MAX,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// File name of the read-model database inside the data directory.
pub const READ_MODEL_FILE_NAME: &str = "views.sqlite";
/// Events applied before the views are saved again (if `SAVE_INTERVAL` has passed too).
pub const SAVE_EVERY_EVENTS: u64 = 50_000;
/// Least time between two saves while following the log.
pub const SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// Page cache of the read-model database (negative: KiB), so saves work in memory.
const READ_MODEL_CACHE_KIB: i64 = -262_144;
/// Page size of the read-model database. Rows are ~1 KB (an order) up to ~60 KB (256
/// postings); 64 KiB pages make every insert shift a large page (docs/performance.md).
const READ_MODEL_PAGE_SIZE: i64 = 16_384;
/// Page cache while a rebuild writes its fresh file: rows arrive in key order, so pages are
/// written once and a large cache only delays the writes to the commit.
const REBUILD_CACHE_KIB: i64 = -8_192;
/// Threads that serialise views into rows while a full rebuild is stored.
const ROW_SERIALISERS: usize = 2;
/// Schema of the read-model database; an older one holds only derived data and is dropped.
/// 6: the journal keeps no account at zero. 7: instants and accounts in binary. 8: the
/// checkpoint's event id. 9: when an order's dispute was opened. 10: why. 11: amounts in
/// minor units. 12: postings' memos as numbers. 13: keys as bytes.
const READ_MODEL_SCHEMA_VERSION: i64 = 13;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    #[error("the views stopped: {0}")]
    Fact(#[from] FactError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read-model database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored view {0}")]
    Row(#[from] crate::rows::RowError),
    #[error("stored view {view:?} cannot be read: {detail}")]
    CorruptView { view: ViewName, detail: String },
    #[error("the read-model database has schema {0}, newer than this binary's")]
    NewerSchema(i64),
    #[error("the views in {0} are in use by another process (is `ledger serve` running on it?)")]
    InUse(PathBuf),
    #[error("a thread loading the stored views panicked")]
    LoaderPanicked,
}

/// The last event the views reflect. Its id tells this log's event at that position from
/// another log's: views folded from one log must not go on along another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checkpoint {
    position: u64,
    event_id: Uuid,
}

impl Checkpoint {
    fn of(event: &RecordedEvent) -> Checkpoint {
        Checkpoint {
            position: event.position,
            event_id: event.event_id,
        }
    }
}

/// What changed in the views since the last save, and the checkpoint it belongs to.
pub struct PendingSave {
    views: Vec<(ViewName, Vec<Box<dyn PendingRows>>)>,
    checkpoint: Option<Checkpoint>,
}

/// Writes pending saves on a connection of its own (see `Projector::saver`).
pub struct Saver {
    db: Connection,
    /// Saves serialised but not stored yet, oldest first. A save that fails to be written (a
    /// full disk) is kept and written before any later one, so the stored rows never miss a
    /// save and the views need not stop for it.
    backlog: std::collections::VecDeque<SerialisedSave>,
}

impl Saver {
    /// Stores `pending` after whatever an earlier failure left behind. A failure to write
    /// keeps it for the next call; a failure to serialise (`CorruptView`) loses it, so no
    /// later save may be written after one.
    pub fn write(&mut self, pending: PendingSave) -> Result<(), ProjectionError> {
        self.backlog.push_back(serialise(pending)?);
        while let Some(save) = self.backlog.front() {
            store_save(&mut self.db, save)?;
            self.backlog.pop_front();
        }
        Ok(())
    }

    /// Saves waiting to be written again after a failure.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }
}

/// A pending save turned into rows, which can be written again if writing fails.
struct SerialisedSave {
    views: Vec<(ViewName, Vec<RowChange>)>,
    checkpoint: Option<Checkpoint>,
}

fn serialise(pending: PendingSave) -> Result<SerialisedSave, ProjectionError> {
    let mut views = Vec::with_capacity(pending.views.len());
    for (view, tables) in pending.views {
        let mut rows = Vec::new();
        for table in tables {
            table
                .into_rows(&mut rows)
                .map_err(|e| ProjectionError::CorruptView {
                    view,
                    detail: e.to_string(),
                })?;
        }
        views.push((view, rows));
    }
    Ok(SerialisedSave {
        views,
        checkpoint: pending.checkpoint,
    })
}

/// Serialises a pending save and stores it, with its checkpoint, in one transaction.
fn write_save(db: &mut Connection, pending: PendingSave) -> Result<(), ProjectionError> {
    store_save(db, &serialise(pending)?)
}

/// Stores a save's rows and its checkpoint in one transaction.
fn store_save(db: &mut Connection, save: &SerialisedSave) -> Result<(), ProjectionError> {
    let tx = db.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO rows (view, tbl, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (view, tbl, key) DO UPDATE SET value = excluded.value",
        )?;
        let mut delete =
            tx.prepare_cached("DELETE FROM rows WHERE view = ?1 AND tbl = ?2 AND key = ?3")?;
        for (view, rows) in &save.views {
            for row in rows {
                match &row.value {
                    Some(value) => {
                        upsert.execute(params![view.as_str(), row.table, row.key, value])?
                    }
                    None => delete.execute(params![view.as_str(), row.table, row.key])?,
                };
            }
        }
    }
    store_checkpoint(&tx, save.checkpoint)?;
    tx.commit()?;
    Ok(())
}

fn store_checkpoint(
    db: &Connection,
    checkpoint: Option<Checkpoint>,
) -> Result<(), ProjectionError> {
    db.execute(
        "INSERT INTO progress (id, checkpoint, event_id) VALUES (0, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET checkpoint = excluded.checkpoint,
                                        event_id = excluded.event_id",
        params![
            checkpoint.map(|c| c.position as i64),
            checkpoint.map(|c| c.event_id.into_bytes())
        ],
    )?;
    Ok(())
}

/// What the stored views are against the log (`Projector::check_stored`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewsCheck {
    /// Not compared with the log: none stored, an older layout (the next start folds them
    /// again), or folded from another log (the next catch-up folds them again).
    NotCompared(StoredViews),
    /// Each view compared with a fold of the log up to the checkpoint; `unlike` lists those
    /// that differ (none, if the stored views are what the log folds to).
    Compared {
        checkpoint: u64,
        unlike: Vec<ViewName>,
    },
}

/// Where stored views stand against the log (`Projector::stored_standing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StoredViews {
    Nothing,
    /// A layout this binary no longer reads; its next start folds them again.
    OlderLayout {
        schema: i64,
    },
    /// Written by a newer binary: this one refuses to start on them (`ledger rebuild`).
    NewerLayout {
        schema: i64,
    },
    /// The log holds another event at their checkpoint, or none.
    AnotherLog {
        checkpoint: u64,
    },
    FoldedUpTo {
        checkpoint: u64,
    },
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
    checkpoint: Option<Checkpoint>,
    unsaved: u64,
    saved_at: std::time::Instant,
    db: Connection,
    path: PathBuf,
    /// Held while the projector lives: one writer of the views per data directory. A second
    /// one would save over the first's rows, or a rebuild rename the file from under it.
    _writer_lock: std::fs::File,
}

/// File whose lock marks the views of a data directory as having a writer.
pub const READ_MODEL_LOCK_FILE_NAME: &str = "views.lock";

impl Projector {
    /// Opens the read-model database in `data_dir`, loading the stored views and checkpoint.
    pub fn open(data_dir: &Path) -> Result<Projector, ProjectionError> {
        std::fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
        let writer_lock = lock_views(data_dir)?;
        let path = data_dir.join(READ_MODEL_FILE_NAME);
        let db = open_database(&path)?;
        let mut projector = Projector {
            views: Views::default(),
            checkpoint: None,
            unsaved: 0,
            saved_at: std::time::Instant::now(),
            db,
            path,
            _writer_lock: writer_lock,
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
        self.checkpoint.map(|c| c.position)
    }

    fn load(&mut self) -> Result<(), ProjectionError> {
        // No checkpoint, no views: a catch-up folds them all from the log.
        let Some(checkpoint) = stored_checkpoint(&self.db)? else {
            return Ok(());
        };
        let mut rows_per_view: Vec<(ViewName, usize)> = Vec::new();
        let mut counts = self
            .db
            .prepare("SELECT view, tbl, COUNT(*) FROM rows GROUP BY view, tbl")?;
        let mut tables = counts.query([])?;
        while let Some(table) = tables.next()? {
            let (view, name, rows): (String, String, i64) =
                (table.get(0)?, table.get(1)?, table.get(2)?);
            let view: ViewName = view
                .parse()
                .map_err(|detail| ProjectionError::CorruptView {
                    view: ViewName::Escrow,
                    detail,
                })?;
            let rows = usize::try_from(rows).unwrap_or(0);
            self.views.reserve_rows(view, &name, rows);
            match rows_per_view.iter_mut().find(|(v, _)| *v == view) {
                Some((_, total)) => *total += rows,
                None => rows_per_view.push((view, rows)),
            }
        }
        drop(tables);
        drop(counts);
        load_views_in_parallel(&self.path, &mut self.views, &rows_per_view)?;
        self.checkpoint = Some(checkpoint);
        Ok(())
    }

    /// Applies a batch in `$all` order. Events at or before the checkpoint are skipped, so a
    /// batch delivered again changes nothing. An unreadable event stops the views just before
    /// it, with an error naming its position; the events before it stay applied.
    pub fn apply(&mut self, batch: &[RecordedEvent]) -> Result<u64, ProjectionError> {
        let mut applied = 0;
        let mut failure = None;
        for recorded in batch {
            if self
                .checkpoint
                .is_some_and(|c| recorded.position <= c.position)
            {
                continue;
            }
            if is_order_stream(recorded.stream.as_str()) {
                match Fact::decode(recorded) {
                    Ok(fact) => self.views.apply(&fact),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            self.checkpoint = Some(Checkpoint::of(recorded));
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

    /// Stores what changed in every view, and the checkpoint, in one transaction.
    pub fn save(&mut self) -> Result<(), ProjectionError> {
        let pending = self.take_save();
        write_save(&mut self.db, pending)
    }

    /// Takes what changed since the last save, with the checkpoint it belongs to, for a
    /// `Saver` to write while the views go on folding. Cheap: values are copied, not
    /// serialised. Pending saves must be written in the order they were taken.
    pub fn take_save(&mut self) -> PendingSave {
        self.mark_saved();
        PendingSave {
            views: self.views.take_pending(),
            checkpoint: self.checkpoint,
        }
    }

    /// A second connection to the read-model database, for writing pending saves away from
    /// whoever holds the projector. Valid until a full rebuild replaces the file.
    pub fn saver(&self) -> Result<Saver, ProjectionError> {
        Ok(Saver {
            db: open_database(&self.path)?,
            backlog: std::collections::VecDeque::new(),
        })
    }

    /// Drops the stored rows of `views`: they are about to be written again whole.
    fn forget_stored(&mut self, views: &[ViewName]) -> Result<(), ProjectionError> {
        for view in views {
            self.db
                .execute("DELETE FROM rows WHERE view = ?1", params![view.as_str()])?;
            self.views.mark_all_changed(*view);
        }
        Ok(())
    }

    fn mark_saved(&mut self) {
        self.unsaved = 0;
        self.saved_at = std::time::Instant::now();
    }

    /// Reads and applies everything after the checkpoint, then saves; `on_progress` hears
    /// the events applied so far.
    pub async fn catch_up(
        &mut self,
        store: &dyn EventStore,
        mut on_progress: impl FnMut(u64),
    ) -> Result<Progress, ProjectionError> {
        self.forget_views_of_another_log(store).await?;
        if self.checkpoint.is_none() {
            // Nothing stored (a new data directory, or views of an older layout): catching
            // up is a whole rebuild, whose fold and store take half the time of applying and
            // saving. At an event the views cannot read, the fold below stops just before it.
            match fold_from_zero(store, None, &mut on_progress).await {
                Ok((mut views, checkpoint, applied)) => {
                    self.db = store_fresh(&self.path, &mut views, checkpoint)?;
                    self.views = views;
                    self.checkpoint = checkpoint;
                    self.mark_saved();
                    return Ok(Progress {
                        applied,
                        checkpoint: self.checkpoint(),
                    });
                }
                Err(ProjectionError::Fact(_)) => {}
                Err(error) => return Err(error),
            }
        }
        let mut applied = 0;
        loop {
            let from = self.checkpoint.map_or(0, |c| c.position + 1);
            let page = read_all_page(store, from).await?;
            if page.is_empty() {
                break;
            }
            applied += self.apply(&page)?;
            on_progress(applied);
        }
        self.save()?;
        Ok(Progress {
            applied,
            checkpoint: self.checkpoint(),
        })
    }

    /// Stored views whose checkpoint event is not in the log at its position were folded
    /// from another log, or from this one before it was restored from an older backup: they
    /// hold orders the log does not, and going on from them would pass over the events that
    /// take those positions. They are dropped, stored rows too, so that catching up folds
    /// the log anew.
    async fn forget_views_of_another_log(
        &mut self,
        store: &dyn EventStore,
    ) -> Result<(), ProjectionError> {
        let Some(checkpoint) = self.checkpoint else {
            return Ok(());
        };
        if folded_event_in(store, checkpoint).await?.is_some() {
            return Ok(());
        }
        tracing::warn!(
            checkpoint = checkpoint.position,
            folded = ?checkpoint.event_id,
            "the log holds another event at the stored views' checkpoint, or none (another log, or one restored from an older backup): folding the views again from the log"
        );
        self.db
            .execute_batch("DELETE FROM rows; DELETE FROM progress;")?;
        self.views = Views::default();
        self.checkpoint = None;
        Ok(())
    }

    /// Compares the views stored in `data_dir`, view by view, with a fold of the log up to
    /// their checkpoint, changing nothing: what a service serves is shown to be what its log
    /// says. Only one stored view is in memory at a time, beside the folded ones.
    pub async fn check_stored(
        data_dir: &Path,
        store: &dyn EventStore,
    ) -> Result<ViewsCheck, ProjectionError> {
        let path = data_dir.join(READ_MODEL_FILE_NAME);
        if !path.exists() {
            return Ok(ViewsCheck::NotCompared(StoredViews::Nothing));
        }
        // Held throughout, so that no service writes the views while they are read.
        let _writer_lock = lock_views(data_dir)?;
        let db = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let checkpoint = match standing(&db, store).await? {
            StoredViews::FoldedUpTo { checkpoint } => checkpoint,
            StoredViews::NewerLayout { schema } => {
                return Err(ProjectionError::NewerSchema(schema))
            }
            other => return Ok(ViewsCheck::NotCompared(other)),
        };
        let (folded, _, _) = fold_from_zero(store, Some(checkpoint), |_| {}).await?;
        let mut statement = db.prepare(VIEW_ROWS_QUERY)?;
        let mut unlike = Vec::new();
        for view in ViewName::ALL {
            let mut stored = Views::default();
            load_view(&mut statement, view, stored.view_mut(view))?;
            if json_digest(&stored, view)? != json_digest(&folded, view)? {
                unlike.push(view);
            }
        }
        Ok(ViewsCheck::Compared { checkpoint, unlike })
    }

    /// Where the views stored in `data_dir` stand against the log, without loading them or
    /// taking their lock: an operator may ask beside a running `ledger serve`.
    pub async fn stored_standing(
        data_dir: &Path,
        store: &dyn EventStore,
    ) -> Result<StoredViews, ProjectionError> {
        let path = data_dir.join(READ_MODEL_FILE_NAME);
        if !path.exists() {
            return Ok(StoredViews::Nothing);
        }
        let db = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        // A service's save holds the file for a moment; wait for it rather than fail.
        db.busy_timeout(STANDING_BUSY_TIMEOUT)?;
        standing(&db, store).await
    }

    /// Folds the whole log into new views and stores them in place of the stored ones, which
    /// it never reads: a full rebuild pays for no load of views it would throw away (~10 s on
    /// ten million events), and it is the way out of views that are damaged or that a newer
    /// binary wrote.
    pub async fn rebuild_all(
        data_dir: &Path,
        store: &dyn EventStore,
        on_progress: impl FnMut(u64),
    ) -> Result<(Projector, Progress), ProjectionError> {
        std::fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
        let writer_lock = lock_views(data_dir)?;
        let path = data_dir.join(READ_MODEL_FILE_NAME);
        let (mut views, checkpoint, applied) = fold_from_zero(store, None, on_progress).await?;
        settle_journal(&path)?;
        let db = store_fresh(&path, &mut views, checkpoint)?;
        let projector = Projector {
            views,
            checkpoint,
            unsaved: 0,
            saved_at: std::time::Instant::now(),
            db,
            path,
            _writer_lock: writer_lock,
        };
        Ok((
            projector,
            Progress {
                applied,
                checkpoint: checkpoint.map(|c| c.position),
            },
        ))
    }

    /// Throws one view away and folds it again from the log's first event up to the
    /// checkpoint the others have reached.
    pub async fn rebuild_view(
        &mut self,
        store: &dyn EventStore,
        view: ViewName,
        on_progress: impl FnMut(u64),
    ) -> Result<Progress, ProjectionError> {
        if self.checkpoint.is_none() {
            // Nothing stored: catching up folds every view from zero, this one with them.
            return self.catch_up(store, on_progress).await;
        }
        let until = self.catch_up(store, |_| {}).await?.checkpoint;
        let (rebuilt, _, applied) = fold_from_zero(store, until, on_progress).await?;
        let corrupt = |e: serde_json::Error| ProjectionError::CorruptView {
            view,
            detail: e.to_string(),
        };
        let json = rebuilt.to_json(view).map_err(corrupt)?;
        self.views.load_json(view, &json).map_err(corrupt)?;
        self.forget_stored(&[view])?;
        self.save()?;
        Ok(Progress {
            applied,
            checkpoint: self.checkpoint(),
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
            .checkpoint()
            .map_or(SubscribeFrom::Start, SubscribeFrom::After);
        let mut subscription = store.subscribe_all(from).await?;
        tokio::pin!(stop);
        loop {
            let first = tokio::select! {
                event = subscription.next() => event?,
                () = &mut stop => break,
            };
            let mut batch = vec![first];
            subscription.take_ready(&mut batch, READ_EVENTS_MAX)?;
            self.apply(&batch)?;
            after_batch(&self.views, self.checkpoint());
        }
        self.save()
    }
}

/// Stores every view whole, with the checkpoint, into a fresh database file that then takes
/// the place of the one at `path` by a rename, and opens it. The rows go in once, in key
/// order, with no journal: a crash before the rename leaves the old views and their
/// checkpoint.
fn store_fresh(
    path: &Path,
    views: &mut Views,
    checkpoint: Option<Checkpoint>,
) -> Result<Connection, ProjectionError> {
    let fresh_path = path.with_extension("sqlite.rebuilding");
    remove_if_present(&fresh_path)?;
    for view in ViewName::ALL {
        views.mark_all_changed(view);
    }
    let mut db = Connection::open(&fresh_path)?;
    db.pragma_update(None, "page_size", READ_MODEL_PAGE_SIZE)?;
    db.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;",
    )?;
    db.pragma_update(None, "cache_size", REBUILD_CACHE_KIB.to_string())?;
    migrate(&db)?;
    let tx = db.transaction()?;
    let jobs = std::sync::Mutex::new(views.take_changes_jobs().into_iter());
    // Two threads turn the views into rows, a view at a time, while this one inserts them:
    // serialising costs more than inserting.
    std::thread::scope(|scope| -> Result<(), ProjectionError> {
        let (sender, rows) = std::sync::mpsc::sync_channel(8);
        let jobs = &jobs;
        let serialisers: Vec<_> = (0..ROW_SERIALISERS)
            .map(|_| {
                let sender = sender.clone();
                scope.spawn(move || -> Result<(), ProjectionError> {
                    loop {
                        let next = jobs.lock().ok().and_then(|mut jobs| jobs.next());
                        let Some((view, take)) = next else {
                            return Ok(());
                        };
                        let mut chunks = RowChunks {
                            view,
                            chunk: RowChunk::with_room(),
                            sender: &sender,
                        };
                        take(&mut chunks).map_err(|e| ProjectionError::CorruptView {
                            view,
                            detail: e.to_string(),
                        })?;
                        chunks.flush();
                    }
                })
            })
            .collect();
        drop(sender);
        let mut insert_one = tx.prepare(&insert_rows_sql(1))?;
        let mut insert_many = tx.prepare(&insert_rows_sql(ROWS_PER_INSERT))?;
        for (view, chunk) in rows {
            let stored: Vec<_> = chunk
                .rows()
                .filter_map(|(table, key, value)| Some((table, key, value?)))
                .collect();
            let mut groups = stored.chunks_exact(ROWS_PER_INSERT);
            for group in &mut groups {
                bind_rows(&mut insert_many, view, group)?;
                insert_many.raw_execute()?;
            }
            for row in groups.remainder() {
                bind_rows(&mut insert_one, view, std::slice::from_ref(row))?;
                insert_one.raw_execute()?;
            }
        }
        for serialiser in serialisers {
            serialiser
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        }
        Ok(())
    })?;
    drop(jobs);
    store_checkpoint(&tx, checkpoint)?;
    tx.commit()?;
    drop(db);
    let io = |e| io_error(&fresh_path, e);
    std::fs::File::open(&fresh_path)
        .and_then(|file| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&fresh_path, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
    }
    open_database(path)
}

/// How long a look at the stored views waits for a service's save to let go of the file.
const STANDING_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn standing(db: &Connection, store: &dyn EventStore) -> Result<StoredViews, ProjectionError> {
    let schema: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    match schema {
        0 => return Ok(StoredViews::Nothing),
        READ_MODEL_SCHEMA_VERSION => {}
        newer if newer > READ_MODEL_SCHEMA_VERSION => {
            return Ok(StoredViews::NewerLayout { schema: newer })
        }
        older => return Ok(StoredViews::OlderLayout { schema: older }),
    }
    let Some(checkpoint) = stored_checkpoint(db)? else {
        return Ok(StoredViews::Nothing);
    };
    Ok(match folded_event_in(store, checkpoint).await? {
        Some(_) => StoredViews::FoldedUpTo {
            checkpoint: checkpoint.position,
        },
        None => StoredViews::AnotherLog {
            checkpoint: checkpoint.position,
        },
    })
}

/// The checkpoint stored with the views; none before their first save.
fn stored_checkpoint(db: &Connection) -> Result<Option<Checkpoint>, ProjectionError> {
    let stored: Option<(Option<i64>, Option<[u8; 16]>)> = db
        .query_row(
            "SELECT checkpoint, event_id FROM progress WHERE id = 0",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(stored.and_then(|(position, event_id)| {
        Some(Checkpoint {
            position: position? as u64,
            event_id: Uuid::from_bytes(event_id?),
        })
    }))
}

/// The event the views last folded, if the log holds it at the checkpoint: the same id there.
/// `None`: the log holds another event there, or none, so the views were folded from another
/// log.
async fn folded_event_in(
    store: &dyn EventStore,
    checkpoint: Checkpoint,
) -> Result<Option<RecordedEvent>, ProjectionError> {
    let page = store
        .read_all(
            AllFrom::Position(checkpoint.position),
            Direction::Forwards,
            1,
        )
        .await?;
    Ok(page.into_iter().next().filter(|event| {
        event.position == checkpoint.position && event.event_id == checkpoint.event_id
    }))
}

/// Folds `$all` from its start (up to `until`) into `views`, reading, decoding and folding
/// at once (`ledger_store::fold_all`).
async fn fold_log(
    store: &dyn EventStore,
    until: Option<u64>,
    views: Views,
    on_progress: &mut impl FnMut(u64),
) -> Result<(Views, Option<Checkpoint>, u64), ProjectionError> {
    let mut applied = 0;
    let mut counted = |folded| {
        applied = folded;
        on_progress(folded);
    };
    let (views, last) = ledger_store::fold_all(
        store,
        until,
        views,
        |page| decode_page(&page).map_err(ProjectionError::from),
        |views, facts: Vec<Fact>| {
            for fact in &facts {
                views.apply(fact);
            }
        },
        &mut counted,
    )
    .await?;
    let last = last.map(|(position, event_id)| Checkpoint { position, event_id });
    Ok((views, last, applied))
}

/// Every view folded from the log's first event (up to `until`), with the derived indexes a
/// fold defers built once at the end.
async fn fold_from_zero(
    store: &dyn EventStore,
    until: Option<u64>,
    mut on_progress: impl FnMut(u64),
) -> Result<(Views, Option<Checkpoint>, u64), ProjectionError> {
    let mut views = Views::unstored();
    views.defer_indexes();
    let (mut views, last, applied) = fold_log(store, until, views, &mut on_progress).await?;
    views.build_deferred_indexes();
    Ok((views, last, applied))
}

/// A crash in the middle of a save leaves a hot journal beside the stored views, which SQLite
/// would play back into whatever file next takes their name. Opening the old file first
/// plays it back into the file it belongs to, which stays whole if the rebuild then fails to
/// store its own; if that file cannot be read, its journal is of no use and goes too.
fn settle_journal(path: &Path) -> Result<(), ProjectionError> {
    let journal = path.with_extension("sqlite-journal");
    if !journal.exists() {
        return Ok(());
    }
    if let Ok(db) = Connection::open(path) {
        let _ = db.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()));
    }
    remove_if_present(&journal)
}

/// Rows a rebuild's serialiser hands the inserter at a time, and their bytes at most (past
/// one row): small enough that their memory is reused while still warm, large enough that
/// the channel is no cost.
const REBUILD_ROWS_PER_CHUNK: usize = 1_024;
const REBUILD_CHUNK_BYTES: usize = 1 << 20;

/// Rows of one view on their way to the inserter, their keys and values each in one buffer:
/// with two allocations a row, made by a serialiser and freed by the inserter, freeing was
/// a tenth of the inserter's time on ten million events.
struct RowChunk {
    keys: Vec<u8>,
    values: Vec<u8>,
    // Per row: its table, its key's end in `keys`, its value's end in `values` (or none).
    rows: Vec<(&'static str, usize, Option<usize>)>,
}

impl RowChunk {
    fn with_room() -> RowChunk {
        RowChunk {
            keys: Vec::with_capacity(REBUILD_ROWS_PER_CHUNK * 20),
            values: Vec::with_capacity(REBUILD_CHUNK_BYTES),
            rows: Vec::with_capacity(REBUILD_ROWS_PER_CHUNK),
        }
    }

    fn is_full(&self) -> bool {
        self.rows.len() >= REBUILD_ROWS_PER_CHUNK || self.values.len() >= REBUILD_CHUNK_BYTES
    }

    /// Each row's table, key and value, in the order pushed.
    fn rows(&self) -> impl Iterator<Item = (&'static str, &[u8], Option<&[u8]>)> {
        let (mut key_start, mut value_start) = (0, 0);
        self.rows.iter().map(move |&(table, key_end, value_end)| {
            let key = &self.keys[key_start..key_end];
            key_start = key_end;
            let value = value_end.map(|end| {
                let value = &self.values[value_start..end];
                value_start = end;
                value
            });
            (table, key, value)
        })
    }
}

/// Rows a rebuild inserts with one statement: SQLite's cost a statement is paid once for
/// them all.
const ROWS_PER_INSERT: usize = 32;

fn insert_rows_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?)"; rows].join(", ");
    format!("INSERT INTO rows (view, tbl, key, value) VALUES {values}")
}

fn bind_rows(
    insert: &mut rusqlite::Statement<'_>,
    view: ViewName,
    rows: &[(&'static str, &[u8], &[u8])],
) -> rusqlite::Result<()> {
    for (i, &(table, key, value)) in rows.iter().enumerate() {
        let first = 4 * i + 1;
        insert.raw_bind_parameter(first, view.as_str())?;
        insert.raw_bind_parameter(first + 1, table)?;
        insert.raw_bind_parameter(first + 2, key)?;
        insert.raw_bind_parameter(first + 3, value)?;
    }
    Ok(())
}

/// A serialiser's sink in a rebuild: rows go on to the inserter a chunk at a time. If the
/// inserter has stopped (it failed, and says why), the rest are dropped.
struct RowChunks<'a> {
    view: ViewName,
    chunk: RowChunk,
    sender: &'a std::sync::mpsc::SyncSender<(ViewName, RowChunk)>,
}

impl RowChunks<'_> {
    fn flush(&mut self) {
        if !self.chunk.rows.is_empty() {
            let chunk = std::mem::replace(&mut self.chunk, RowChunk::with_room());
            let _ = self.sender.send((self.view, chunk));
        }
    }
}

impl RowSink for RowChunks<'_> {
    fn push(&mut self, table: &'static str, key: &[u8], value: Option<&[u8]>) {
        let chunk = &mut self.chunk;
        chunk.keys.extend_from_slice(key);
        let value_end = value.map(|value| {
            chunk.values.extend_from_slice(value);
            chunk.values.len()
        });
        chunk.rows.push((table, chunk.keys.len(), value_end));
        if chunk.is_full() {
            self.flush();
        }
    }
}

/// A page's order events, decoded in order. Room for the whole page first: collected
/// through a filter, the vector grew by doubling, copying and faulting in ~2% of a rebuild.
fn decode_page(page: &[RecordedEvent]) -> Result<Vec<Fact>, FactError> {
    let mut facts = Vec::with_capacity(page.len());
    for event in page.iter().filter(|e| is_order_stream(e.stream.as_str())) {
        facts.push(Fact::decode(event)?);
    }
    Ok(facts)
}

fn lock_views(data_dir: &Path) -> Result<std::fs::File, ProjectionError> {
    let path = data_dir.join(READ_MODEL_LOCK_FILE_NAME);
    ledger_store::try_lock_file(&path)
        .map_err(|e| io_error(&path, e))?
        .ok_or_else(|| ProjectionError::InUse(data_dir.to_path_buf()))
}

/// Threads loading stored views at once, each a view at a time with a connection of its own.
/// A start on two cores spent most of its time decoding rows on one.
const LOAD_THREADS: usize = 2;

/// Loads every stored view and derives its indexes, the biggest views first, spread over
/// `LOAD_THREADS` threads. Views are independent of each other, so each is one thread's job.
fn load_views_in_parallel(
    path: &Path,
    views: &mut Views,
    rows_per_view: &[(ViewName, usize)],
) -> Result<(), ProjectionError> {
    let mut jobs = views.each_mut();
    let rows_of = |view: ViewName| {
        rows_per_view
            .iter()
            .find(|(v, _)| *v == view)
            .map_or(0, |(_, rows)| *rows)
    };
    jobs.sort_by_key(|(view, _)| std::cmp::Reverse(rows_of(*view)));
    let queue = std::sync::Mutex::new(jobs.into_iter());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..LOAD_THREADS)
            .map(|_| {
                scope.spawn(|| -> Result<(), ProjectionError> {
                    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let db = Connection::open_with_flags(path, flags)?;
                    let mut statement = db.prepare(VIEW_ROWS_QUERY)?;
                    loop {
                        // A poisoned queue only means another loader panicked: stop too.
                        let next = match queue.lock() {
                            Ok(mut queue) => queue.next(),
                            Err(_) => None,
                        };
                        let Some((view, job)) = next else {
                            return Ok(());
                        };
                        load_view(&mut statement, view, job)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| match worker.join() {
                Ok(loaded) => loaded,
                Err(_) => Err(ProjectionError::LoaderPanicked),
            })
    })
}

/// One view's stored rows, bound to its name.
const VIEW_ROWS_QUERY: &str = "SELECT tbl, key, value FROM rows WHERE view = ?1 ORDER BY tbl, key";

/// Loads `view`'s stored rows into `job` and derives its indexes.
fn load_view(
    statement: &mut rusqlite::Statement<'_>,
    view: ViewName,
    mut job: crate::views::ViewMut<'_>,
) -> Result<(), ProjectionError> {
    let mut rows = statement.query([view.as_str()])?;
    while let Some(row) = rows.next()? {
        let table: String = row.get(0)?;
        let blob = |column| {
            row.get_ref(column)?
                .as_blob()
                .map_err(|e| ProjectionError::CorruptView {
                    view,
                    detail: e.to_string(),
                })
        };
        job.load_row(&table, blob(1)?, blob(2)?)?;
    }
    job.reindex();
    Ok(())
}

/// The digest of `view`'s JSON, hashed as it is written: two views' JSON at once would be
/// gigabytes on a large log. Buffered, as the hasher is slow fed a token at a time.
fn json_digest(views: &Views, view: ViewName) -> Result<blake3::Hash, ProjectionError> {
    let corrupt = |detail: String| ProjectionError::CorruptView { view, detail };
    let mut hasher = blake3::Hasher::new();
    let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut hasher);
    views
        .write_json(view, &mut buffered)
        .map_err(|e| corrupt(e.to_string()))?;
    std::io::Write::flush(&mut buffered).map_err(|e| corrupt(e.to_string()))?;
    drop(buffered);
    Ok(hasher.finalize())
}

fn open_database(path: &Path) -> Result<Connection, ProjectionError> {
    let db = Connection::open(path)?;
    // Takes effect only in a new, empty file; a rebuild writes a fresh file with it too.
    db.pragma_update(None, "page_size", READ_MODEL_PAGE_SIZE)?;
    // One writer and no concurrent reader (queries are served from memory): a rollback
    // journal writes new pages once, where WAL writes them twice (log, then checkpoint).
    db.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.pragma_update(None, "cache_size", READ_MODEL_CACHE_KIB.to_string())?;
    migrate(&db)?;
    Ok(db)
}

fn remove_if_present(path: &Path) -> Result<(), ProjectionError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path, e)),
        _ => Ok(()),
    }
}

fn io_error(path: &Path, error: std::io::Error) -> ProjectionError {
    ProjectionError::Store(StoreError::Io(format!("{}: {error}", path.display())))
}

fn migrate(db: &Connection) -> Result<(), ProjectionError> {
    let version: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > READ_MODEL_SCHEMA_VERSION {
        return Err(ProjectionError::NewerSchema(version));
    }
    if version < READ_MODEL_SCHEMA_VERSION {
        // Everything here is derived from the log: an older layout is dropped and rebuilt.
        // A rowid table, not `WITHOUT ROWID`: there, values of many KB sit in the key B-tree,
        // and every key comparison copies them (saves measured twice as slow).
        db.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             DROP TABLE IF EXISTS views;
             DROP TABLE IF EXISTS rows;
             DROP TABLE IF EXISTS progress;
             CREATE TABLE rows (
                id    INTEGER PRIMARY KEY,
                view  TEXT NOT NULL,
                tbl   TEXT NOT NULL,
                key   BLOB NOT NULL,
                value BLOB NOT NULL,
                UNIQUE (view, tbl, key)
             );
             CREATE TABLE progress (
                id         INTEGER PRIMARY KEY CHECK (id = 0),
                checkpoint INTEGER,
                event_id   BLOB
             );
             PRAGMA user_version = {READ_MODEL_SCHEMA_VERSION};
             COMMIT;"
        ))?;
        if version > 0 {
            // The dropped rows' pages stay in the file as free pages otherwise (2.8 GB for
            // ten million events); with the tables empty this is quick.
            db.execute_batch("VACUUM")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_gives_back_each_row_as_pushed() {
        let (sender, received) = std::sync::mpsc::sync_channel(4);
        let mut chunks = RowChunks {
            view: ViewName::Orders,
            chunk: RowChunk::with_room(),
            sender: &sender,
        };
        let big = vec![7u8; REBUILD_CHUNK_BYTES];
        type Row = (&'static str, Vec<u8>, Option<Vec<u8>>);
        let pushed: Vec<Row> = vec![
            ("orders", b"a".to_vec(), Some(vec![1, 2, 3])),
            ("orders", b"bb".to_vec(), None),
            ("lists", Vec::new(), Some(Vec::new())),
            ("lists", b"c".to_vec(), Some(big)),
            ("lists", b"d".to_vec(), Some(vec![4])),
        ];
        for (table, key, value) in &pushed {
            chunks.push(table, key, value.as_deref());
        }
        chunks.flush();
        drop(chunks);
        drop(sender);
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        for (view, chunk) in received {
            assert_eq!(view, ViewName::Orders);
            sizes.push(chunk.rows.len());
            got.extend(
                chunk
                    .rows()
                    .map(|(table, key, value)| (table, key.to_vec(), value.map(<[u8]>::to_vec))),
            );
        }
        assert_eq!(got, pushed);
        assert_eq!(sizes, [4, 1], "a chunk past its bytes goes on at once");
    }
}
