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
        metadata: metadata_json(metadata),
        recorded_at: None,
    }
}

/// The metadata as `serde_json` writes it, byte for byte, written directly: through serde,
/// every key and id went through the escaper a byte at a time (~4% of a command's CPU).
/// A digest that would need escaping (none we write does) goes through serde.
fn metadata_json(metadata: &EventMetadata) -> Vec<u8> {
    let digest_is_plain = metadata
        .command_digest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b':');
    if !digest_is_plain {
        // Serialising our own type to a Vec cannot fail.
        return serde_json::to_vec(metadata).unwrap_or_default();
    }
    let mut json = Vec::with_capacity(METADATA_CAPACITY);
    let id = |json: &mut Vec<u8>, key: &[u8], uuid: &Uuid| {
        json.extend_from_slice(key);
        json.extend_from_slice(
            uuid.hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        json.push(b'"');
    };
    json.extend_from_slice(b"{\"schema_version\":");
    json.extend_from_slice(metadata.schema_version.to_string().as_bytes());
    id(&mut json, b",\"command_id\":\"", &metadata.command_id);
    json.extend_from_slice(b",\"command_digest\":\"");
    json.extend_from_slice(metadata.command_digest.as_bytes());
    json.push(b'"');
    id(
        &mut json,
        b",\"correlation_id\":\"",
        &metadata.correlation_id,
    );
    id(&mut json, b",\"causation_id\":\"", &metadata.causation_id);
    json.extend_from_slice(b",\"actor\":{\"role\":\"");
    json.extend_from_slice(metadata.actor.role.as_str().as_bytes());
    id(&mut json, b"\",\"user_id\":\"", &metadata.actor.user_id.0);
    json.extend_from_slice(b"}}");
    json
}

/// Bytes of one event's metadata: ~260 with a v2 digest.
const METADATA_CAPACITY: usize = 288;

pub fn decode(recorded: &RecordedEvent) -> Result<(Event, EventMetadata), DecodeError> {
    let metadata = decode_metadata(recorded)?;
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

/// The metadata alone: what idempotency and the audit trail read of an event.
pub fn decode_metadata(recorded: &RecordedEvent) -> Result<EventMetadata, DecodeError> {
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
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_domain::{Actor, Role, UserId};
    use proptest::prelude::*;

    fn metadata() -> impl Strategy<Value = EventMetadata> {
        let digest = prop_oneof![
            "v2:[0-9a-f]{32}",
            "[0-9a-f]{32}",
            // Near misses: one character to escape among plain ones.
            "[0-9a-z:]{0,8}[\"\\\\\\x00-\\x1f\\x7f é/][0-9a-z:]{0,8}",
            // Anything else.
            any::<String>(),
        ];
        (
            any::<u32>(),
            any::<[u128; 4]>(),
            digest,
            proptest::sample::select(Role::ALL.to_vec()),
        )
            .prop_map(
                |(version, [command, correlation, causation, user], digest, role)| EventMetadata {
                    schema_version: version,
                    command_id: Uuid::from_u128(command),
                    command_digest: digest,
                    correlation_id: Uuid::from_u128(correlation),
                    causation_id: Uuid::from_u128(causation),
                    actor: Actor::new(role, UserId(Uuid::from_u128(user))),
                },
            )
    }

    proptest! {
        /// Views read the schema version from the metadata's first bytes, and `ledger verify`
        /// reads it whole: the direct form must be serde's, byte for byte.
        #[test]
        fn metadata_is_written_as_serde_writes_it(metadata in metadata()) {
            let direct = metadata_json(&metadata);
            let through_serde = serde_json::to_vec(&metadata).unwrap_or_default();
            prop_assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&through_serde)
            );
            let back: EventMetadata = serde_json::from_slice(&direct).map_err(|e| {
                TestCaseError::fail(e.to_string())
            })?;
            prop_assert_eq!(back, metadata);
        }
    }
}
