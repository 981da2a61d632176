//! The order summary and the lists per buyer, per seller and per state.

use crate::rows::{FastMap, Tracked};
use crate::Fact;
use chrono::{DateTime, Utc};
use ledger_domain::{Money, Order, OrderId, OrderState, Party, Status, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::hash::Hash;
use std::ops::Bound;

/// Most orders one page of a list returns.
pub const ORDER_PAGE_SIZE_MAX: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderSummary {
    pub order_id: OrderId,
    pub buyer: UserId,
    pub seller: UserId,
    pub title: String,
    pub status: Status,
    pub price: Money,
    pub extras_total: Money,
    pub escrow_held: Money,
    pub refunded: Money,
    #[serde(with = "ledger_domain::instant")]
    pub placed_at: DateTime<Utc>,
    /// The seller's deadline to confirm; like `auto_close_at` and `decision_deadline`, only
    /// while it can still act, so that a finished order shows no deadline pending.
    #[serde(default, with = "ledger_domain::instant::option")]
    pub confirm_by: Option<DateTime<Utc>>,
    #[serde(default, with = "ledger_domain::instant::option")]
    pub due_at: Option<DateTime<Utc>>,
    /// Late now (in progress past its deadline) or delivered late.
    pub late: bool,
    pub deliveries: u32,
    #[serde(default, with = "ledger_domain::instant::option")]
    pub auto_close_at: Option<DateTime<Utc>>,
    #[serde(default, with = "ledger_domain::instant::option")]
    pub decision_deadline: Option<DateTime<Utc>>,
    pub cancellation_requested_by: Option<Party>,
    pub dispute_opened_by: Option<Party>,
    /// Kept once the dispute is resolved: how long it took is part of the order's story.
    #[serde(default, with = "ledger_domain::instant::option")]
    pub dispute_opened_at: Option<DateTime<Utc>>,
    pub dispute_reason: Option<String>,
    #[serde(default, with = "ledger_domain::instant::option")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default, with = "ledger_domain::instant::option")]
    pub cancelled_at: Option<DateTime<Utc>>,
    pub review_rating: Option<u8>,
    /// The instant of the order's latest event: when anyone last acted on it.
    #[serde(with = "ledger_domain::instant")]
    pub last_event_at: DateTime<Utc>,
    /// Events folded into this summary: the order stream's revision + 1.
    pub events: u64,
}

impl OrderSummary {
    pub fn of(order: &Order, now: DateTime<Utc>) -> OrderSummary {
        let extras_total = order
            .extras
            .iter()
            .try_fold(Money::zero(order.currency()), |sum, e| {
                sum.checked_add(e.price)
            })
            .unwrap_or(Money::zero(order.currency()));
        OrderSummary {
            order_id: order.id,
            buyer: order.buyer,
            seller: order.seller,
            title: order.title.clone(),
            status: order.status,
            price: order.price,
            extras_total,
            escrow_held: order.escrow_held,
            refunded: order.refunded,
            placed_at: order.placed_at,
            confirm_by: (order.status == Status::Placed).then_some(order.confirm_by),
            due_at: order.due_at,
            late: order.is_late_at(now) || order.last_delivery_late == Some(true),
            deliveries: order.deliveries,
            auto_close_at: order
                .auto_close_at
                .filter(|_| order.status == Status::Delivered),
            decision_deadline: order
                .decision_deadline
                .filter(|_| order.status == Status::RevisionRefused),
            cancellation_requested_by: order.pending_cancellation.as_ref().map(|c| c.requested_by),
            dispute_opened_by: order.dispute_opened_by,
            dispute_opened_at: order.dispute_opened_at,
            dispute_reason: order.dispute_reason.clone(),
            closed_at: order.closed_at,
            cancelled_at: order.cancelled_at,
            review_rating: order.review.as_ref().map(|r| r.rating),
            last_event_at: order.last_event_at,
            events: order.events,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub buyer: Option<UserId>,
    pub seller: Option<UserId>,
    pub status: Option<Status>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
    /// Pass back as `cursor` for the next page; None on the last page.
    pub next_cursor: Option<OrderId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Boxed: the map's entries are 24 bytes, not 416, so that growing it moves and faults in
    /// a small table instead of every state (docs/performance.md).
    orders: Tracked<OrderId, Box<OrderState>>,
    // Invariant: the ids of `orders`, in order, for the lists; and the orders of each buyer
    // and seller. Derived, rebuilt by `reindex`.
    #[serde(skip)]
    ids: BTreeSet<OrderId>,
    #[serde(skip)]
    by_buyer: FastMap<UserId, BTreeSet<OrderId>>,
    #[serde(skip)]
    by_seller: FastMap<UserId, BTreeSet<OrderId>>,
    // Invariant: each order under its status, and no empty set; so that a mediator's list of
    // the few disputes open reads those, not every order (a scan took 21 ms for 200,000).
    #[serde(skip)]
    by_status: FastMap<Status, BTreeSet<OrderId>>,
    // Invariant: the orders in dispute by when their dispute opened, for a mediator's queue
    // longest waiting first.
    #[serde(skip)]
    by_dispute_opened: BTreeSet<(DateTime<Utc>, OrderId)>,
    // While set, the lists are left stale, for `reindex` to rebuild once: see
    // `Views::defer_indexes`.
    #[serde(skip)]
    lists_deferred: bool,
}

impl OrderView {
    crate::rows::stored_tables!("orders" => orders);

    pub fn apply(&mut self, fact: &Fact) {
        let state = self.orders.get_or_default(&fact.order);
        if self.lists_deferred {
            state.apply(&fact.event);
            return;
        }
        let before = state.status();
        state.apply(&fact.event);
        let after = state.status();
        let placed = state.order().is_some();
        if before != after {
            // Kept once the dispute ends, so it names the entry to remove as well.
            let dispute_opened_at = state.order().and_then(|o| o.dispute_opened_at);
            self.move_status(fact.order, before, after, dispute_opened_at);
        }
        if let (ledger_domain::Event::OrderPlaced(e), true) = (&fact.event, placed) {
            self.ids.insert(fact.order);
            self.by_buyer.entry(e.buyer).or_default().insert(fact.order);
            self.by_seller
                .entry(e.seller)
                .or_default()
                .insert(fact.order);
        }
    }

    fn move_status(
        &mut self,
        order: OrderId,
        from: Option<Status>,
        to: Option<Status>,
        dispute_opened_at: Option<DateTime<Utc>>,
    ) {
        if let Some(opened_at) = dispute_opened_at {
            if from == Some(Status::InDispute) {
                self.by_dispute_opened.remove(&(opened_at, order));
            }
            if to == Some(Status::InDispute) {
                self.by_dispute_opened.insert((opened_at, order));
            }
        }
        if let Some(from) = from {
            if let Some(orders) = self.by_status.get_mut(&from) {
                orders.remove(&order);
                if orders.is_empty() {
                    self.by_status.remove(&from);
                }
            }
        }
        if let Some(to) = to {
            self.by_status.entry(to).or_default().insert(order);
        }
    }

    pub(crate) fn defer_lists(&mut self) {
        self.lists_deferred = true;
    }

    /// Sorts first and builds each set from a sorted run, which a B-tree loads in one pass:
    /// inserting the ids in the map's order missed the cache at every level (13% of a
    /// start with 2,000,000 orders).
    pub(crate) fn reindex(&mut self) {
        let placed = self.orders.len();
        let (mut ids, mut buyers, mut sellers, mut statuses) = (
            Vec::with_capacity(placed),
            Vec::with_capacity(placed),
            Vec::with_capacity(placed),
            Vec::with_capacity(placed),
        );
        let mut disputes = Vec::new();
        for (id, state) in self.orders.iter() {
            if let Some(order) = state.order() {
                ids.push(*id);
                buyers.push((order.buyer, *id));
                sellers.push((order.seller, *id));
                statuses.push((order.status, *id));
                if let (Status::InDispute, Some(opened_at)) =
                    (order.status, order.dispute_opened_at)
                {
                    disputes.push((opened_at, *id));
                }
            }
        }
        ids.sort_unstable();
        self.ids = ids.into_iter().collect();
        disputes.sort_unstable();
        self.by_dispute_opened = disputes.into_iter().collect();
        self.by_buyer = grouped(buyers);
        self.by_seller = grouped(sellers);
        self.by_status = grouped(statuses);
        self.lists_deferred = false;
    }

    /// The buyer's orders, in order-id order.
    pub fn orders_of_buyer(&self, buyer: UserId) -> impl Iterator<Item = OrderId> + '_ {
        self.by_buyer.get(&buyer).into_iter().flatten().copied()
    }

    pub fn order(&self, order: OrderId) -> Option<&Order> {
        self.orders.get(&order).and_then(|state| state.order())
    }

    pub fn summary(&self, order: OrderId, now: DateTime<Utc>) -> Option<OrderSummary> {
        self.order(order).map(|o| OrderSummary::of(o, now))
    }

    /// Orders matching `filter`, in order-id order, after `after`, at most `limit`.
    pub fn list(
        &self,
        filter: &OrderFilter,
        after: Option<OrderId>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> OrderPage {
        let limit = limit.clamp(1, ORDER_PAGE_SIZE_MAX);
        // The smallest set that holds every match, read from the cursor on.
        let set = match (filter.buyer, filter.seller, filter.status) {
            (Some(buyer), _, _) => self.by_buyer.get(&buyer),
            (None, Some(seller), _) => self.by_seller.get(&seller),
            (None, None, Some(status)) => self.by_status.get(&status),
            (None, None, None) => Some(&self.ids),
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let candidates = set
            .into_iter()
            .flat_map(|set| set.range((from, Bound::Unbounded)))
            .copied();
        let mut orders = Vec::new();
        let mut next_cursor = None;
        for id in candidates {
            let Some(order) = self.order(id) else {
                continue;
            };
            let matches = filter.seller.is_none_or(|s| order.seller == s)
                && filter.buyer.is_none_or(|b| order.buyer == b)
                && filter.status.is_none_or(|s| order.status == s);
            if !matches {
                continue;
            }
            if orders.len() == limit {
                next_cursor = orders.last().map(|o: &OrderSummary| o.order_id);
                break;
            }
            orders.push(OrderSummary::of(order, now));
        }
        OrderPage {
            orders,
            next_cursor,
        }
    }

    /// The orders in dispute, the longest waiting first (by when the dispute opened, then
    /// order id), after `after`, at most `limit`.
    pub fn disputes_waiting(
        &self,
        after: Option<(DateTime<Utc>, OrderId)>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Vec<OrderSummary> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.by_dispute_opened
            .range((from, Bound::Unbounded))
            .filter_map(|(_, id)| self.summary(*id, now))
            .take(limit)
            .collect()
    }

    /// How many disputes are open, and when the longest waiting of them opened.
    pub fn disputes_open(&self) -> (usize, Option<DateTime<Utc>>) {
        let oldest = self
            .by_dispute_opened
            .first()
            .map(|(opened_at, _)| *opened_at);
        (self.by_dispute_opened.len(), oldest)
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }
}

/// Each key's orders (a user's, a status's), from (key, order) pairs.
fn grouped<K: Copy + Ord + Hash>(mut pairs: Vec<(K, OrderId)>) -> FastMap<K, BTreeSet<OrderId>> {
    pairs.sort_unstable();
    let mut by_key = FastMap::default();
    for run in pairs.chunk_by(|a, b| a.0 == b.0) {
        by_key.insert(run[0].0, run.iter().map(|(_, order)| *order).collect());
    }
    by_key
}
