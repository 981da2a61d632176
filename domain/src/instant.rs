//! Instants written as RFC 3339 text directly, byte for byte as chrono writes them
//! (`SecondsFormat::AutoSi`, `Z`), and read back the same way. chrono's own `Serialize` goes
//! through `collect_str`, which serde_json escapes a fragment at a time: ~250 ns a field
//! against ~80 (a one-field struct to a reused buffer), and every event, order row and
//! response holds several; its `Deserialize` runs a general format parser, a few percent of
//! a rebuild. Use with `#[serde(with = "…")]`; anything but the form written here goes to
//! chrono, so what is accepted, and every error, is chrono's.
//!
//! Binary formats (`is_human_readable` false: the views' MessagePack rows) get seconds and
//! nanoseconds since the epoch instead, a third of the text's bytes and nothing to parse.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::de::{self, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `2026-03-02T09:00:00.123456789Z`
const LONGEST: usize = 30;

/// The last instant RFC 3339 can write (four-digit years). chrono goes on to year 262,143 and
/// writes those as `+10000-…`, which other languages' RFC 3339 parsers refuse.
pub fn latest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 999_999_999))
        .map_or(DateTime::<Utc>::MAX_UTC, |at| at.and_utc())
}

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    if !serializer.is_human_readable() {
        return (at.timestamp(), at.timestamp_subsec_nanos()).serialize(serializer);
    }
    let mut text = [0u8; LONGEST];
    let direct = write(at, &mut text).and_then(|len| std::str::from_utf8(&text[..len]).ok());
    match direct {
        Some(text) => serializer.serialize_str(text),
        None => at.serialize(serializer),
    }
}

pub fn serialize_option<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Instant<'a>(&'a DateTime<Utc>);
    impl Serialize for Instant<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }
    match at {
        Some(at) => serializer.serialize_some(&Instant(at)),
        None => serializer.serialize_none(),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    if !deserializer.is_human_readable() {
        let (seconds, nanos) = <(i64, u32)>::deserialize(deserializer)?;
        return DateTime::from_timestamp(seconds, nanos).ok_or_else(|| {
            de::Error::custom(format!(
                "{seconds} s {nanos} ns is not an instant chrono holds"
            ))
        });
    }
    deserializer.deserialize_str(InstantVisitor)
}

/// Optional instants, both ways: `#[serde(default, with = "…::instant::option")]`.
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::de::{self, Deserializer};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        super::serialize_option(at, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> de::Visitor<'de> for OptionVisitor {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("an RFC 3339 date and time, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            super::deserialize(deserializer).map(Some)
        }
    }
}

struct InstantVisitor;

impl de::Visitor<'_> for InstantVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an RFC 3339 date and time")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
        match read(text.as_bytes()) {
            Some(at) => Ok(at),
            None => DateTime::<Utc>::deserialize(text.into_deserializer()),
        }
    }
}

/// The instant in `YYYY-MM-DDTHH:MM:SS[.f…]Z` (one to nine digits of fraction), the form
/// `write` gives; `None` for anything else, valid or not, which chrono then reads.
fn read(text: &[u8]) -> Option<DateTime<Utc>> {
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        text.get(range)?.iter().try_fold(0u32, |n, byte| {
            byte.is_ascii_digit()
                .then(|| n * 10 + u32::from(byte - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if text.len() < 20 || separators.iter().any(|&(at, byte)| text[at] != byte) {
        return None;
    }
    let (last, fraction) = text[19..].split_last()?;
    if *last != b'Z' {
        return None;
    }
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(20..20 + digits.len())? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    // A leap second (`:60`) is chrono's to read.
    if second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    Some(
        date.and_hms_nano_opt(hour, minute, second, nanos)?
            .and_utc(),
    )
}

/// The text's length, or `None` where chrono's own form differs from four-digit years and
/// sixty-second minutes (years outside 0–9999, leap seconds).
fn write(at: &DateTime<Utc>, text: &mut [u8; LONGEST]) -> Option<usize> {
    let at = at.naive_utc();
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    digits(&mut text[0..4], year);
    text[4] = b'-';
    digits(&mut text[5..7], at.month());
    text[7] = b'-';
    digits(&mut text[8..10], at.day());
    text[10] = b'T';
    digits(&mut text[11..13], at.hour());
    text[13] = b':';
    digits(&mut text[14..16], at.minute());
    text[16] = b':';
    digits(&mut text[17..19], at.second());
    let mut len = 19;
    // As `AutoSi`: the fewest of 0, 3, 6 or 9 digits that show every non-zero one.
    let (fraction, width) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    if width > 0 {
        text[len] = b'.';
        digits(&mut text[len + 1..len + 1 + width], fraction);
        len += 1 + width;
    }
    text[len] = b'Z';
    Some(len + 1)
}

/// `value` in decimal, zero-padded to fill `out`.
fn digits(out: &mut [u8], mut value: u32) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "serialize_option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chronos {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    fn same_json(at: DateTime<Utc>, maybe: Option<DateTime<Utc>>) -> Result<(), TestCaseError> {
        let ours = serde_json::to_string(&Ours { at, maybe })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let chronos = serde_json::to_string(&Chronos { at, maybe })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ours, chronos);
        Ok(())
    }

    #[derive(serde::Deserialize)]
    struct ReadOurs {
        #[serde(deserialize_with = "deserialize")]
        at: DateTime<Utc>,
    }

    #[derive(serde::Deserialize)]
    struct ReadChronos {
        at: DateTime<Utc>,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct ReadOursOption {
        #[serde(default, with = "option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct ReadChronosOption {
        maybe: Option<DateTime<Utc>>,
    }

    /// Ours and chrono's read `json` alike: the same instant, or the same error.
    fn same_reading(json: &str) -> Result<(), TestCaseError> {
        let ours = serde_json::from_str::<ReadOurs>(json)
            .map(|r| r.at)
            .map_err(|e| e.to_string());
        let chronos = serde_json::from_str::<ReadChronos>(json)
            .map(|r| r.at)
            .map_err(|e| e.to_string());
        prop_assert_eq!(ours, chronos, "reading {}", json);
        Ok(())
    }

    proptest! {
        /// Every instant chrono can hold, as chrono writes it, reads back as chrono reads it.
        #[test]
        fn reads_what_chrono_reads(
            seconds in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000),
                0u32..1_000_000_000, 1_000_000_000u32..2_000_000_000],
        ) {
            if let Some(at) = Utc.timestamp_opt(seconds, nanos).single() {
                let json = serde_json::to_string(&Chronos { at, maybe: None })
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                same_reading(&json)?;
                let ours = serde_json::from_str::<ReadOurs>(&json)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(ours.at, at);
            }
        }

        /// Text near the form written here, valid or not (bad dates, leap seconds, long
        /// fractions, offsets, lower case), reads as chrono reads it, errors included.
        #[test]
        fn reads_near_misses_as_chrono_does(
            (year, month, day) in (0u32..10_000, 0u32..14, 0u32..33),
            (hour, minute, second) in (0u32..25, 0u32..61, 0u32..62),
            fraction in "(\\.[0-9]{0,11})?",
            separator in prop_oneof![Just('T'), Just('t'), Just(' ')],
            zone in prop_oneof![Just("Z"), Just("z"), Just(""), Just("+00:00"), Just("-01:30")],
            garbage in "[0-9T:.Z+-]{0,32}",
        ) {
            let text = format!(
                "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
            );
            same_reading(&format!("{{\"at\":\"{text}\"}}"))?;
            same_reading(&format!("{{\"at\":\"{garbage}\"}}"))?;
        }

        /// Any instant chrono can hold, with each precision the sub-seconds may have.
        #[test]
        fn writes_what_chrono_writes(
            seconds in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000),
                (0u32..1_000_000).prop_map(|u| u * 1_000), 0u32..1_000_000_000, 1_000_000_000u32..2_000_000_000],
            none in any::<bool>(),
        ) {
            if let Some(at) = Utc.timestamp_opt(seconds, nanos).single() {
                same_json(at, (!none).then_some(at))?;
                // And an optional instant reads back as chrono's would, present or not.
                let maybe = (!none).then_some(at);
                let json = serde_json::to_string(&Chronos { at, maybe })
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let ours = serde_json::from_str::<ReadOursOption>(&json).map(|r| r.maybe);
                let chronos = serde_json::from_str::<ReadChronosOption>(&json).map(|r| r.maybe);
                prop_assert_eq!(ours.map_err(|e| e.to_string()), chronos.map_err(|e| e.to_string()));
                prop_assert_eq!(
                    serde_json::from_str::<ReadOursOption>("{}").map_err(|e| e.to_string()),
                    Ok(ReadOursOption { maybe: None })
                );
            }
        }

        /// The years the ledger meets, where the direct path is taken.
        #[test]
        fn writes_what_chrono_writes_in_four_digit_years(
            seconds in 0i64..253_402_300_800,
            nanos in 0u32..1_000_000_000,
            millis in 0u32..1000,
        ) {
            for nanos in [nanos, millis * 1_000_000, nanos / 1000 * 1000, 0] {
                if let Some(at) = Utc.timestamp_opt(seconds, nanos).single() {
                    same_json(at, Some(at))?;
                }
            }
        }
    }
}
