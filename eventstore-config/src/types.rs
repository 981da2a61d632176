//! The vocabulary of the store, in EventStoreDB's terms: streams with revisions from 0, one
//! global log (`$all`) with gapless positions from 0, events as opaque bytes with an id.

use chrono::{DateTime, Utc};
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// Longest stream name, in bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 256;
/// Longest event type name, in bytes.
pub const EVENT_TYPE_BYTES_MAX: usize = 128;
/// Largest `data` of one event, in bytes.
pub const EVENT_DATA_BYTES_MAX: usize = 64 * 1024;
/// Largest `metadata` of one event, in bytes.
pub const EVENT_METADATA_BYTES_MAX: usize = 16 * 1024;
/// Most events in one append.
pub const APPEND_EVENTS_MAX: usize = 1_000;
/// Most events one read returns; larger requests are clamped.
pub const READ_EVENTS_MAX: usize = 10_000;

/// A validated stream name: non-empty, bounded, no control characters, not a `$` system name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    #[error("a stream name cannot be empty")]
    EmptyStreamName,
    #[error("a stream name is at most {STREAM_NAME_BYTES_MAX} bytes (got {0})")]
    StreamNameTooLong(usize),
    #[error("stream names starting with `$` are reserved for the store")]
    ReservedStreamName,
    #[error("a stream name cannot contain control characters")]
    ControlCharacterInStreamName,
    #[error("an append needs at least one event")]
    EmptyAppend,
    #[error("an append is at most {APPEND_EVENTS_MAX} events (got {0})")]
    TooManyEvents(usize),
    #[error("an event type must be 1 to {EVENT_TYPE_BYTES_MAX} bytes (got {0})")]
    EventTypeLength(usize),
    /// Subscribers name events by type in line-based protocols (SSE's `event:` line).
    #[error("an event type cannot contain control characters")]
    ControlCharacterInEventType,
    #[error("event data is at most {EVENT_DATA_BYTES_MAX} bytes (got {0})")]
    DataTooLarge(usize),
    #[error("event metadata is at most {EVENT_METADATA_BYTES_MAX} bytes (got {0})")]
    MetadataTooLarge(usize),
    #[error("the same event id appears twice in one append")]
    DuplicateEventId,
    #[error("`{0}` is not an expected revision (any, no_stream, stream_exists or a number)")]
    UnknownExpectedRevision(String),
}

impl StreamName {
    pub fn new(name: impl AsRef<str>) -> Result<StreamName, InvalidInput> {
        let name = name.as_ref();
        if name.is_empty() {
            return Err(InvalidInput::EmptyStreamName);
        }
        if name.len() > STREAM_NAME_BYTES_MAX {
            return Err(InvalidInput::StreamNameTooLong(name.len()));
        }
        if name.starts_with('$') {
            return Err(InvalidInput::ReservedStreamName);
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidInput::ControlCharacterInStreamName);
        }
        Ok(StreamName(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// The optimistic-concurrency condition of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedRevision {
    Any,
    NoStream,
    StreamExists,
    /// The stream's last event has exactly this revision.
    Exact(u64),
}

impl std::str::FromStr for ExpectedRevision {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(ExpectedRevision::Any),
            "no_stream" => Ok(ExpectedRevision::NoStream),
            "stream_exists" => Ok(ExpectedRevision::StreamExists),
            n => n
                .parse()
                .map(ExpectedRevision::Exact)
                .map_err(|_| InvalidInput::UnknownExpectedRevision(n.chars().take(32).collect())),
        }
    }
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::StreamExists => f.write_str("stream exists"),
            ExpectedRevision::Exact(n) => write!(f, "revision {n}"),
        }
    }
}

/// One append of an `EventStore::append_in_order`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    pub stream: StreamName,
    pub expected: ExpectedRevision,
    pub events: Vec<EventData>,
}

/// An event to append. The id makes a retried append idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventData {
    pub event_id: Uuid,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    /// When the event was first recorded, for an import that keeps history as it was; `None`
    /// is "now". The embedded store keeps it; EventStoreDB assigns its own.
    pub recorded_at: Option<DateTime<Utc>>,
}

impl EventData {
    /// What every append checks of each event, for tools that check a batch before writing.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let type_len = self.event_type.len();
        if type_len == 0 || type_len > EVENT_TYPE_BYTES_MAX {
            return Err(InvalidInput::EventTypeLength(type_len));
        }
        if self.event_type.chars().any(char::is_control) {
            return Err(InvalidInput::ControlCharacterInEventType);
        }
        if self.data.len() > EVENT_DATA_BYTES_MAX {
            return Err(InvalidInput::DataTooLarge(self.data.len()));
        }
        if self.metadata.len() > EVENT_METADATA_BYTES_MAX {
            return Err(InvalidInput::MetadataTooLarge(self.metadata.len()));
        }
        Ok(())
    }
}

pub(crate) fn validate_append(events: &[EventData]) -> Result<(), InvalidInput> {
    if events.is_empty() {
        return Err(InvalidInput::EmptyAppend);
    }
    if events.len() > APPEND_EVENTS_MAX {
        return Err(InvalidInput::TooManyEvents(events.len()));
    }
    for (i, event) in events.iter().enumerate() {
        event.validate()?;
        if events[..i].iter().any(|e| e.event_id == event.event_id) {
            return Err(InvalidInput::DuplicateEventId);
        }
    }
    Ok(())
}

/// An event as the store recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    pub stream: StreamName,
    /// Position within its stream, from 0, gapless.
    pub revision: u64,
    /// Position in `$all`, from 0, gapless and strictly increasing in commit order.
    pub position: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// The event as it would be appended elsewhere to reproduce it: same id, type, bytes and
    /// recorded instant; with its stream and revision, which say where.
    pub fn into_event_data(self) -> (StreamName, u64, EventData) {
        let data = EventData {
            event_id: self.event_id,
            event_type: self.event_type,
            data: self.data,
            metadata: self.metadata,
            recorded_at: Some(self.recorded_at),
        };
        (self.stream, self.revision, data)
    }
}

/// What an append left behind: the stream's revision and the `$all` position of its last event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    pub next_expected_revision: u64,
    pub position: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// Where a read of one stream starts (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFrom {
    Start,
    End,
    Revision(u64),
}

/// Where a read of `$all` starts (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllFrom {
    Start,
    End,
    Position(u64),
}

/// Where a subscription starts: from the beginning, or after a checkpoint (exclusive), or
/// with only what is appended from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeFrom {
    Start,
    /// After this `$all` position (for `subscribe_all`) or stream revision (for `subscribe_stream`).
    After(u64),
    End,
}
