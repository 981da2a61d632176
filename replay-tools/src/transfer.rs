//! `ledger export` and `ledger import`: the log as JSON lines, one event a line, then a
//! trailer with the count and a SHA-256 of every line before it.
//!
//! Data and metadata travel byte for byte, so the export of an import equals the original:
//! as JSON where they are JSON on one line (every event the ledger writes), else as base64
//! (another application's bytes, or JSON spread over lines, which would break the file's).
//! An import checks the whole file before it writes anything, keeps event ids, streams,
//! order and recorded instants, and appends with the expected revisions the file gives, so
//! importing the same file again appends nothing (the store recognises the event ids).

use base64::Engine;
use chrono::{DateTime, Utc};
use ledger_store::{
    read_all_page, AllFrom, Append, AppendResult, Direction, EventData, EventStore,
    ExpectedRevision, InvalidInput, RecordedEvent, StoreError, StreamFrom, StreamName,
    APPEND_EVENTS_MAX, READ_EVENTS_MAX,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{BufRead, Write};
use std::pin::Pin;
use std::task::Poll;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    #[error("line {line}: {detail}")]
    BadLine { line: u64, detail: String },
    #[error("the file ends without its trailer line (count and sha256): it is cut short")]
    MissingTrailer,
    #[error("the checksum does not match: the trailer says {expected}, the lines give {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("the trailer counts {expected} events, the file holds {actual}")]
    CountMismatch { expected: u64, actual: u64 },
    #[error("the store already holds events; import into an empty store, or pass --append")]
    StoreNotEmpty,
    #[error("the target is not a copy of this log: its event at position {position} differs")]
    NotACopy { position: u64 },
    #[error("{stream} at revision {revision} holds another event than the export's: the store and the export's source have different histories")]
    Diverges { stream: String, revision: u64 },
    /// Asked by name, a stream the log lacks is a mistyped name, not an empty export.
    #[error("the log holds no stream `{stream}`{}", order_stream_hint(stream))]
    NoSuchStream { stream: String },
    #[error("reading or writing the file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An order id given where its stream's name was meant.
fn order_stream_hint(stream: &str) -> &'static str {
    if uuid::Uuid::parse_str(stream).is_ok() {
        " (an order's stream is named `order-<id>`)"
    } else {
        ""
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    stream: String,
    revision: u64,
    position: u64,
    event_id: Uuid,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: Option<u32>,
    data: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_encoding: Option<Encoding>,
    metadata: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata_encoding: Option<Encoding>,
    recorded_at: DateTime<Utc>,
}

/// How bytes that cannot go into a line as JSON are written instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Encoding {
    Base64,
}

/// Why a line does not give an event.
#[derive(Debug, thiserror::Error)]
enum LineError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{field} is not base64: {detail}")]
    NotBase64 { field: &'static str, detail: String },
}

/// The bytes as JSON, when a format made of lines (an export, Server-Sent Events) can carry
/// them as they are: JSON with no line break in it and nothing around it (`RawValue` would
/// drop the whitespace). Anything else travels as base64, so that what arrives is exactly
/// what was appended, and text is never mistaken for a JSON string.
pub fn json_on_one_line(bytes: &[u8]) -> Option<&RawValue> {
    if bytes.iter().any(|&byte| byte == b'\n' || byte == b'\r') {
        return None;
    }
    serde_json::from_slice::<&RawValue>(bytes)
        .ok()
        .filter(|json| json.get().len() == bytes.len())
}

/// Data or metadata as a line holds it: the JSON itself when the bytes are JSON on one line,
/// else their base64 as a string.
fn payload_of(bytes: &[u8]) -> Result<(Box<RawValue>, Option<Encoding>), serde_json::Error> {
    if let Some(json) = json_on_one_line(bytes) {
        return Ok((json.to_owned(), None));
    }
    let base64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok((
        serde_json::value::to_raw_value(&base64)?,
        Some(Encoding::Base64),
    ))
}

/// The bytes a line's data or metadata stand for.
fn bytes_of(
    field: &'static str,
    raw: &RawValue,
    encoding: Option<Encoding>,
) -> Result<Vec<u8>, LineError> {
    match encoding {
        None => Ok(raw.get().as_bytes().to_vec()),
        Some(Encoding::Base64) => {
            let not_base64 = |detail: String| LineError::NotBase64 { field, detail };
            let text: String =
                serde_json::from_str(raw.get()).map_err(|e| not_base64(e.to_string()))?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| not_base64(e.to_string()))
        }
    }
}

impl Line {
    /// The event to append, and where.
    fn into_event(self) -> Result<(StreamName, u64, EventData), LineError> {
        let stream = StreamName::new(&self.stream)?;
        let event = EventData {
            event_id: self.event_id,
            event_type: self.event_type,
            data: bytes_of("data", &self.data, self.data_encoding)?,
            metadata: bytes_of("metadata", &self.metadata, self.metadata_encoding)?,
            recorded_at: Some(self.recorded_at),
        };
        Ok((stream, self.revision, event))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    count: u64,
    sha256: String,
}

/// Which events to export: a range of `$all` positions (inclusive), optionally one stream.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub stream: Option<StreamName>,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exported {
    pub events: u64,
    /// The `$all` position of the last event written: the next increment starts after it.
    pub last_position: Option<u64>,
}

pub async fn export(
    store: &dyn EventStore,
    selection: &Selection,
    out: &mut impl Write,
) -> Result<Exported, TransferError> {
    let mut hasher = Sha256::new();
    let mut exported = Exported {
        events: 0,
        last_position: None,
    };
    // A page cursor: a position in `$all`, or a revision in the selected stream.
    let mut next = match selection.stream {
        None => selection.from.unwrap_or(0),
        Some(_) => 0,
    };
    loop {
        let page = match &selection.stream {
            None => read_all_page(store, next).await?,
            Some(stream) => match store
                .read_stream(
                    stream,
                    StreamFrom::Revision(next),
                    Direction::Forwards,
                    READ_EVENTS_MAX,
                )
                .await
            {
                Err(StoreError::StreamNotFound(_)) if next == 0 => {
                    return Err(TransferError::NoSuchStream {
                        stream: stream.to_string(),
                    })
                }
                Err(StoreError::StreamNotFound(_)) => Vec::new(),
                other => other?,
            },
        };
        let Some(last) = page.last() else { break };
        next = match &selection.stream {
            None => last.position + 1,
            Some(_) => last.revision + 1,
        };
        for recorded in &page {
            if selection.from.is_some_and(|from| recorded.position < from) {
                continue;
            }
            if selection.to.is_some_and(|to| recorded.position > to) {
                return finish(out, hasher, exported);
            }
            let line = line_of(recorded).map_err(std::io::Error::from)?;
            let mut line = serde_json::to_vec(&line).map_err(std::io::Error::from)?;
            line.push(b'\n');
            hasher.update(&line);
            out.write_all(&line)?;
            exported.events += 1;
            exported.last_position = Some(recorded.position);
        }
    }
    finish(out, hasher, exported)
}

fn finish(
    out: &mut impl Write,
    hasher: Sha256,
    exported: Exported,
) -> Result<Exported, TransferError> {
    let trailer = Trailer {
        count: exported.events,
        sha256: hex(&hasher.finalize()),
    };
    serde_json::to_writer(&mut *out, &trailer).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(exported)
}

fn line_of(recorded: &RecordedEvent) -> Result<Line, serde_json::Error> {
    #[derive(Deserialize)]
    struct Version {
        schema_version: Option<u32>,
    }
    let schema_version = serde_json::from_slice::<Version>(&recorded.metadata)
        .ok()
        .and_then(|v| v.schema_version);
    let (data, data_encoding) = payload_of(&recorded.data)?;
    let (metadata, metadata_encoding) = payload_of(&recorded.metadata)?;
    Ok(Line {
        stream: recorded.stream.to_string(),
        revision: recorded.revision,
        position: recorded.position,
        event_id: recorded.event_id,
        event_type: recorded.event_type.clone(),
        schema_version,
        data,
        data_encoding,
        metadata,
        metadata_encoding,
        recorded_at: recorded.recorded_at,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a whole export: every line readable, the count and the checksum right. Whether
/// this binary reads each event is checked on a thread of its own, beside the reading and
/// hashing, which must go in order: it doubled the check's CPU.
pub fn check(input: impl BufRead) -> Result<u64, TransferError> {
    std::thread::scope(|scope| {
        let (batches, to_decode) = std::sync::mpsc::sync_channel::<Vec<(u64, RecordedEvent)>>(4);
        let decoder = scope.spawn(move || {
            for (line, recorded) in to_decode.into_iter().flatten() {
                readable(&recorded).map_err(|e| TransferError::BadLine {
                    line,
                    detail: e.to_string(),
                })?;
            }
            Ok(())
        });
        let mut unsent = Vec::new();
        let lines = read_checked(input, &batches, &mut unsent);
        // Every line before one the reader refused is decoded too, so that the decoder's
        // refusal, if any, is the earlier one.
        let _ = batches.send(unsent);
        drop(batches);
        let decoded = decoder.join().unwrap_or_else(|_| {
            Err(TransferError::Io(std::io::Error::other(
                "the thread reading the events stopped unexpectedly",
            )))
        });
        decoded.and(lines)
    })
}

/// Events handed to the decoder at a time.
const CHECK_BATCH_EVENTS: usize = 1_024;

/// Reads every line in order: parsed, in log order, hashed and counted; each event is also
/// handed to `decoder`, a batch at a time, the last one left in `batch`. Stops quietly where
/// the decoder has stopped: its refusal comes first.
fn read_checked(
    input: impl BufRead,
    decoder: &std::sync::mpsc::SyncSender<Vec<(u64, RecordedEvent)>>,
    batch: &mut Vec<(u64, RecordedEvent)>,
) -> Result<u64, TransferError> {
    let mut hasher = Sha256::new();
    let mut lines = 0;
    let mut trailer: Option<Trailer> = None;
    let mut order = LogOrder::default();
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let number = index as u64 + 1;
        if trailer.is_some() {
            return Err(TransferError::BadLine {
                line: number,
                detail: "a line after the trailer".into(),
            });
        }
        if let Ok(found) = serde_json::from_slice::<Trailer>(&line) {
            trailer = Some(found);
            continue;
        }
        let bad_line = |detail: String| TransferError::BadLine {
            line: number,
            detail,
        };
        let parsed: Line =
            serde_json::from_slice(&line).map_err(|e| match (number, not_an_export(&line)) {
                (1, Some(kind)) => bad_line(kind.to_owned()),
                _ => bad_line(e.to_string()),
            })?;
        let position = parsed.position;
        // What the store would refuse, refused before anything is written.
        let (stream, revision, event) = parsed.into_event().map_err(|e| bad_line(e.to_string()))?;
        event.validate().map_err(|e| bad_line(e.to_string()))?;
        order
            .follow(&stream, revision, position)
            .map_err(bad_line)?;
        batch.push((number, recorded(stream, revision, position, event)));
        if batch.len() == CHECK_BATCH_EVENTS && decoder.send(std::mem::take(batch)).is_err() {
            return Ok(lines);
        }
        hasher.update(&line);
        hasher.update(b"\n");
        lines += 1;
    }
    let trailer = trailer.ok_or(TransferError::MissingTrailer)?;
    let actual = hex(&hasher.finalize());
    if trailer.sha256 != actual {
        return Err(TransferError::ChecksumMismatch {
            expected: trailer.sha256,
            actual,
        });
    }
    if trailer.count != lines {
        return Err(TransferError::CountMismatch {
            expected: trailer.count,
            actual: lines,
        });
    }
    Ok(lines)
}

/// What a file that starts with `first_line` is, if it is a kind often handed over for an
/// export by mistake: a compressed export, or the store's own database.
fn not_an_export(first_line: &[u8]) -> Option<&'static str> {
    const KINDS: [(&[u8], &str); 4] = [
        (b"\x1f\x8b", "this is a gzip file: decompress it first (`gunzip -c FILE | ledger import -`)"),
        (b"\x28\xb5\x2f\xfd", "this is a zstd file: decompress it first (`zstd -dc FILE | ledger import -`)"),
        (b"\xfd7zXZ\x00", "this is an xz file: decompress it first (`xz -dc FILE | ledger import -`)"),
        (b"SQLite format 3\x00", "this is a SQLite database, not an export: `ledger export --data-dir DIR` writes one from it"),
    ];
    KINDS
        .iter()
        .find(|(magic, _)| first_line.starts_with(magic))
        .map(|(_, kind)| *kind)
}

/// An event as the store would record it at `position`: what the ledger's readers are given.
pub fn recorded(
    stream: StreamName,
    revision: u64,
    position: u64,
    event: EventData,
) -> RecordedEvent {
    RecordedEvent {
        stream,
        revision,
        position,
        event_id: event.event_id,
        event_type: event.event_type,
        data: event.data,
        metadata: event.metadata,
        recorded_at: event.recorded_at.unwrap_or_default(),
    }
}

/// Why this binary cannot read an event.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// As the views read it: its stream, type, schema version and data.
    #[error(transparent)]
    Views(#[from] ledger_projections::FactError),
    /// As the pipeline reads it: its whole metadata.
    #[error(transparent)]
    Pipeline(#[from] ledger_commands::DecodeError),
}

/// Whether this binary reads the event as the views and the pipeline will. The log keeps what
/// it is given for good: an event no one can read would stop the views at its position, and
/// its order could take no command, however often the service restarts.
/// Another application's streams are passed by: the views never read them.
pub fn readable(recorded: &RecordedEvent) -> Result<(), Unreadable> {
    if !ledger_domain::is_order_stream(recorded.stream.as_str()) {
        return Ok(());
    }
    ledger_projections::Fact::decode(recorded)?;
    ledger_commands::codec::decode_metadata(recorded)?;
    Ok(())
}

/// The order a log's lines must keep: positions rise, and each stream's revisions follow one
/// another from its first line on. A line repeated or moved would otherwise be appended as
/// another history, or fail half-way through an import.
#[derive(Default)]
struct LogOrder {
    last_position: Option<u64>,
    last_revisions: HashMap<StreamName, u64>,
}

impl LogOrder {
    fn follow(&mut self, stream: &StreamName, revision: u64, position: u64) -> Result<(), String> {
        if let Some(last) = self.last_position.filter(|&last| position <= last) {
            return Err(format!(
                "position {position} comes after position {last}: the lines are out of log order"
            ));
        }
        self.last_position = Some(position);
        match self.last_revisions.get_mut(stream) {
            None => {
                self.last_revisions.insert(stream.clone(), revision);
                Ok(())
            }
            Some(last) if last.checked_add(1) == Some(revision) => {
                *last = revision;
                Ok(())
            }
            Some(last) => Err(format!(
                "`{stream}` at revision {revision} after revision {last}: a stream's events \
                 follow one another"
            )),
        }
    }
}

/// Imports a checked export. Into a store that holds events, `fit` (what `fits` found of
/// this store and this file) names the events it holds already, which are passed over.
pub async fn import(
    store: &dyn EventStore,
    input: impl BufRead,
    fit: Option<Fit>,
) -> Result<u64, TransferError> {
    let is_empty = store.last_position().await?.is_none();
    let mut appender = Appender::new(store);
    appender.presence = match fit {
        Some(fit) => Presence::Surveyed(fit.present.into()),
        None if is_empty => Presence::Nothing,
        None => return Err(TransferError::StoreNotEmpty),
    };
    feed(&mut appender, input).await?;
    appender.finish().await
}

/// What `fits` found: how many events of each run of a stream's events the store holds
/// already, in the file's order, so that the import after it need not read them again.
#[derive(Debug)]
pub struct Fit {
    present: Vec<usize>,
}

/// Reads only: that no event of a checked export meets another event at its stream and
/// revision in the store, so that an import into a store with another history is refused
/// before it writes anything. A read per run of a stream's events that the store may hold,
/// one per stream past the store's end.
pub async fn fits(store: &dyn EventStore, input: impl BufRead) -> Result<Fit, TransferError> {
    let mut appender = Appender::new(store);
    appender.presence = Presence::Survey(Vec::new());
    feed(&mut appender, input).await?;
    appender.flush().await?;
    match appender.presence {
        Presence::Survey(present) => Ok(Fit { present }),
        // Not reached; an empty fit would only make the import read for itself.
        _ => Ok(Fit {
            present: Vec::new(),
        }),
    }
}

async fn feed(appender: &mut Appender<'_>, input: impl BufRead) -> Result<(), TransferError> {
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line?;
        if serde_json::from_slice::<Trailer>(&line).is_ok() {
            break;
        }
        let line: Line = serde_json::from_slice(&line).map_err(|e| TransferError::BadLine {
            line: index as u64 + 1,
            detail: e.to_string(),
        })?;
        let (stream, revision, event) = line.into_event().map_err(|e| TransferError::BadLine {
            line: index as u64 + 1,
            detail: e.to_string(),
        })?;
        appender.push(stream, revision, event).await?;
    }
    Ok(())
}

/// What `copy` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copied {
    /// The first source position copied this time.
    pub from: u64,
    pub events: u64,
}

/// Copies the log of `source` into `target`, from `from` (a source position, inclusive) or
/// else after the target's last event. The target must be a copy of the source so far: its
/// last event must be in the source, at the same stream and revision. Positions are compared
/// only within one store, so the two may number `$all` differently (EventStoreDB and the
/// embedded store do).
pub async fn copy(
    source: &dyn EventStore,
    target: &dyn EventStore,
    from: Option<u64>,
) -> Result<Copied, TransferError> {
    let target_end = target
        .read_all(AllFrom::End, Direction::Backwards, 1)
        .await?;
    // The source position to read from, and whether the event there was copied already.
    let (start, copied_already) = match (from, target_end.first()) {
        (Some(from), _) => (from, false),
        (None, None) => (0, false),
        (None, Some(last)) => {
            let in_source = match source
                .read_stream(
                    &last.stream,
                    StreamFrom::Revision(last.revision),
                    Direction::Forwards,
                    1,
                )
                .await
            {
                Err(StoreError::StreamNotFound(_)) => None,
                other => other?.into_iter().next(),
            };
            match in_source {
                Some(event) if event.event_id == last.event_id => (event.position, true),
                _ => {
                    return Err(TransferError::NotACopy {
                        position: last.position,
                    })
                }
            }
        }
    };
    let mut appender = Appender::new(target);
    // From a position given, the target may hold some of the events already: they are
    // compared and passed over, not appended again (which the store would ignore, but the
    // count would not).
    if from.is_some() {
        appender.presence = Presence::Read;
    }
    // Reads are inclusive and positions may have gaps: each page starts at the last event
    // read, which is then skipped.
    let mut cursor = start;
    let mut skip_through: Option<u64> = copied_already.then_some(start);
    let mut first_copied = None;
    loop {
        let page = read_all_page(source, cursor).await?;
        let fresh: Vec<RecordedEvent> = page
            .into_iter()
            .filter(|e| skip_through.is_none_or(|s| e.position > s))
            .collect();
        let Some(last) = fresh.last() else { break };
        cursor = last.position;
        skip_through = Some(last.position);
        for recorded in fresh {
            first_copied.get_or_insert(recorded.position);
            let (stream, revision, event) = recorded.into_event_data();
            appender.push(stream, revision, event).await?;
        }
    }
    let events = appender.finish().await?;
    // With nothing new, `from` is where the next copy will start looking.
    let resume_at = if copied_already { start + 1 } else { start };
    Ok(Copied {
        from: first_copied.unwrap_or(resume_at),
        events,
    })
}

/// Appends an import or a copy hands to the store at once (`EventStore::append_in_order`).
const APPENDS_SENT_TOGETHER: usize = 2_048;

/// Events of a stream read past the run that asked, for the stream's later runs.
const READ_AHEAD_EVENTS: usize = 64;
/// Ids read ahead and kept, at most; past this each run reads for itself.
const HELD_IDS_MAX: usize = 1_000_000;

/// What the store holds of a stream from a revision on, as read ahead of the runs to come.
struct Held {
    /// The revision of the first of `ids`.
    from: u64,
    ids: VecDeque<Uuid>,
    /// Whether `ids` reach the stream's end: the store holds nothing after them but what this
    /// appender gave it, all below the runs still to come.
    to_end: bool,
}

/// An error if the store holds other events than `events` where `stored` (their ids, from
/// `first_revision` on) are.
fn diverges(
    stream: &StreamName,
    first_revision: u64,
    stored: &[Uuid],
    events: &[EventData],
) -> Result<(), TransferError> {
    match stored
        .iter()
        .zip(events)
        .position(|(stored, event)| *stored != event.event_id)
    {
        Some(offset) => Err(TransferError::Diverges {
            stream: stream.to_string(),
            revision: first_revision + offset as u64,
        }),
        None => Ok(()),
    }
}

/// An `append_in_order` under way.
type Sending<'a> = Pin<Box<dyn Future<Output = Result<Vec<AppendResult>, StoreError>> + Send + 'a>>;

/// What the target may hold already of the events an `Appender` is given.
enum Presence {
    /// Nothing: the store was empty.
    Nothing,
    /// Some: each run is compared with what its stream holds at those revisions, and only
    /// the rest is appended.
    Read,
    /// Compare only, noting each run's count; append nothing (`fits`).
    Survey(Vec<usize>),
    /// Each run's count as a survey of the same file noted it.
    Surveyed(VecDeque<usize>),
}

/// Appends events in the order given, consecutive events of one stream in one append, each
/// at the revision it had: the target's positions follow the source's order, and a repeat
/// finds its event ids in place and appends nothing.
struct Appender<'a> {
    store: &'a dyn EventStore,
    stream: Option<StreamName>,
    first_revision: u64,
    batch: Vec<EventData>,
    /// Runs ready to append, sent together so that they share durable commits: consecutive
    /// events of a log seldom share a stream, and one commit an append ran at ~6,000 events/s.
    queued: Vec<Append>,
    /// The queued runs last handed over, being committed while the next ones are read.
    in_flight: Option<Sending<'a>>,
    appended: u64,
    presence: Presence,
    /// Per stream, what the store holds after the runs compared so far, so that a stream's
    /// later runs need no read of their own.
    held: HashMap<StreamName, Held>,
    /// Ids in `held`, in all.
    held_ids: usize,
}

impl<'a> Appender<'a> {
    fn new(store: &'a dyn EventStore) -> Self {
        Appender {
            store,
            stream: None,
            first_revision: 0,
            batch: Vec::new(),
            queued: Vec::new(),
            in_flight: None,
            appended: 0,
            presence: Presence::Nothing,
            held: HashMap::new(),
            held_ids: 0,
        }
    }

    async fn push(
        &mut self,
        stream: StreamName,
        revision: u64,
        event: EventData,
    ) -> Result<(), TransferError> {
        let continues = self.stream.as_ref() == Some(&stream)
            && self.first_revision + self.batch.len() as u64 == revision
            && self.batch.len() < APPEND_EVENTS_MAX;
        if !continues {
            self.flush().await?;
            self.stream = Some(stream);
            self.first_revision = revision;
        }
        self.batch.push(event);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransferError> {
        let Some(stream) = self.stream.take() else {
            return Ok(());
        };
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut events = std::mem::take(&mut self.batch);
        let mut first_revision = self.first_revision;
        let noted = match &mut self.presence {
            Presence::Surveyed(noted) => noted.pop_front(),
            _ => None,
        };
        let present = match (&self.presence, noted) {
            (Presence::Nothing, _) => 0,
            (_, Some(noted)) => noted,
            _ => self.present(&stream, first_revision, &events).await?,
        };
        if let Presence::Survey(noted) = &mut self.presence {
            noted.push(present);
            return Ok(());
        }
        events.drain(..present.min(events.len()));
        first_revision += present as u64;
        if events.is_empty() {
            return Ok(());
        }
        let expected = match first_revision {
            0 => ExpectedRevision::NoStream,
            n => ExpectedRevision::Exact(n - 1),
        };
        self.appended += events.len() as u64;
        self.queued.push(Append {
            stream,
            expected,
            events,
        });
        if self.queued.len() >= APPENDS_SENT_TOGETHER {
            self.send().await?;
        }
        Ok(())
    }

    /// Hands the queued runs over once those before them are durable, so that a refusal
    /// still stops everything after it; polled once, so that the store takes them now.
    async fn send(&mut self) -> Result<(), TransferError> {
        if let Some(in_flight) = self.in_flight.take() {
            in_flight.await?;
        }
        let queued = std::mem::take(&mut self.queued);
        if queued.is_empty() {
            return Ok(());
        }
        let mut sending = self.store.append_in_order(queued);
        match futures::poll!(&mut sending) {
            Poll::Ready(done) => {
                done?;
            }
            Poll::Pending => self.in_flight = Some(sending),
        }
        Ok(())
    }

    /// How many of `events`, the first at `first_revision`, the stream holds already; an
    /// error if it holds other events there.
    async fn present(
        &mut self,
        stream: &StreamName,
        first_revision: u64,
        events: &[EventData],
    ) -> Result<usize, TransferError> {
        if let Some(mut held) = self.held.remove(stream) {
            self.held_ids -= held.ids.len();
            let end = held.from + held.ids.len() as u64;
            if held.to_end && end <= first_revision {
                // The stream ends before this run.
                held.ids.clear();
                held.from = first_revision;
                self.hold(stream, held);
                return Ok(0);
            }
            if held.from == first_revision && (held.to_end || held.ids.len() >= events.len()) {
                let present = held.ids.len().min(events.len());
                let ids: Vec<Uuid> = held.ids.drain(..present).collect();
                diverges(stream, first_revision, &ids, events)?;
                held.from = first_revision + present as u64;
                self.hold(stream, held);
                return Ok(present);
            }
        }
        let wanted = if self.held_ids < HELD_IDS_MAX {
            events.len().max(READ_AHEAD_EVENTS)
        } else {
            events.len()
        };
        let from = StreamFrom::Revision(first_revision);
        let stored = match self
            .store
            .read_stream(stream, from, Direction::Forwards, wanted)
            .await
        {
            Ok(stored) => stored,
            Err(StoreError::StreamNotFound(_)) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let mut ids: VecDeque<Uuid> = stored.iter().map(|e| e.event_id).collect();
        let present = ids.len().min(events.len());
        let head: Vec<Uuid> = ids.drain(..present).collect();
        diverges(stream, first_revision, &head, events)?;
        let held = Held {
            from: first_revision + present as u64,
            to_end: stored.len() < wanted,
            ids,
        };
        self.hold(stream, held);
        Ok(present)
    }

    /// Keeps what is known of `stream` while it says something of the runs to come.
    fn hold(&mut self, stream: &StreamName, held: Held) {
        if held.to_end || !held.ids.is_empty() {
            self.held_ids += held.ids.len();
            self.held.insert(stream.clone(), held);
        }
    }

    async fn finish(mut self) -> Result<u64, TransferError> {
        self.flush().await?;
        self.send().await?;
        if let Some(in_flight) = self.in_flight.take() {
            in_flight.await?;
        }
        Ok(self.appended)
    }
}

#[cfg(test)]
mod tests {
    use super::{bytes_of, payload_of, Encoding};
    use proptest::prelude::*;

    /// What a line carries must give back the very bytes, and stay on its one line.
    fn round_trip(bytes: &[u8]) -> Option<Encoding> {
        let (raw, encoding) = payload_of(bytes).expect("payload");
        assert!(!raw.get().contains(['\n', '\r']), "{raw}");
        assert_eq!(bytes_of("data", &raw, encoding).expect("bytes"), bytes);
        encoding
    }

    #[test]
    fn json_on_one_line_goes_as_itself_and_other_bytes_as_base64() {
        assert_eq!(round_trip(br#"{"a":[1,"x"]}"#), None);
        assert_eq!(round_trip(br#"{ "a" :	1 }"#), None);
        assert_eq!(round_trip(br#""a JSON string""#), None);
        assert_eq!(round_trip(b"{\n  \"a\": 1\n}"), Some(Encoding::Base64));
        assert_eq!(round_trip(b"{\r\"a\":1}"), Some(Encoding::Base64));
        assert_eq!(round_trip(b" {} "), Some(Encoding::Base64));
        assert_eq!(round_trip(b"plain text"), Some(Encoding::Base64));
        assert_eq!(round_trip(&[0xff, 0x00]), Some(Encoding::Base64));
        assert_eq!(round_trip(b""), Some(Encoding::Base64));
    }

    proptest! {
        #[test]
        fn any_bytes_come_back_as_they_went(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            round_trip(&bytes);
        }

        #[test]
        fn any_text_comes_back_as_it_went(text in "\\PC*") {
            round_trip(text.as_bytes());
        }
    }
}
