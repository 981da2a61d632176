//! Between the protocol's messages and the store's types, and from the store's errors to the
//! statuses EventStoreDB answers with.
//!
//! Positions: the embedded store's `$all` position `p` is the commit and the prepare position
//! `p`, so a client's checkpoint is a store position and back without a table.

use super::proto::event_store::client::{self as shared, streams};
use crate::types::*;
use crate::StoreError;
use prost::bytes::Bytes;
use std::collections::HashMap;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use uuid::Uuid;

/// How the client wants event ids written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UuidFormat {
    Structured,
    String,
}

pub(super) fn uuid_from_proto(id: Option<shared::Uuid>) -> Result<Uuid, Status> {
    use shared::uuid::Value;
    match id.and_then(|id| id.value) {
        Some(Value::Structured(s)) => {
            let high = u128::from(s.most_significant_bits as u64);
            let low = u128::from(s.least_significant_bits as u64);
            Ok(Uuid::from_u128(high << 64 | low))
        }
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| invalid_argument(format!("`{}` is not a UUID", truncated(&s)))),
        None => Err(invalid_argument("every proposed event needs an id")),
    }
}

pub(super) fn uuid_to_proto(id: Uuid, format: UuidFormat) -> shared::Uuid {
    use shared::uuid::{Structured, Value};
    let value = match format {
        UuidFormat::String => Value::String(id.to_string()),
        UuidFormat::Structured => {
            let bits = id.as_u128();
            Value::Structured(Structured {
                most_significant_bits: (bits >> 64) as u64 as i64,
                least_significant_bits: bits as u64 as i64,
            })
        }
    };
    shared::Uuid { value: Some(value) }
}

pub(super) fn stream_identifier(stream: &StreamName) -> shared::StreamIdentifier {
    shared::StreamIdentifier {
        stream_name: Bytes::copy_from_slice(stream.as_str().as_bytes()),
    }
}

/// The stream a request names: present, UTF-8 and a valid name.
pub(super) fn stream_name(
    identifier: Option<&shared::StreamIdentifier>,
) -> Result<StreamName, Status> {
    let identifier =
        identifier.ok_or_else(|| invalid_argument("a stream identifier is required"))?;
    let name = std::str::from_utf8(&identifier.stream_name)
        .map_err(|_| invalid_argument("a stream name must be UTF-8"))?;
    StreamName::new(name).map_err(|e| invalid_argument(e.to_string()))
}

/// An event as the protocol proposes it: an id, `type` and `content-type` in its metadata.
pub(super) fn proposed_event(
    id: Option<shared::Uuid>,
    metadata: &HashMap<String, String>,
    custom_metadata: Bytes,
    data: Bytes,
) -> Result<EventData, Status> {
    let event_id = uuid_from_proto(id)?;
    let (Some(event_type), Some(_)) = (metadata.get("type"), metadata.get("content-type")) else {
        let mut status = invalid_argument("an event needs `type` and `content-type` metadata");
        insert(
            &mut status,
            "exception",
            "missing-required-metadata-property",
        );
        insert(&mut status, "required-properties", "type,content-type");
        return Err(status);
    };
    Ok(EventData {
        event_id,
        event_type: event_type.clone(),
        data: data.to_vec(),
        metadata: custom_metadata.to_vec(),
        recorded_at: None,
    })
}

/// JSON data is labelled so, as EventStoreDB's own tools expect; anything else is bytes.
pub(super) fn content_type(data: &[u8]) -> &'static str {
    match serde_json::from_slice::<serde::de::IgnoredAny>(data) {
        Ok(_) => "application/json",
        Err(_) => "application/octet-stream",
    }
}

/// 100-nanosecond ticks since the Unix epoch, as EventStoreDB writes `created`.
fn ticks(event: &RecordedEvent) -> i64 {
    let at = event.recorded_at;
    at.timestamp() * 10_000_000 + i64::from(at.timestamp_subsec_nanos() / 100)
}

pub(super) fn read_event(
    event: &RecordedEvent,
    format: UuidFormat,
) -> streams::read_resp::ReadEvent {
    use streams::read_resp::read_event::{Position, RecordedEvent as Recorded};
    let metadata = HashMap::from([
        ("type".to_owned(), event.event_type.clone()),
        (
            "content-type".to_owned(),
            content_type(&event.data).to_owned(),
        ),
        ("created".to_owned(), ticks(event).to_string()),
    ]);
    streams::read_resp::ReadEvent {
        event: Some(Recorded {
            id: Some(uuid_to_proto(event.event_id, format)),
            stream_identifier: Some(stream_identifier(&event.stream)),
            stream_revision: event.revision,
            prepare_position: event.position,
            commit_position: event.position,
            metadata,
            custom_metadata: Bytes::copy_from_slice(&event.metadata),
            data: Bytes::copy_from_slice(&event.data),
        }),
        link: None,
        position: Some(Position::CommitPosition(event.position)),
    }
}

pub(super) fn invalid_argument(message: impl Into<String>) -> Status {
    let mut status = Status::invalid_argument(message);
    insert(&mut status, "exception", "invalid-argument");
    status
}

/// A subscription to `$all` from past the log's end, answered as KurrentDB answers it
/// (`Unknown`, "Trying to read from an invalid position."), with what the log holds: such a
/// checkpoint comes from another log or from before a restore, and going on from it would
/// skip the events that take those places.
pub(super) fn invalid_position(position: u64, head: Option<u64>) -> Status {
    let holds = match head {
        Some(head) => format!("the log's last position is {head}"),
        None => "the log is empty".to_owned(),
    };
    Status::unknown(format!(
        "Trying to read from an invalid position. Position {position} is past the end: {holds}."
    ))
}

pub(super) fn insert(status: &mut Status, key: &'static str, value: &str) {
    if let Ok(value) = MetadataValue::try_from(value) {
        status.metadata_mut().insert(key, value);
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The status EventStoreDB answers a failed store call with. A wrong expected revision of a
/// unary append travels in its response instead (see `append_response`).
pub(super) fn status_of(error: StoreError) -> Status {
    match error {
        StoreError::WrongExpectedRevision {
            stream,
            expected,
            actual,
        } => {
            let mut status = Status::failed_precondition(format!(
                "wrong expected version on {stream}: expected {expected}"
            ));
            insert(&mut status, "exception", "wrong-expected-version");
            insert(&mut status, "stream-name", stream.as_str());
            insert(&mut status, "expected-version", &expected_text(expected));
            insert(
                &mut status,
                "actual-version",
                &actual.map_or(-1, |r| r as i64).to_string(),
            );
            status
        }
        StoreError::StreamNotFound(stream) => {
            let mut status = Status::not_found(format!("stream {stream} not found"));
            insert(&mut status, "exception", "stream-not-found");
            insert(&mut status, "stream-name", stream.as_str());
            status
        }
        error @ StoreError::PartialIdempotentAppend(_) => {
            // EventStoreDB refuses a write that repeats only some ids as an invalid transaction.
            let mut status = Status::failed_precondition(error.to_string());
            insert(&mut status, "exception", "invalid-transaction");
            status
        }
        StoreError::InvalidInput(
            input @ (InvalidInput::TooManyEvents(_)
            | InvalidInput::DataTooLarge(_)
            | InvalidInput::MetadataTooLarge(_)),
        ) => {
            let mut status = invalid_argument(input.to_string());
            insert(&mut status, "exception", "maximum-append-size-exceeded");
            status
        }
        StoreError::InvalidInput(input) => invalid_argument(input.to_string()),
        StoreError::Closed => Status::unavailable("the node is shutting down"),
        error @ StoreError::EarlierAppendFailed => Status::aborted(error.to_string()),
        error @ StoreError::WrittenElsewhere(_) => Status::unavailable(error.to_string()),
        error @ StoreError::Io(_) => Status::unavailable(error.to_string()),
        error @ StoreError::Full(_) => Status::resource_exhausted(error.to_string()),
        error @ StoreError::Corrupt(_) => Status::new(Code::DataLoss, error.to_string()),
    }
}

fn expected_text(expected: ExpectedRevision) -> String {
    match expected {
        ExpectedRevision::Any => "-2".to_owned(),
        ExpectedRevision::NoStream => "-1".to_owned(),
        ExpectedRevision::StreamExists => "-4".to_owned(),
        ExpectedRevision::Exact(n) => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip_in_both_encodings() {
        let id = Uuid::new_v4();
        for format in [UuidFormat::Structured, UuidFormat::String] {
            assert_eq!(
                uuid_from_proto(Some(uuid_to_proto(id, format))).ok(),
                Some(id)
            );
        }
        assert!(uuid_from_proto(None).is_err());
    }

    #[test]
    fn created_is_in_ticks_since_the_unix_epoch() {
        let event = RecordedEvent {
            stream: StreamName::new("order-a").expect("name"),
            revision: 0,
            position: 0,
            event_id: Uuid::nil(),
            event_type: "T".into(),
            data: b"{}".to_vec(),
            metadata: vec![],
            recorded_at: chrono::DateTime::from_timestamp(1, 500).expect("instant"),
        };
        assert_eq!(ticks(&event), 10_000_005);
        assert_eq!(content_type(&event.data), "application/json");
        assert_eq!(content_type(b"\x00binary"), "application/octet-stream");
    }
}
