//! Platform policy: the windows and rates DOMAIN.md leaves to the platform, and the limits on
//! every input. Policy values are read when a command is decided and written onto the events,
//! so replaying history never depends on today's configuration.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Longest order title, in characters.
pub const TITLE_CHARS_MAX: usize = 200;
/// Longest free text on a command (a reason, a delivery message, a mediator's note).
pub const REASON_CHARS_MAX: usize = 2_000;
/// Longest review comment.
pub const REVIEW_COMMENT_CHARS_MAX: usize = 2_000;
/// Longest description of a bought extra.
pub const EXTRA_DESCRIPTION_CHARS_MAX: usize = 500;
/// Longest delivery time a seller may promise, for an order or a revision.
pub const DELIVERY_DAYS_MAX: u32 = 365;
/// Most days a single extra may add to the deadline.
pub const EXTRA_DAYS_MAX: u32 = 365;
/// Furthest ahead of now a buyer may move a deadline: as far as the longest delivery time, so
/// that a mistyped year is refused instead of recorded for good.
pub const DEADLINE_AHEAD_DAYS_MAX: u32 = 365;
/// Most extras one order may accumulate; bounds the escrow sum and the stream's length.
pub const EXTRAS_PER_ORDER_MAX: u32 = 100;
pub const RATING_MIN: u8 = 1;
pub const RATING_MAX: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("commission rate must be at least 0 and below 1 (got {0})")]
    CommissionRate(Decimal),
    #[error("{name} must be between 1 and {max} (got {value})")]
    Window {
        name: &'static str,
        value: u32,
        max: u32,
    },
}

/// Every window and rate of DOMAIN.md, with its defaults. The only `Default` for them is here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Share of released escrow the platform keeps, written on each `OrderPlaced`.
    pub commission_rate: Decimal,
    /// Days a seller has to confirm a placed order before it expires.
    pub confirmation_window_days: u32,
    /// Days a buyer has to react to a delivery before it auto-closes.
    pub acceptance_window_days: u32,
    /// Days a buyer has to close or dispute after a refused revision. [seed 001]
    pub decision_window_days: u32,
    /// Calendar months after close during which the buyer may review. [seed 002]
    pub review_window_months: u32,
    /// Length of the recent window of the completion rate.
    pub completion_rate_recent_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            commission_rate: Decimal::new(20, 2),
            confirmation_window_days: 3,
            acceptance_window_days: 3,
            decision_window_days: 7,
            review_window_months: 6,
            completion_rate_recent_days: 60,
        }
    }
}

/// Upper bound on any configured window, so deadline arithmetic stays far inside chrono's range.
const WINDOW_DAYS_MAX: u32 = 3_650;
const WINDOW_MONTHS_MAX: u32 = 120;

impl Policy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.commission_rate < Decimal::ZERO || self.commission_rate >= Decimal::ONE {
            return Err(PolicyError::CommissionRate(self.commission_rate));
        }
        let windows = [
            (
                "confirmation_window_days",
                self.confirmation_window_days,
                WINDOW_DAYS_MAX,
            ),
            (
                "acceptance_window_days",
                self.acceptance_window_days,
                WINDOW_DAYS_MAX,
            ),
            (
                "decision_window_days",
                self.decision_window_days,
                WINDOW_DAYS_MAX,
            ),
            (
                "review_window_months",
                self.review_window_months,
                WINDOW_MONTHS_MAX,
            ),
            (
                "completion_rate_recent_days",
                self.completion_rate_recent_days,
                WINDOW_DAYS_MAX,
            ),
        ];
        for (name, value, max) in windows {
            if value == 0 || value > max {
                return Err(PolicyError::Window { name, value, max });
            }
        }
        Ok(())
    }
}
