//! Between domain events and the store's opaque events: JSON data, JSON metadata and stream
//! names `order-<uuid>`.
//!
//! Event ids are fresh for every attempt. A repeated command is recognised by the command id
//! in its events' metadata, never by event ids: were the ids derived from the command, the
//! loser of a race between two instances would meet the winner's ids at the store, be told
//! its append succeeded, and report events the log does not hold.

use ledger_domain::{
    order_of_stream, order_stream_name, Event, EventMetadata, OrderId, EVENT_SCHEMA_VERSION,
};
use ledger_store::{EventData, RecordedEvent, StreamName};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("event at position {position} ({event_type}): {detail}")]
    Data {
        position: u64,
        event_type: String,
        detail: String,
    },
    #[error("event at position {position} has unreadable metadata: {detail}")]
    Metadata { position: u64, detail: String },
    #[error("event at position {position} has schema version {version}; this binary reads up to {EVENT_SCHEMA_VERSION}")]
    NewerSchema { position: u64, version: u32 },
    #[error("stream `{0}` is not an order stream")]
    NotAnOrderStream(String),
}

pub fn stream_for(order: OrderId) -> StreamName {
    // Invariant: a hyphenated UUID after a short prefix is always a valid stream name.
    StreamName::new(order_stream_name(order))
        .unwrap_or_else(|_| unreachable!("order stream names are valid"))
}

pub fn order_of(stream: &StreamName) -> Result<OrderId, DecodeError> {
    order_of_stream(stream.as_str())
        .ok_or_else(|| DecodeError::NotAnOrderStream(stream.as_str().to_owned()))
}

pub fn encode(event: &Event, metadata: &EventMetadata) -> EventData {
    let mut data = Vec::with_capacity(256);
    // Serialising our own types to a Vec cannot fail: no maps with non-string keys, no I/O.
    let _ = event.serialize_data(&mut serde_json::Serializer::new(&mut data));
    EventData {
        event_id: Uuid::new_v4(),
        event_type: event.event_type().to_owned(),
        data,
        metadata: serde_json::to_vec(metadata).unwrap_or_default(),
        recorded_at: None,
    }
}

pub fn decode(recorded: &RecordedEvent) -> Result<(Event, EventMetadata), DecodeError> {
    let metadata: EventMetadata =
        serde_json::from_slice(&recorded.metadata).map_err(|e| DecodeError::Metadata {
            position: recorded.position,
            detail: e.to_string(),
        })?;
    if metadata.schema_version > EVENT_SCHEMA_VERSION {
        return Err(DecodeError::NewerSchema {
            position: recorded.position,
            version: metadata.schema_version,
        });
    }
    let event = Event::deserialize_data(
        &recorded.event_type,
        &mut serde_json::Deserializer::from_slice(&recorded.data),
    )
    .map_err(|e| DecodeError::Data {
        position: recorded.position,
        event_type: recorded.event_type.clone(),
        detail: e.to_string(),
    })?;
    Ok((event, metadata))
}
