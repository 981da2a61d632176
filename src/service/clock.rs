//! The service's clock. Commands are dated by it; in `--dev` it can be moved forward so that
//! lateness, auto-close and review windows can be exercised from outside.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct Clock {
    /// How far ahead of the machine's clock the service's clock runs, in milliseconds.
    ahead_ms: AtomicI64,
}

#[derive(Debug, thiserror::Error)]
#[error("the clock only moves forward: it reads {now}, {requested} is earlier")]
pub struct ClockBackwards {
    pub now: DateTime<Utc>,
    pub requested: DateTime<Utc>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock to `to`, which must not be earlier than now.
    pub fn advance_to(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, ClockBackwards> {
        let now = self.now();
        if to < now {
            return Err(ClockBackwards { now, requested: to });
        }
        let ahead = (to - Utc::now()).num_milliseconds();
        self.ahead_ms.fetch_max(ahead, Ordering::Relaxed);
        Ok(self.now())
    }
}
