//! The process manager that turns due deadlines into the system's commands.
//!
//! A timer's command id derives from its order, kind and deadline, so a timer that fires
//! twice, or on two instances at once, acts once: the second attempt finds its command in the
//! log. A timer whose order moved on (the buyer closed first) is refused by the rules and does
//! nothing. A timer refused for any other reason of its own order's is logged and skipped, so
//! that one order never holds back every other order's deadline.

use crate::log_throttle::LogThrottle;
use chrono::{DateTime, TimeDelta, Utc};
use futures::stream::{self, StreamExt};
use ledger_commands::{CommandError, CommandHandler, CommandRequest, Outcome};
use ledger_domain::{Actor, Command, Rejection};
use ledger_projections::{DueTimer, TimerKind, TimerView};
use uuid::Uuid;

/// Most timers read from the views and fired at once; a full page is followed by the next.
pub const TIMERS_PER_TICK_MAX: usize = 1_000;

/// A tick's way through the due timers a page at a time. Each page starts after the last
/// timer of the one before, not at the earliest deadline again: a full page of timers that
/// are refused at every tick would otherwise hide every deadline behind it.
#[derive(Debug)]
pub struct TimerPages {
    page_size: usize,
    after: Option<DueTimer>,
}

impl TimerPages {
    pub fn new(page_size: usize) -> TimerPages {
        TimerPages {
            page_size: page_size.max(1),
            after: None,
        }
    }

    /// The next page of timers due at `now`.
    pub fn next_page(&mut self, timers: &TimerView, now: DateTime<Utc>) -> Vec<DueTimer> {
        let page = timers.due_after(now, self.after.as_ref(), self.page_size);
        self.after = if page.len() >= self.page_size {
            page.last().copied()
        } else {
            None
        };
        page
    }

    /// Whether the last page was full, so that more may be due after it.
    pub fn more(&self) -> bool {
        self.after.is_some()
    }

    /// The next page starts at the earliest deadline again.
    pub fn restart(&mut self) {
        self.after = None;
    }
}

/// Namespace of timer command ids (a fixed random UUID: changing it would re-fire old timers).
const TIMER_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6467_6572_2d74_696d_6572_7300_0001);

/// What one tick of the timers did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerReport {
    /// Commands that changed an order.
    pub fired: usize,
    /// Timers whose command was already in the log (fired before, here or elsewhere).
    pub already_fired: usize,
    /// Timers whose order had moved on; nothing was done.
    pub moved_on: usize,
    /// Timers whose command failed for a reason of their own order's (a rule the timer did not
    /// expect, an undecodable stream); each is logged, tried again at the next tick, and did
    /// not stop the others.
    pub refused: usize,
}

pub fn timer_command_id(timer: &DueTimer) -> Uuid {
    let kind: &[u8] = match timer.kind {
        TimerKind::ExpireUnconfirmed => b"expire",
        TimerKind::AutoCloseAfterDelivery => b"auto-close-delivered",
        TimerKind::AutoCloseAfterRefusedRevision => b"auto-close-refused",
    };
    let name = [
        timer.order.0.as_bytes().as_slice(),
        kind,
        &timer.due_at.timestamp_micros().to_be_bytes(),
    ]
    .concat();
    Uuid::new_v5(&TIMER_NAMESPACE, &name)
}

/// The command a due timer sends, dated `now`.
pub fn timer_command(timer: &DueTimer, now: DateTime<Utc>) -> CommandRequest {
    let by = Actor::system();
    let command = match timer.kind {
        TimerKind::ExpireUnconfirmed => Command::Expire { by, at: now },
        TimerKind::AutoCloseAfterDelivery | TimerKind::AutoCloseAfterRefusedRevision => {
            Command::AutoClose { by, at: now }
        }
    };
    CommandRequest::new(timer_command_id(timer), timer.order, command)
}

/// How often a timer refused at every tick is warned of again while it stays refused.
pub const REFUSAL_WARNED_EVERY: TimeDelta = TimeDelta::minutes(10);

/// When each refused timer was last warned of: a timer refused at every tick (a second, by
/// default) would otherwise fill the log with the same warning 3,600 times an hour.
#[derive(Debug)]
pub struct RefusalWarnings(LogThrottle<Uuid, DateTime<Utc>, TimeDelta>);

impl Default for RefusalWarnings {
    fn default() -> Self {
        RefusalWarnings(LogThrottle::new(REFUSAL_WARNED_EVERY))
    }
}

impl RefusalWarnings {
    /// Whether the refusal of `timer` at `now` is worth a warning: the first time, and then
    /// once every `REFUSAL_WARNED_EVERY` while it lasts.
    pub fn should_warn(&mut self, timer: &DueTimer, now: DateTime<Utc>) -> bool {
        self.0.admit(timer_command_id(timer), now).is_some()
    }

    /// Forgets the timers warned of too long ago to matter, which would be warned of again
    /// anyway: the memory holds only the timers refused lately.
    pub fn forget_stale(&mut self, now: DateTime<Utc>) {
        self.0.forget_stale(now);
    }
}

/// Timer commands in flight at once: enough for the store to commit them in shared batches
/// (a backlog after downtime fires in seconds, not a page a tick), few enough to leave the
/// writer to people's commands.
pub const TIMER_COMMANDS_IN_FLIGHT: usize = 8;

/// Fires every timer due at `now`, through the command pipeline.
pub async fn fire_due_timers(
    handler: &CommandHandler,
    timers: &TimerView,
    now: DateTime<Utc>,
) -> Result<TimerReport, CommandError> {
    let due = timers.due(now, TIMERS_PER_TICK_MAX);
    let (changed, warnings) = (&mut Vec::new(), &mut RefusalWarnings::default());
    fire(
        handler,
        due,
        now,
        TIMER_COMMANDS_IN_FLIGHT,
        changed,
        warnings,
    )
    .await
}

/// As `fire_due_timers`, one timer at a time in deadline order, so that a simulation's seed
/// gives the same log; also hands over the outcome of each timer that changed an order.
pub async fn fire_due_timers_in_order(
    handler: &CommandHandler,
    timers: &TimerView,
    now: DateTime<Utc>,
    changed: &mut Vec<Outcome>,
) -> Result<TimerReport, CommandError> {
    let due = timers.due(now, TIMERS_PER_TICK_MAX);
    fire(
        handler,
        due,
        now,
        1,
        changed,
        &mut RefusalWarnings::default(),
    )
    .await
}

/// Fires `due`, timers read from the view beforehand (the service does not hold its views
/// while commands run), `TIMER_COMMANDS_IN_FLIGHT` at once. Only the store's failure stops the
/// tick: it concerns every timer.
pub async fn fire_timers(
    handler: &CommandHandler,
    due: Vec<DueTimer>,
    now: DateTime<Utc>,
    changed: &mut Vec<Outcome>,
    warnings: &mut RefusalWarnings,
) -> Result<TimerReport, CommandError> {
    fire(
        handler,
        due,
        now,
        TIMER_COMMANDS_IN_FLIGHT,
        changed,
        warnings,
    )
    .await
}

async fn fire(
    handler: &CommandHandler,
    due: Vec<DueTimer>,
    now: DateTime<Utc>,
    in_flight: usize,
    changed: &mut Vec<Outcome>,
    warnings: &mut RefusalWarnings,
) -> Result<TimerReport, CommandError> {
    let mut report = TimerReport::default();
    warnings.forget_stale(now);
    // In `due`'s order whatever the order they finish in.
    let mut results = stream::iter(due)
        .map(|timer| async move { (handler.handle(timer_command(&timer, now)).await, timer) })
        .buffered(in_flight.max(1));
    while let Some((result, timer)) = results.next().await {
        match result {
            Ok(outcome) if outcome.replayed => report.already_fired += 1,
            Ok(outcome) => {
                report.fired += 1;
                changed.push(outcome);
            }
            Err(CommandError::Rejected(
                Rejection::WrongState { .. }
                | Rejection::OrderFinished { .. }
                | Rejection::OrderInDispute
                | Rejection::DeadlineNotReached { .. },
            )) => report.moved_on += 1,
            Err(error @ CommandError::Store(_)) => return Err(error),
            Err(error) => {
                report.refused += 1;
                if warnings.should_warn(&timer, now) {
                    tracing::warn!(
                        order = %timer.order,
                        kind = ?timer.kind,
                        due_at = %timer.due_at,
                        %error,
                        "a due timer's command was refused; it is tried again at every tick, and warned of again in 10 minutes if still refused"
                    );
                } else {
                    tracing::debug!(order = %timer.order, %error, "a due timer's command was refused again");
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_domain::OrderId;

    fn timer(n: u128) -> DueTimer {
        DueTimer {
            order: OrderId(Uuid::from_u128(n)),
            kind: TimerKind::ExpireUnconfirmed,
            due_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_timer_refused_at_every_tick_is_warned_of_once_every_ten_minutes() {
        let mut warnings = RefusalWarnings::default();
        let start = DateTime::UNIX_EPOCH + TimeDelta::days(1);
        let warned: Vec<i64> = (0..=1_200)
            .filter(|second| warnings.should_warn(&timer(1), start + TimeDelta::seconds(*second)))
            .collect();
        assert_eq!(warned, [0, 600, 1_200]);
        // Another timer's first refusal is warned of whatever the first one's.
        assert!(warnings.should_warn(&timer(2), start + TimeDelta::seconds(1_201)));
        // Only the timers refused lately are remembered.
        let later = start + TimeDelta::hours(5);
        assert!(warnings.should_warn(&timer(3), later));
        warnings.forget_stale(later);
        assert_eq!(warnings.0.len(), 1);
    }
}
