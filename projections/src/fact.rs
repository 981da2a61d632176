//! A recorded event, decoded: what every view folds.

use chrono::{DateTime, Utc};
use ledger_domain::{order_of_stream, Event, OrderId, EVENT_SCHEMA_VERSION};
use ledger_store::RecordedEvent;

/// One event of one order, at its place in `$all`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    pub position: u64,
    pub order: OrderId,
    pub revision: u64,
    pub recorded_at: DateTime<Utc>,
    pub event: Event,
}

/// Why a view stopped: it never skips an event it cannot read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactError {
    #[error("position {position}: event type `{event_type}` is unknown to this binary")]
    UnknownType { position: u64, event_type: String },
    #[error("position {position}: {event_type} has schema version {version}; this binary reads up to {EVENT_SCHEMA_VERSION}")]
    NewerSchema {
        position: u64,
        event_type: String,
        version: u32,
    },
    #[error("position {position}: {event_type} cannot be read: {detail}")]
    Unreadable {
        position: u64,
        event_type: String,
        detail: String,
    },
    #[error("position {position}: stream `{stream}` is not an order stream")]
    NotAnOrderStream { position: u64, stream: String },
}

impl Fact {
    pub fn decode(recorded: &RecordedEvent) -> Result<Fact, FactError> {
        let position = recorded.position;
        let event_type = || recorded.event_type.clone();
        let order = order_of_stream(recorded.stream.as_str()).ok_or_else(|| {
            FactError::NotAnOrderStream {
                position,
                stream: recorded.stream.to_string(),
            }
        })?;
        // Views need only the schema version of the metadata; the rest is for auditors.
        #[derive(serde::Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let metadata: Version =
            serde_json::from_slice(&recorded.metadata).map_err(|e| FactError::Unreadable {
                position,
                event_type: event_type(),
                detail: format!("metadata: {e}"),
            })?;
        if metadata.schema_version > EVENT_SCHEMA_VERSION {
            return Err(FactError::NewerSchema {
                position,
                event_type: event_type(),
                version: metadata.schema_version,
            });
        }
        if !ledger_domain::EVENT_TYPES.contains(&recorded.event_type.as_str()) {
            return Err(FactError::UnknownType {
                position,
                event_type: event_type(),
            });
        }
        let event = Event::deserialize_data(
            &recorded.event_type,
            &mut serde_json::Deserializer::from_slice(&recorded.data),
        )
        .map_err(|e| FactError::Unreadable {
            position,
            event_type: event_type(),
            detail: e.to_string(),
        })?;
        Ok(Fact {
            position,
            order,
            revision: recorded.revision,
            recorded_at: recorded.recorded_at,
            event,
        })
    }
}
