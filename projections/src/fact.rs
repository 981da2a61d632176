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
        let version = schema_version(&recorded.metadata).map_err(|e| FactError::Unreadable {
            position,
            event_type: event_type(),
            detail: format!("metadata: {e}"),
        })?;
        if version > EVENT_SCHEMA_VERSION {
            return Err(FactError::NewerSchema {
                position,
                event_type: event_type(),
                version,
            });
        }
        if !ledger_domain::EVENT_TYPES.contains(&recorded.event_type.as_str()) {
            return Err(FactError::UnknownType {
                position,
                event_type: event_type(),
            });
        }
        let event = deserialize_event(&recorded.event_type, &recorded.data).map_err(|e| {
            FactError::Unreadable {
                position,
                event_type: event_type(),
                detail: e.to_string(),
            }
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

/// An event's data, checked as UTF-8 once, whole: serde_json reading bytes checks each
/// string on its own, which costs a short string more than its parse (8% of a rebuild's
/// instructions). Data that is not UTF-8 is read as bytes, so its error is the one it was.
fn deserialize_event(event_type: &str, data: &[u8]) -> Result<Event, serde_json::Error> {
    match std::str::from_utf8(data) {
        Ok(text) => {
            Event::deserialize_data(event_type, &mut serde_json::Deserializer::from_str(text))
        }
        Err(_) => {
            Event::deserialize_data(event_type, &mut serde_json::Deserializer::from_slice(data))
        }
    }
}

/// The metadata's schema version: all a view needs of it (the rest is for auditors). The
/// pipeline writes it first, so it is read from the prefix when it is there, which spares
/// parsing ~300 bytes an event (4% of a rebuild's CPU); anything else goes through serde.
/// The prefix gives the value serde would, but does not check the rest of the metadata:
/// `ledger verify` reads it whole.
fn schema_version(metadata: &[u8]) -> Result<u32, serde_json::Error> {
    const PREFIX: &[u8] = br#"{"schema_version":"#;
    if let Some(rest) = metadata.strip_prefix(PREFIX) {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        // At most nine digits cannot overflow; JSON allows no leading zero.
        let plain = (1..=9).contains(&digits) && (digits == 1 || rest[0] != b'0');
        if plain && matches!(rest.get(digits), Some(b',' | b'}')) {
            return Ok(rest[..digits]
                .iter()
                .fold(0, |version, digit| version * 10 + u32::from(digit - b'0')));
        }
    }
    parsed_schema_version(metadata)
}

/// The schema version by a full parse of the metadata.
fn parsed_schema_version(metadata: &[u8]) -> Result<u32, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Version {
        schema_version: u32,
    }
    serde_json::from_slice::<Version>(metadata).map(|v| v.schema_version)
}

#[cfg(test)]
mod tests {
    use super::{deserialize_event, parsed_schema_version, schema_version};
    use ledger_domain::Event;
    use proptest::prelude::*;

    proptest! {
        /// A title of any bytes (UTF-8 text or not, quotes and escapes among them): the
        /// data read as text once gives the event, or the error, that reading its bytes
        /// string by string gives.
        #[test]
        fn data_read_as_text_reads_as_its_bytes_do(
            title in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..16),
                "\\PC{0,16}".prop_map(String::into_bytes),
                "[a-z\"\\\\]{0,4}(\\\\u[0-9a-fA-F]{4}|\\\\ud800)?".prop_map(String::into_bytes),
            ],
        ) {
            let data = placed_with_title(&title);
            let as_bytes = Event::deserialize_data(
                "OrderPlaced",
                &mut serde_json::Deserializer::from_slice(&data),
            )
            .map_err(|e| e.to_string());
            let as_text = deserialize_event("OrderPlaced", &data).map_err(|e| e.to_string());
            prop_assert_eq!(as_text, as_bytes);
        }
    }

    /// The data of an `OrderPlaced` whose title is these bytes, as they are.
    fn placed_with_title(title: &[u8]) -> Vec<u8> {
        let mut data = br#"{"order_id":"0190f0a4-0000-7000-8000-000000000001","buyer":"0190f0a4-0000-7000-8000-000000000002","seller":"0190f0a4-0000-7000-8000-000000000003","title":""#.to_vec();
        data.extend_from_slice(title);
        data.extend_from_slice(br#"","price":{"amount":"120.00","currency":"EUR"},"delivery_days":5,"commission_rate":"0.20","confirm_by":"2026-12-10T18:25:19.568432181Z","escrow_after":{"amount":"120.00","currency":"EUR"},"by":{"role":"buyer","user_id":"0190f0a4-0000-7000-8000-000000000002"},"at":"2026-12-07T18:25:19.568432181Z"}"#);
        data
    }

    #[test]
    fn a_title_in_any_script_reads_back_and_bytes_that_are_not_text_are_refused() {
        let title = "Café ☕ ロゴ \"v2\"";
        let escaped = serde_json::to_string(title).expect("a string");
        let inner = &escaped[1..escaped.len() - 1];
        let data = placed_with_title(inner.as_bytes());
        match deserialize_event("OrderPlaced", &data) {
            Ok(Event::OrderPlaced(placed)) => assert_eq!(placed.title, title),
            other => panic!("not an order placed: {other:?}"),
        }
        let refused = deserialize_event("OrderPlaced", &placed_with_title(b"Caf\xe9"))
            .expect_err("Latin-1 is not UTF-8");
        assert!(refused.to_string().contains("invalid unicode"), "{refused}");
    }

    proptest! {
        /// Metadata as the pipeline writes it, or with the version anywhere among other
        /// fields: the same version as a full parse.
        #[test]
        fn the_version_is_the_one_a_full_parse_reads(
            version in prop_oneof![0u32..10, any::<u32>()],
            others in proptest::collection::vec(("[a-z_]{1,12}", "[a-zA-Z0-9 ]{0,20}"), 0..5),
            first in any::<bool>(),
        ) {
            let mut fields: Vec<String> = others
                .iter()
                .filter(|(key, _)| key != "schema_version")
                .map(|(key, value)| format!("{key:?}:{value:?}"))
                .collect();
            let at = if first { 0 } else { fields.len() };
            fields.insert(at, format!("\"schema_version\":{version}"));
            let metadata = format!("{{{}}}", fields.join(","));
            prop_assert_eq!(schema_version(metadata.as_bytes()).ok(), Some(version));
        }

        /// Whatever follows the prefix, the version read is never another than a full
        /// parse's, and what a full parse refuses in the version itself is refused.
        #[test]
        fn a_version_that_is_not_plain_goes_to_serde(
            version in "[0-9+\\-.eE ]{0,12}",
            rest in prop_oneof![Just(",\"x\":1}".to_owned()), Just("}".to_owned()), "[,}a-z\"]{0,4}"],
        ) {
            let metadata = format!("{{\"schema_version\":{version}{rest}");
            let fast = schema_version(metadata.as_bytes()).ok();
            let full = parsed_schema_version(metadata.as_bytes()).ok();
            if full.is_some() {
                prop_assert_eq!(fast, full);
            }
            if full.is_none() && fast.is_some() {
                // Only the part after the version can be what serde refused.
                let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
                prop_assert_eq!(digits.parse::<u32>().ok(), fast);
                prop_assert!(!digits.starts_with('0') || digits == "0");
            }
        }
    }
}
