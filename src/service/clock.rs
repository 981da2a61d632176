//! The service's clock. Commands are dated by it; in `--dev` it can be moved forward so that
//! lateness, auto-close and review windows can be exercised from outside.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug)]
pub struct Clock {
    /// How far ahead of the machine's clock the service's clock runs, in microseconds:
    /// milliseconds set it up to a millisecond short of what was asked.
    ahead_us: AtomicI64,
    /// The latest instant read, in microseconds rounded up. A machine clock stepped back
    /// (NTP, a resumed virtual machine) would otherwise date commands before the events
    /// just recorded on their orders, which the domain refuses (`clock_went_backwards`).
    read_us: AtomicI64,
    machine: fn() -> DateTime<Utc>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::on(Utc::now)
    }
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

/// The floor is kept in microseconds; rounded up, it is never before the instant it keeps.
fn micros_rounded_up(at: DateTime<Utc>) -> i64 {
    let partial = !at.timestamp_subsec_nanos().is_multiple_of(1_000);
    at.timestamp_micros().saturating_add(i64::from(partial))
}

// The latest instant the clock may be moved to: the last one RFC 3339 can write. Near
// chrono's own end the clock would overflow as it ticks; the deadlines commands derive from
// it the domain refuses past the same instant.
use ledger_domain::instant::latest;

impl Clock {
    /// A clock that reads `machine`, the system's clock but in tests.
    fn on(machine: fn() -> DateTime<Utc>) -> Clock {
        Clock {
            ahead_us: AtomicI64::default(),
            read_us: AtomicI64::new(i64::MIN),
            machine,
        }
    }

    /// From now on, never earlier than `at`: the last instant the log holds, at a start.
    pub fn not_before(&self, at: DateTime<Utc>) {
        self.read_us
            .fetch_max(micros_rounded_up(at), Ordering::Relaxed);
    }

    /// Never earlier than an instant it read before.
    pub fn now(&self) -> DateTime<Utc> {
        let ahead = Duration::microseconds(self.ahead_us.load(Ordering::Relaxed));
        let read = (self.machine)()
            .checked_add_signed(ahead)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let before = self
            .read_us
            .fetch_max(micros_rounded_up(read), Ordering::Relaxed);
        match DateTime::<Utc>::from_timestamp_micros(before) {
            Some(floor) if floor > read => floor,
            _ => read,
        }
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
        let gap = to - (self.machine)();
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

    /// The machine's clock of `a_machine_clock_stepped_back_does_not_take_the_service_back`.
    static MACHINE_NANOS: AtomicI64 = AtomicI64::new(0);

    fn machine() -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(MACHINE_NANOS.load(Ordering::Relaxed))
    }

    #[test]
    fn a_machine_clock_stepped_back_does_not_take_the_service_back() {
        let set = |text: &str| {
            let nanos = at(text).timestamp_nanos_opt().expect("in range");
            MACHINE_NANOS.store(nanos, Ordering::Relaxed);
        };
        let clock = Clock::on(machine);
        set("2031-06-01T12:00:00.000000500Z");
        let first = clock.now();
        assert_eq!(first, at("2031-06-01T12:00:00.000000500Z"));
        // NTP steps the machine back five seconds: the service's clock holds.
        set("2031-06-01T11:59:55Z");
        let held = clock.now();
        assert!(held >= first, "{held} is before {first}");
        assert!(held - first < Duration::microseconds(1), "{held}");
        // Within the same microsecond it does not go back either.
        set("2031-06-01T12:00:00.000000400Z");
        assert!(clock.now() >= held);
        // Once the machine passes it, the clock follows the machine again.
        set("2031-06-01T12:00:01Z");
        assert_eq!(clock.now(), at("2031-06-01T12:00:01Z"));
        // Moved forward in `--dev`, it reads from there on, and still never back.
        let moved = clock
            .advance_to(at("2031-07-01T00:00:00Z"))
            .expect("forward");
        set("2031-06-01T11:00:00Z");
        assert!(clock.now() >= moved);

        // Started on a log whose last event is later than the machine's clock: held there.
        let started = Clock::on(machine);
        started.not_before(at("2031-06-01T11:00:05.000000001Z"));
        assert_eq!(started.now(), at("2031-06-01T11:00:05.000001Z"));
        set("2031-06-01T11:00:06Z");
        assert_eq!(started.now(), at("2031-06-01T11:00:06Z"));
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
