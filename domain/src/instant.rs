//! Instants written as RFC 3339 text directly, byte for byte as chrono writes them
//! (`SecondsFormat::AutoSi`, `Z`). chrono's own `Serialize` goes through `collect_str`, which
//! serde_json escapes a fragment at a time: ~250 ns a field against ~80 (a one-field struct
//! to a reused buffer), and every event, order row and response holds several. Use with
//! `#[serde(serialize_with = "…")]`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `2026-03-02T09:00:00.123456789Z`
const LONGEST: usize = 30;

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
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

    proptest! {
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
