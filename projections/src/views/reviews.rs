//! Review windows: from close until six calendar months later (the instant is on the
//! `OrderClosed` event), whether a review was left, and the windows closing soon.

use crate::rows::Tracked;
use crate::Fact;
use chrono::{DateTime, Duration, Utc};
use ledger_domain::{Event, OrderId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Bound;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftReview {
    pub rating: u8,
    #[serde(with = "ledger_domain::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewWindow {
    pub order: OrderId,
    pub buyer: UserId,
    pub seller: UserId,
    #[serde(with = "ledger_domain::instant")]
    pub opens_at: DateTime<Utc>,
    /// Reviews are accepted strictly before this instant.
    #[serde(with = "ledger_domain::instant")]
    pub closes_at: DateTime<Utc>,
    pub review: Option<LeftReview>,
}

impl ReviewWindow {
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        self.review.is_none() && self.opens_at <= now && now < self.closes_at
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewView {
    windows: Tracked<OrderId, ReviewWindow>,
    // Invariant: holds exactly the orders not yet closed or cancelled.
    open_orders: Tracked<OrderId, (UserId, UserId)>,
    // Invariant: every window without a review, by when it closes; derived, rebuilt by
    // `reindex`. A reminder service asks for the few closing this week among every window
    // ever opened.
    #[serde(skip)]
    unreviewed: BTreeSet<(DateTime<Utc>, OrderId)>,
    // While set, `unreviewed` is left stale for `reindex` to build once (a full rebuild).
    #[serde(skip)]
    index_deferred: bool,
}

impl ReviewView {
    crate::rows::stored_tables!("windows" => windows, "open_orders" => open_orders);

    pub fn apply(&mut self, fact: &Fact) {
        match &fact.event {
            Event::OrderPlaced(e) => {
                self.open_orders.insert(fact.order, (e.buyer, e.seller));
            }
            Event::OrderCancelled(_) => {
                self.open_orders.remove(&fact.order);
            }
            Event::OrderClosed(e) => {
                if let Some((buyer, seller)) = self.open_orders.remove(&fact.order) {
                    let window = ReviewWindow {
                        order: fact.order,
                        buyer,
                        seller,
                        opens_at: e.at,
                        closes_at: e.review_closes_at,
                        review: None,
                    };
                    if !self.index_deferred {
                        self.unreviewed.insert((window.closes_at, fact.order));
                    }
                    self.windows.insert(fact.order, window);
                }
            }
            Event::ReviewLeft(e) => {
                if let Some(window) = self.windows.get_mut(&fact.order) {
                    if !self.index_deferred {
                        self.unreviewed.remove(&(window.closes_at, fact.order));
                    }
                    window.review = Some(LeftReview {
                        rating: e.rating,
                        at: e.at,
                    });
                }
            }
            _ => {}
        }
    }

    pub fn window(&self, order: OrderId) -> Option<&ReviewWindow> {
        self.windows.get(&order)
    }

    /// Open windows without a review that close within `days` of `now`, soonest first (by
    /// closing instant, then order id), after `after` in that order, at most `limit`.
    pub fn closing_within(
        &self,
        now: DateTime<Utc>,
        days: u32,
        after: Option<(DateTime<Utc>, OrderId)>,
        limit: usize,
    ) -> Vec<&ReviewWindow> {
        let horizon = horizon(now, days);
        // Closing after `now`: one closing at `now` is closed already.
        let open = (now, OrderId(Uuid::max()));
        let from = after.map_or(open, |after| after.max(open));
        self.unreviewed
            .range((Bound::Excluded(from), Bound::Unbounded))
            .take_while(|(closes_at, _)| *closes_at <= horizon)
            .filter_map(|(_, order)| self.windows.get(order))
            .filter(|window| window.is_open_at(now))
            .take(limit)
            .collect()
    }

    /// `closing_within` among `orders` only (one buyer's, say): its cost is theirs, not the
    /// windows closing meanwhile.
    pub fn closing_within_of(
        &self,
        orders: impl Iterator<Item = OrderId>,
        now: DateTime<Utc>,
        days: u32,
        after: Option<(DateTime<Utc>, OrderId)>,
        limit: usize,
    ) -> Vec<&ReviewWindow> {
        let horizon = horizon(now, days);
        let mut closing: Vec<&ReviewWindow> = orders
            .filter_map(|order| self.windows.get(&order))
            .filter(|w| w.is_open_at(now) && w.closes_at <= horizon)
            .filter(|w| after.is_none_or(|after| (w.closes_at, w.order) > after))
            .collect();
        closing.sort_unstable_by_key(|w| (w.closes_at, w.order));
        closing.truncate(limit);
        closing
    }

    pub(crate) fn defer_index(&mut self) {
        self.index_deferred = true;
    }

    pub(crate) fn reindex(&mut self) {
        let mut unreviewed: Vec<(DateTime<Utc>, OrderId)> = self
            .windows
            .iter()
            .filter(|(_, window)| window.review.is_none())
            .map(|(order, window)| (window.closes_at, *order))
            .collect();
        // Sorted first: a B-tree is built from a sorted run in one pass.
        unreviewed.sort_unstable();
        self.unreviewed = unreviewed.into_iter().collect();
        self.index_deferred = false;
    }
}

/// `days` from `now`, or the end of time when that is past it.
fn horizon(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    Duration::try_days(i64::from(days))
        .and_then(|span| now.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
