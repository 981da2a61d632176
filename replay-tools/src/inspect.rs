//! `ledger inspect`: what a data directory holds, read without folding anything: the log's
//! span in positions and time, its events by type and its streams by category, its files'
//! sizes, and where the stored views stand against it.

use chrono::{DateTime, Utc};
use ledger_projections::{ProjectionError, Projector, StoredViews, READ_MODEL_FILE_NAME};
use ledger_store::{AllPages, EventStore, RecordedEvent, StoreError, LOG_FILE_NAME};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("reading the log")]
    Log(#[from] StoreError),
    #[error("reading the stored views")]
    Views(#[from] ProjectionError),
    #[error("{}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub log: LogSummary,
    pub views: ViewsSeen,
    /// Events the stored views have yet to fold; none unless they are folded from this log.
    pub views_behind: Option<u64>,
    /// The data directory's files that exist, with their sizes.
    pub files: Vec<DataFile>,
}

/// The stored views as found: a damaged file is part of what a data directory holds, not a
/// reason to say nothing of its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ViewsSeen {
    Read(StoredViews),
    Unreadable(UnreadableViews),
}

/// A views file that cannot be read (damaged, or not a database): `ledger rebuild` replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename = "unreadable")]
pub struct UnreadableViews {
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogSummary {
    pub events: u64,
    pub first: Option<Mark>,
    pub last: Option<Mark>,
    /// Streams, each counted at its first event (revisions start at 0).
    pub streams: u64,
    /// A stream's category is its name up to the first `-`, as in `$ce-<category>`.
    pub streams_by_category: BTreeMap<String, u64>,
    pub events_by_type: BTreeMap<String, u64>,
    pub data_bytes: u64,
    pub metadata_bytes: u64,
}

/// An event's place in `$all` and in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    pub position: u64,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataFile {
    pub name: String,
    pub bytes: u64,
}

/// What follows a SQLite file's name in the names of the files it is kept in (the database,
/// then its write-ahead log), for the log's and the views' alike.
pub const DATA_FILE_SUFFIXES: [&str; 2] = ["", "-wal"];

pub async fn inspect(data_dir: &Path, store: &dyn EventStore) -> Result<Inspection, InspectError> {
    // The views first: a service folding meanwhile then leaves them behind the log read
    // after, never ahead of it.
    let views = match Projector::stored_standing(data_dir, store).await {
        Ok(views) => ViewsSeen::Read(views),
        Err(ProjectionError::Database(error)) => ViewsSeen::Unreadable(UnreadableViews {
            detail: error.to_string(),
        }),
        Err(other) => return Err(other.into()),
    };
    let log = summarize(store).await?;
    let views_behind = match (&views, log.last) {
        (ViewsSeen::Read(StoredViews::FoldedUpTo { checkpoint }), Some(last)) => {
            Some(last.position.saturating_sub(*checkpoint))
        }
        _ => None,
    };
    let mut files = Vec::new();
    for base in [LOG_FILE_NAME, READ_MODEL_FILE_NAME] {
        for suffix in DATA_FILE_SUFFIXES {
            let name = format!("{base}{suffix}");
            let path = data_dir.join(&name);
            match std::fs::metadata(&path) {
                Ok(metadata) => files.push(DataFile {
                    name,
                    bytes: metadata.len(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(InspectError::File { path, source }),
            }
        }
    }
    Ok(Inspection {
        log,
        views,
        views_behind,
        files,
    })
}

/// Counts the whole log page by page; events are looked at, never decoded.
pub async fn summarize(store: &dyn EventStore) -> Result<LogSummary, StoreError> {
    let mut summary = LogSummary::default();
    let mut pages = AllPages::from(store, 0);
    while let Some(page) = pages.next().await? {
        for event in &page {
            summary.count(event);
        }
    }
    Ok(summary)
}

impl LogSummary {
    fn count(&mut self, event: &RecordedEvent) {
        let mark = Mark {
            position: event.position,
            recorded_at: event.recorded_at,
        };
        self.first.get_or_insert(mark);
        self.last = Some(mark);
        self.events += 1;
        self.data_bytes += event.data.len() as u64;
        self.metadata_bytes += event.metadata.len() as u64;
        add_one(&mut self.events_by_type, &event.event_type);
        if event.revision == 0 {
            self.streams += 1;
            let name = event.stream.as_str();
            let category = name.split_once('-').map_or(name, |(category, _)| category);
            add_one(&mut self.streams_by_category, category);
        }
    }
}

/// Counts without allocating a key for each event: there are few distinct ones.
fn add_one(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}
