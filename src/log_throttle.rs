//! Repeated log lines thinned: the first of a kind at once, then one a period while more keep
//! coming, each saying how many like it were passed over.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Sub;

/// When each kind of line was last written, and how many like it were passed over since. The
/// instants are the service's clock (`DateTime<Utc>`, which `--dev` moves) or the process's
/// (`Instant`).
#[derive(Debug)]
pub struct LogThrottle<K, T, D> {
    every: D,
    last: HashMap<K, (T, u64)>,
}

impl<K: Hash + Eq, T: Copy + Sub<Output = D>, D: PartialOrd> LogThrottle<K, T, D> {
    pub fn new(every: D) -> Self {
        LogThrottle {
            every,
            last: HashMap::new(),
        }
    }

    /// Counts a line of `kind` at `now`; `Some` with how many were passed over since the last
    /// one written when this one is to be written: the first, and then one a period.
    pub fn admit(&mut self, kind: K, now: T) -> Option<u64> {
        match self.last.get_mut(&kind) {
            Some((written, passed)) if now - *written < self.every => {
                *passed += 1;
                None
            }
            Some((written, passed)) => {
                *written = now;
                Some(std::mem::take(passed))
            }
            None => {
                self.last.insert(kind, (now, 0));
                Some(0)
            }
        }
    }

    /// Forgets the kinds written a period ago or more, which would be written at once anyway:
    /// the memory holds only what came lately.
    pub fn forget_stale(&mut self, now: T) {
        let every = &self.every;
        self.last.retain(|_, (written, _)| now - *written < *every);
    }

    /// Kinds remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
