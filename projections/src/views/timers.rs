//! The deadlines the system's timers act on: confirmation expiry, auto-close after a
//! delivery, auto-close after a refused revision.

use crate::rows::Tracked;
use crate::Fact;
use chrono::{DateTime, Utc};
use ledger_domain::{Event, OrderId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Bound;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    ExpireUnconfirmed,
    AutoCloseAfterDelivery,
    AutoCloseAfterRefusedRevision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueTimer {
    pub order: OrderId,
    pub kind: TimerKind,
    #[serde(with = "ledger_domain::instant")]
    pub due_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerView {
    timers: Tracked<OrderId, DueTimer>,
    // Invariant: one entry per entry of `timers`; derived, rebuilt by `reindex`.
    #[serde(skip)]
    schedule: BTreeSet<(DateTime<Utc>, OrderId)>,
    // While set, `schedule` is left stale, for `reindex` to rebuild once: see
    // `Views::defer_indexes`.
    #[serde(skip)]
    schedule_deferred: bool,
}

impl TimerView {
    crate::rows::stored_tables!("timers" => timers);

    pub fn apply(&mut self, fact: &Fact) {
        let next = match &fact.event {
            Event::OrderPlaced(e) => Some((TimerKind::ExpireUnconfirmed, e.confirm_by)),
            Event::OrderDelivered(e) => Some((TimerKind::AutoCloseAfterDelivery, e.auto_close_at)),
            Event::RevisionRefused(e) => Some((
                TimerKind::AutoCloseAfterRefusedRevision,
                e.decision_deadline,
            )),
            Event::OrderConfirmed(_)
            | Event::RevisionRequested(_)
            | Event::RevisionAccepted(_)
            | Event::DisputeOpened(_)
            | Event::OrderClosed(_)
            | Event::OrderCancelled(_) => None,
            // The rest leave the order's state, and so its timer, as it was.
            _ => return,
        };
        let old = match next {
            Some((kind, due_at)) => {
                let timer = DueTimer {
                    order: fact.order,
                    kind,
                    due_at,
                };
                let old = self.timers.insert(fact.order, timer);
                if self.schedule_deferred || old.is_some_and(|old| old.due_at == due_at) {
                    return;
                }
                self.schedule.insert((due_at, fact.order));
                old
            }
            None => self.timers.remove(&fact.order),
        };
        if let (Some(old), false) = (old, self.schedule_deferred) {
            self.schedule.remove(&(old.due_at, fact.order));
        }
    }

    pub(crate) fn defer_schedule(&mut self) {
        self.schedule_deferred = true;
    }

    pub(crate) fn reindex(&mut self) {
        self.schedule = self.timers.values().map(|t| (t.due_at, t.order)).collect();
        self.schedule_deferred = false;
    }

    /// Timers due at `now` or before, earliest first, at most `limit`.
    pub fn due(&self, now: DateTime<Utc>, limit: usize) -> Vec<DueTimer> {
        self.due_after(now, None, limit)
    }

    /// As `due`, from the timer after `after` on: the next page of a backlog, which a page
    /// of timers refused again and again would otherwise hide.
    pub fn due_after(
        &self,
        now: DateTime<Utc>,
        after: Option<&DueTimer>,
        limit: usize,
    ) -> Vec<DueTimer> {
        let from = match after {
            Some(timer) => Bound::Excluded((timer.due_at, timer.order)),
            None => Bound::Unbounded,
        };
        self.schedule
            .range((from, Bound::Unbounded))
            .take_while(|(due_at, _)| *due_at <= now)
            .filter_map(|(_, order)| self.timers.get(order).copied())
            .take(limit)
            .collect()
    }

    /// How many timers are due at `now`: more than a page of them is a backlog, and one
    /// that stays is a timer whose command keeps being refused.
    pub fn due_count(&self, now: DateTime<Utc>) -> usize {
        self.schedule
            .iter()
            .take_while(|(due_at, _)| *due_at <= now)
            .count()
    }

    pub fn timer(&self, order: OrderId) -> Option<DueTimer> {
        self.timers.get(&order).copied()
    }

    pub fn pending(&self) -> usize {
        self.timers.len()
    }
}
