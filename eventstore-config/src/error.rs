use crate::types::{ExpectedRevision, InvalidInput, StreamName};

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("wrong expected revision on {stream}: expected {expected}, the stream is at {}", actual.map_or("no stream".to_owned(), |r| format!("revision {r}")))]
    WrongExpectedRevision {
        stream: StreamName,
        expected: ExpectedRevision,
        actual: Option<u64>,
    },
    #[error("stream {0} not found")]
    StreamNotFound(StreamName),
    #[error("some but not all of these event ids were already appended to {0}")]
    PartialIdempotentAppend(StreamName),
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    #[error("store I/O failed: {0}")]
    Io(String),
    /// The disk holding the store has no room: nothing of the append was written, and the
    /// same append succeeds once there is room again.
    #[error("the disk holding the store is full: {0}")]
    Full(String),
    #[error("the store holds corrupt data: {0}")]
    Corrupt(String),
    #[error("the store is shut down")]
    Closed,
    /// Of an `append_in_order`: not made, because an append before it failed.
    #[error("not appended: an append before it in the same ordered batch failed")]
    EarlierAppendFailed,
    #[error("the log in {} is written by another process (is `ledger serve` running on it?); this one may only read it", .0.display())]
    WrittenElsewhere(std::path::PathBuf),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full(error.to_string()),
            _ => StoreError::Io(error.to_string()),
        }
    }
}
