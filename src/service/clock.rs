//! The service's clock. Commands are dated by it; in `--dev` it can be moved forward so that
//! lateness, auto-close and review windows can be exercised from outside.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct Clock {
    /// How far ahead of the machine's clock the service's clock runs, in microseconds:
    /// milliseconds set it up to a millisecond short of what was asked.
    ahead_us: AtomicI64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockRefused {
    #[error("the clock only moves forward: it reads {now}, {requested} is earlier")]
    Backwards {
        now: DateTime<Utc>,
        requested: DateTime<Utc>,
    },
    #[error("the clock stops at {latest}: {requested} is later (instants are RFC 3339, four-digit years)")]
    TooLate {
        latest: DateTime<Utc>,
        requested: DateTime<Utc>,
    },
}

impl ClockRefused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Backwards { .. } => "clock_backwards",
            Self::TooLate { .. } => "clock_too_late",
        }
    }
}

/// The latest instant the clock may be moved to: the last one RFC 3339 can write. Beyond it,
/// the instants commands derive (deadlines, review windows) would not fit the wire format, and
/// near chrono's own end the clock would overflow as it ticks.
pub fn latest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 999_999_999))
        .map_or(DateTime::<Utc>::MAX_UTC, |at| at.and_utc())
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        let ahead = Duration::microseconds(self.ahead_us.load(Ordering::Relaxed));
        let machine = Utc::now();
        machine
            .checked_add_signed(ahead)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Moves the clock to `to`, which must not be earlier than now nor later than
    /// [`latest`]. The clock then reads `to` or up to a microsecond after it, never before.
    pub fn advance_to(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, ClockRefused> {
        let latest = latest();
        if to > latest {
            return Err(ClockRefused::TooLate {
                latest,
                requested: to,
            });
        }
        let now = self.now();
        if to < now {
            return Err(ClockRefused::Backwards { now, requested: to });
        }
        let gap = to - Utc::now();
        // Within [`latest`] the gap is a few thousand years: microseconds fit an i64.
        let whole_us = gap.num_microseconds().unwrap_or(i64::MAX);
        let short_of_target = gap > Duration::microseconds(whole_us);
        let ahead = whole_us.saturating_add(i64::from(short_of_target));
        self.ahead_us.fetch_max(ahead, Ordering::Relaxed);
        Ok(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_clock_moved_to_an_instant_never_reads_before_it() {
        let clock = Clock::default();
        for target in [
            "2031-06-01T00:00:00Z",
            "2031-06-02T00:00:00.000000001Z",
            "2031-06-03T12:30:00.999999999Z",
            "2040-01-01T00:00:00.5Z",
        ] {
            let target = at(target);
            let read = clock.advance_to(target).expect("forward");
            assert!(read >= target, "asked {target}, reads {read}");
            assert!(clock.now() >= target);
            assert!(
                read - target < Duration::seconds(1),
                "{read} overshoots {target}"
            );
        }
    }

    #[test]
    fn the_clock_refuses_to_go_back_or_past_the_last_rfc_3339_instant() {
        let clock = Clock::default();
        let later = clock
            .advance_to(at("2035-01-01T00:00:00Z"))
            .expect("forward");
        let refused = clock.advance_to(at("2034-01-01T00:00:00Z"));
        assert!(matches!(refused, Err(ClockRefused::Backwards { .. })));
        assert!(clock.now() >= later);

        let beyond = latest() + Duration::nanoseconds(1);
        let refused = clock.advance_to(beyond);
        assert_eq!(
            refused,
            Err(ClockRefused::TooLate {
                latest: latest(),
                requested: beyond
            })
        );
        assert!(clock.now() < at("2036-01-01T00:00:00Z"));
    }

    #[test]
    fn a_clock_at_its_last_instant_keeps_ticking_without_overflow() {
        let clock = Clock::default();
        let end = latest();
        let read = clock.advance_to(end).expect("the last instant is allowed");
        assert!(read >= end);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(clock.now() > end);
        assert_eq!(latest().to_rfc3339(), "9999-12-31T23:59:59.999999999+00:00");
    }
}
