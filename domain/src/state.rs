//! The order as its events left it, and `evolve`, which folds one event in.
//!
//! `evolve` holds no business rules: it writes down what the event says, so that the same
//! history always yields the same state whatever today's policy is.

use crate::command::ExtraKind;
use crate::event::*;
use crate::ids::{Actor, OrderId, Party, UserId};
use crate::money::{Currency, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    Placed,
    InProgress,
    Delivered,
    RevisionRequested,
    RevisionRefused,
    InDispute,
    Closed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Placed,
        Status::InProgress,
        Status::Delivered,
        Status::RevisionRequested,
        Status::RevisionRefused,
        Status::InDispute,
        Status::Closed,
        Status::Cancelled,
    ];

    /// Nothing changes an order after these but a buyer's review of a closed one.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Closed | Status::Cancelled)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Status::Placed => "placed and awaiting the seller's confirmation",
            Status::InProgress => "in progress",
            Status::Delivered => "delivered",
            Status::RevisionRequested => "awaiting the seller's answer to a revision request",
            Status::RevisionRefused => "awaiting the buyer's decision after a refused revision",
            Status::InDispute => "in dispute",
            Status::Closed => "closed",
            Status::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationRequest {
    pub requested_by: Party,
    pub reason: String,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extra {
    pub kind: ExtraKind,
    pub description: String,
    pub price: Money,
    pub extra_days: u32,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub rating: u8,
    pub comment: Option<String>,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

/// An order that exists: everything the rules need to decide the next command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub buyer: UserId,
    pub seller: UserId,
    pub title: String,
    pub price: Money,
    pub delivery_days: u32,
    pub commission_rate: Decimal,
    pub status: Status,
    // Invariant: never negative (Money cannot be); zero once Closed or Cancelled.
    pub escrow_held: Money,
    #[serde(with = "crate::instant")]
    pub placed_at: DateTime<Utc>,
    #[serde(with = "crate::instant")]
    pub confirm_by: DateTime<Utc>,
    #[serde(default, with = "crate::instant::option")]
    pub confirmed_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::instant::option")]
    pub due_at: Option<DateTime<Utc>>,
    pub deliveries: u32,
    pub last_delivery_late: Option<bool>,
    #[serde(default, with = "crate::instant::option")]
    pub auto_close_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::instant::option")]
    pub decision_deadline: Option<DateTime<Utc>>,
    pub extras: Vec<Extra>,
    pub refunded: Money,
    /// Boxed, as `review` is: few orders have one, and the orders view keeps every order's
    /// state in memory: inline, the two took 80 of its 432 bytes.
    pub pending_cancellation: Option<Box<CancellationRequest>>,
    pub dispute_opened_by: Option<Party>,
    /// Kept after the dispute is resolved, as `dispute_opened_by` is: mediators take the
    /// disputes that have waited longest first.
    #[serde(default, with = "crate::instant::option")]
    pub dispute_opened_at: Option<DateTime<Utc>>,
    /// Why it was opened, as the party said: what a mediator triages the queue by.
    pub dispute_reason: Option<String>,
    #[serde(default, with = "crate::instant::option")]
    pub closed_at: Option<DateTime<Utc>>,
    pub close_cause: Option<CloseCause>,
    #[serde(default, with = "crate::instant::option")]
    pub review_closes_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::instant::option")]
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancellation_cause: Option<CancellationCause>,
    pub review: Option<Box<Review>>,
    /// Instant of the latest event: commands dated before it are refused, so that an
    /// order's history reads in time order.
    #[serde(with = "crate::instant")]
    pub last_event_at: DateTime<Utc>,
    /// Events folded into this state so far.
    pub events: u64,
}

impl Order {
    pub fn currency(&self) -> Currency {
        self.price.currency()
    }

    /// Which side of this order `actor` is, if any.
    pub fn party_of(&self, actor: &Actor) -> Option<Party> {
        match actor.party_role()? {
            Party::Buyer if actor.user_id == self.buyer => Some(Party::Buyer),
            Party::Seller if actor.user_id == self.seller => Some(Party::Seller),
            _ => None,
        }
    }

    /// Late means past the delivery deadline while the work is still owed. [seed 000]
    pub fn is_late_at(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::InProgress && self.due_at.is_some_and(|due| now > due)
    }
}

/// An order's state: nothing before its `OrderPlaced`, then the order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    order: Option<Order>,
}

impl OrderState {
    pub fn new() -> OrderState {
        OrderState::default()
    }

    pub fn order(&self) -> Option<&Order> {
        self.order.as_ref()
    }

    pub fn status(&self) -> Option<Status> {
        self.order.as_ref().map(|o| o.status)
    }

    /// Folds a whole history, as a view or a replay does.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> OrderState {
        events.into_iter().fold(OrderState::new(), evolve)
    }
}

/// Folds one event into the state. Total: it never fails and never panics. An event that does
/// not fit (anything but `OrderPlaced` before the order exists) leaves the state as it was;
/// `check_event` is where such a history is called illegal.
pub fn evolve(mut state: OrderState, event: &Event) -> OrderState {
    state.apply(event);
    state
}

impl OrderState {
    /// `evolve` in place. An `Order` is some 400 bytes: moving it into and out of `evolve`
    /// for every event was a tenth of a rebuild's fold (docs/performance.md).
    pub fn apply(&mut self, event: &Event) {
        match (&mut self.order, event) {
            (None, Event::OrderPlaced(e)) => self.order = Some(placed(e)),
            (None, _) => {}
            (Some(order), event) => {
                let before = order.status;
                apply(order, event);
                if order.status != before {
                    // An unanswered cancellation request lapses when the order moves on. [DOMAIN]
                    order.pending_cancellation = None;
                }
                order.last_event_at = order.last_event_at.max(event.at());
                order.events += 1;
            }
        }
    }
}

fn placed(e: &OrderPlaced) -> Order {
    Order {
        id: e.order_id,
        buyer: e.buyer,
        seller: e.seller,
        title: e.title.clone(),
        price: e.price,
        delivery_days: e.delivery_days,
        commission_rate: e.commission_rate,
        status: Status::Placed,
        escrow_held: e.escrow_after,
        placed_at: e.at,
        confirm_by: e.confirm_by,
        confirmed_at: None,
        due_at: None,
        deliveries: 0,
        last_delivery_late: None,
        auto_close_at: None,
        decision_deadline: None,
        extras: Vec::new(),
        refunded: Money::zero(e.price.currency()),
        pending_cancellation: None,
        dispute_opened_by: None,
        dispute_opened_at: None,
        dispute_reason: None,
        closed_at: None,
        close_cause: None,
        review_closes_at: None,
        cancelled_at: None,
        cancellation_cause: None,
        review: None,
        last_event_at: e.at,
        events: 1,
    }
}

fn apply(order: &mut Order, event: &Event) {
    match event {
        // A second placement of the same stream is illegal history; keep the first.
        Event::OrderPlaced(_) => {}
        Event::OrderConfirmed(e) => {
            order.status = Status::InProgress;
            order.confirmed_at = Some(e.at);
            order.due_at = Some(e.due_at);
        }
        Event::OrderDelivered(e) => {
            order.status = Status::Delivered;
            order.deliveries = e.delivery_number;
            order.last_delivery_late = Some(e.late);
            order.auto_close_at = Some(e.auto_close_at);
        }
        Event::RevisionRequested(_) => order.status = Status::RevisionRequested,
        Event::RevisionAccepted(e) => {
            order.status = Status::InProgress;
            order.due_at = Some(e.due_at);
            order.auto_close_at = None;
        }
        Event::RevisionRefused(e) => {
            order.status = Status::RevisionRefused;
            order.decision_deadline = Some(e.decision_deadline);
        }
        Event::ExtraPurchased(e) => {
            order.extras.push(Extra {
                kind: e.kind,
                description: e.description.clone(),
                price: e.price,
                extra_days: e.extra_days,
                at: e.at,
            });
            order.due_at = Some(e.due_at);
            order.escrow_held = e.escrow_after;
        }
        Event::DeadlineExtended(e) => order.due_at = Some(e.due_at),
        Event::CancellationRequested(e) => {
            order.pending_cancellation = Some(Box::new(CancellationRequest {
                requested_by: e.requested_by,
                reason: e.reason.clone(),
                at: e.at,
            }));
        }
        Event::CancellationWithdrawn(_) => order.pending_cancellation = None,
        Event::PartialRefundIssued(e) => {
            order.escrow_held = e.escrow_after;
            // Saturating on a currency mix-up keeps evolve total; check_event reports it.
            order.refunded = order
                .refunded
                .checked_add(e.amount)
                .unwrap_or(order.refunded);
        }
        Event::DisputeOpened(e) => {
            order.status = Status::InDispute;
            order.dispute_opened_by = Some(e.opened_by);
            order.dispute_opened_at = Some(e.at);
            order.dispute_reason = Some(e.reason.clone());
        }
        Event::DisputeResolved(_) => {}
        Event::OrderClosed(e) => {
            order.status = Status::Closed;
            order.escrow_held = e.escrow_after;
            order.closed_at = Some(e.at);
            order.close_cause = Some(e.cause);
            order.review_closes_at = Some(e.review_closes_at);
        }
        Event::OrderCancelled(e) => {
            order.status = Status::Cancelled;
            order.escrow_held = e.escrow_after;
            order.refunded = order
                .refunded
                .checked_add(e.refund)
                .unwrap_or(order.refunded);
            order.cancelled_at = Some(e.at);
            order.cancellation_cause = Some(e.cause);
        }
        Event::ReviewLeft(e) => {
            order.review = Some(Box::new(Review {
                rating: e.rating,
                comment: e.comment.clone(),
                at: e.at,
            }));
        }
    }
}
