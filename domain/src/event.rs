//! Events: immutable facts, past tense. Each carries every amount and instant a view needs
//! (escrow after, commission, refund, release, deadlines), so that no view ever re-decides with
//! today's policy. Type names are stable; a changed shape gets a new schema version.

use crate::command::{ExtraKind, Resolution};
use crate::ids::{Actor, OrderId, Party, UserId};
use crate::money::Money;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Schema version of every event type written by this code. Readers refuse a newer one.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub buyer: UserId,
    pub seller: UserId,
    pub title: String,
    pub price: Money,
    pub delivery_days: u32,
    /// The platform's rate in force when the order was placed; every release uses it.
    pub commission_rate: Decimal,
    /// The seller must confirm before this instant or the order expires.
    #[serde(with = "crate::instant")]
    pub confirm_by: DateTime<Utc>,
    pub escrow_after: Money,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderConfirmed {
    #[serde(with = "crate::instant")]
    pub due_at: DateTime<Utc>,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderDelivered {
    /// 1 for the first delivery, 2 for the first redelivery, and so on.
    pub delivery_number: u32,
    pub redelivery: bool,
    pub late: bool,
    #[serde(with = "crate::instant")]
    pub due_at: DateTime<Utc>,
    /// The order closes by itself at this instant if the buyer does nothing.
    #[serde(with = "crate::instant")]
    pub auto_close_at: DateTime<Utc>,
    pub message: String,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionRequested {
    pub reason: String,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionAccepted {
    #[serde(with = "crate::instant")]
    pub due_at: DateTime<Utc>,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionRefused {
    pub reason: String,
    /// The buyer may close or dispute until this instant; then the order auto-closes. [seed 001]
    #[serde(with = "crate::instant")]
    pub decision_deadline: DateTime<Utc>,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraPurchased {
    pub kind: ExtraKind,
    pub description: String,
    pub price: Money,
    pub extra_days: u32,
    /// The delivery deadline after the extra's days were added.
    #[serde(with = "crate::instant")]
    pub due_at: DateTime<Utc>,
    pub escrow_after: Money,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineExtended {
    #[serde(with = "crate::instant")]
    pub previous_due_at: DateTime<Utc>,
    #[serde(with = "crate::instant")]
    pub due_at: DateTime<Utc>,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancellationRequested {
    pub requested_by: Party,
    pub reason: String,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancellationWithdrawn {
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialRefundIssued {
    /// Credited to the buyer's wallet.
    pub amount: Money,
    pub reason: String,
    pub escrow_after: Money,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeOpened {
    pub opened_by: Party,
    pub reason: String,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

/// The mediator's ruling. The money moves in the events that follow it in the same append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeResolved {
    pub resolution: Resolution,
    pub note: String,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseCause {
    ClosedByBuyer,
    AutoClosedAfterDelivery,
    AutoClosedAfterRefusedRevision,
    DisputeReleased,
    DisputeSplit,
}

impl CloseCause {
    pub const ALL: [CloseCause; 5] = [
        CloseCause::ClosedByBuyer,
        CloseCause::AutoClosedAfterDelivery,
        CloseCause::AutoClosedAfterRefusedRevision,
        CloseCause::DisputeReleased,
        CloseCause::DisputeSplit,
    ];
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderClosed {
    pub cause: CloseCause,
    /// All that escrow held, leaving it; `seller_credit + commission == released`.
    pub released: Money,
    pub commission: Money,
    pub seller_credit: Money,
    pub escrow_after: Money,
    /// Reviews are accepted strictly before this instant: the end of the last calendar day.
    #[serde(with = "crate::instant")]
    pub review_closes_at: DateTime<Utc>,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationCause {
    CancelledByBuyerBeforeConfirmation,
    DeclinedBySeller,
    ExpiredUnconfirmed,
    CancelledBySeller,
    CancelledByBuyerWhenLate,
    Mutual,
    DisputeRefunded,
}

impl CancellationCause {
    pub const ALL: [CancellationCause; 7] = [
        CancellationCause::CancelledByBuyerBeforeConfirmation,
        CancellationCause::DeclinedBySeller,
        CancellationCause::ExpiredUnconfirmed,
        CancellationCause::CancelledBySeller,
        CancellationCause::CancelledByBuyerWhenLate,
        CancellationCause::Mutual,
        CancellationCause::DisputeRefunded,
    ];

    /// Whether this cancellation lowers the seller's completion rate (DOMAIN.md, "Views").
    pub fn counts_against_seller(self) -> bool {
        match self {
            CancellationCause::CancelledBySeller
            | CancellationCause::CancelledByBuyerWhenLate
            | CancellationCause::ExpiredUnconfirmed
            | CancellationCause::DisputeRefunded => true,
            CancellationCause::CancelledByBuyerBeforeConfirmation
            | CancellationCause::DeclinedBySeller
            | CancellationCause::Mutual => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    pub cause: CancellationCause,
    /// Written down so that the completion rate never re-decides with newer rules.
    pub counts_against_seller: bool,
    /// All that escrow held, back to the buyer's wallet credit.
    pub refund: Money,
    pub reason: String,
    pub escrow_after: Money,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewLeft {
    pub rating: u8,
    pub comment: Option<String>,
    pub by: Actor,
    #[serde(with = "crate::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    OrderPlaced(OrderPlaced),
    OrderConfirmed(OrderConfirmed),
    OrderDelivered(OrderDelivered),
    RevisionRequested(RevisionRequested),
    RevisionAccepted(RevisionAccepted),
    RevisionRefused(RevisionRefused),
    ExtraPurchased(ExtraPurchased),
    DeadlineExtended(DeadlineExtended),
    CancellationRequested(CancellationRequested),
    CancellationWithdrawn(CancellationWithdrawn),
    PartialRefundIssued(PartialRefundIssued),
    DisputeOpened(DisputeOpened),
    DisputeResolved(DisputeResolved),
    OrderClosed(OrderClosed),
    OrderCancelled(OrderCancelled),
    ReviewLeft(ReviewLeft),
}

/// Every stable event type name, in lifecycle order.
pub const EVENT_TYPES: [&str; 16] = [
    "OrderPlaced",
    "OrderConfirmed",
    "OrderDelivered",
    "RevisionRequested",
    "RevisionAccepted",
    "RevisionRefused",
    "ExtraPurchased",
    "DeadlineExtended",
    "CancellationRequested",
    "CancellationWithdrawn",
    "PartialRefundIssued",
    "DisputeOpened",
    "DisputeResolved",
    "OrderClosed",
    "OrderCancelled",
    "ReviewLeft",
];

/// How an event moves money, for the views and the conservation check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoneyMovement {
    /// The buyer paid into the order's escrow.
    PaidIn(Money),
    /// Escrow went back to the buyer's wallet credit.
    RefundedToBuyer(Money),
    /// Escrow went to the seller's wallet, less the platform's commission.
    Released {
        seller_credit: Money,
        commission: Money,
    },
}

macro_rules! each_event {
    ($event:expr, $inner:ident => $body:expr) => {
        match $event {
            Event::OrderPlaced($inner) => $body,
            Event::OrderConfirmed($inner) => $body,
            Event::OrderDelivered($inner) => $body,
            Event::RevisionRequested($inner) => $body,
            Event::RevisionAccepted($inner) => $body,
            Event::RevisionRefused($inner) => $body,
            Event::ExtraPurchased($inner) => $body,
            Event::DeadlineExtended($inner) => $body,
            Event::CancellationRequested($inner) => $body,
            Event::CancellationWithdrawn($inner) => $body,
            Event::PartialRefundIssued($inner) => $body,
            Event::DisputeOpened($inner) => $body,
            Event::DisputeResolved($inner) => $body,
            Event::OrderClosed($inner) => $body,
            Event::OrderCancelled($inner) => $body,
            Event::ReviewLeft($inner) => $body,
        }
    };
}

impl Event {
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::OrderPlaced(_) => "OrderPlaced",
            Event::OrderConfirmed(_) => "OrderConfirmed",
            Event::OrderDelivered(_) => "OrderDelivered",
            Event::RevisionRequested(_) => "RevisionRequested",
            Event::RevisionAccepted(_) => "RevisionAccepted",
            Event::RevisionRefused(_) => "RevisionRefused",
            Event::ExtraPurchased(_) => "ExtraPurchased",
            Event::DeadlineExtended(_) => "DeadlineExtended",
            Event::CancellationRequested(_) => "CancellationRequested",
            Event::CancellationWithdrawn(_) => "CancellationWithdrawn",
            Event::PartialRefundIssued(_) => "PartialRefundIssued",
            Event::DisputeOpened(_) => "DisputeOpened",
            Event::DisputeResolved(_) => "DisputeResolved",
            Event::OrderClosed(_) => "OrderClosed",
            Event::OrderCancelled(_) => "OrderCancelled",
            Event::ReviewLeft(_) => "ReviewLeft",
        }
    }

    /// Every type is at version 1 today; an upcaster will key on (type, version).
    pub fn schema_version(&self) -> u32 {
        EVENT_SCHEMA_VERSION
    }

    pub fn by(&self) -> Actor {
        each_event!(self, e => e.by)
    }

    pub fn at(&self) -> DateTime<Utc> {
        each_event!(self, e => e.at)
    }

    pub fn money_movement(&self) -> Option<MoneyMovement> {
        match self {
            Event::OrderPlaced(e) => Some(MoneyMovement::PaidIn(e.price)),
            Event::ExtraPurchased(e) => Some(MoneyMovement::PaidIn(e.price)),
            Event::PartialRefundIssued(e) => Some(MoneyMovement::RefundedToBuyer(e.amount)),
            Event::OrderCancelled(e) => Some(MoneyMovement::RefundedToBuyer(e.refund)),
            Event::OrderClosed(e) => Some(MoneyMovement::Released {
                seller_credit: e.seller_credit,
                commission: e.commission,
            }),
            _ => None,
        }
    }
}

impl Event {
    /// Serialises the event's data alone (the store keeps the type beside it).
    pub fn serialize_data<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        each_event!(self, e => e.serialize(serializer))
    }

    /// Reads the data of an event of `event_type`, as the store returns it.
    pub fn deserialize_data<'de, D: serde::Deserializer<'de>>(
        event_type: &str,
        deserializer: D,
    ) -> Result<Event, D::Error> {
        use serde::de::Error;
        Ok(match event_type {
            "OrderPlaced" => Event::OrderPlaced(Deserialize::deserialize(deserializer)?),
            "OrderConfirmed" => Event::OrderConfirmed(Deserialize::deserialize(deserializer)?),
            "OrderDelivered" => Event::OrderDelivered(Deserialize::deserialize(deserializer)?),
            "RevisionRequested" => {
                Event::RevisionRequested(Deserialize::deserialize(deserializer)?)
            }
            "RevisionAccepted" => Event::RevisionAccepted(Deserialize::deserialize(deserializer)?),
            "RevisionRefused" => Event::RevisionRefused(Deserialize::deserialize(deserializer)?),
            "ExtraPurchased" => Event::ExtraPurchased(Deserialize::deserialize(deserializer)?),
            "DeadlineExtended" => Event::DeadlineExtended(Deserialize::deserialize(deserializer)?),
            "CancellationRequested" => {
                Event::CancellationRequested(Deserialize::deserialize(deserializer)?)
            }
            "CancellationWithdrawn" => {
                Event::CancellationWithdrawn(Deserialize::deserialize(deserializer)?)
            }
            "PartialRefundIssued" => {
                Event::PartialRefundIssued(Deserialize::deserialize(deserializer)?)
            }
            "DisputeOpened" => Event::DisputeOpened(Deserialize::deserialize(deserializer)?),
            "DisputeResolved" => Event::DisputeResolved(Deserialize::deserialize(deserializer)?),
            "OrderClosed" => Event::OrderClosed(Deserialize::deserialize(deserializer)?),
            "OrderCancelled" => Event::OrderCancelled(Deserialize::deserialize(deserializer)?),
            "ReviewLeft" => Event::ReviewLeft(Deserialize::deserialize(deserializer)?),
            unknown => return Err(D::Error::custom(format!("unknown event type `{unknown}`"))),
        })
    }
}

/// What the command pipeline records beside each event: which command produced it, in which
/// conversation, and who sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub schema_version: u32,
    pub command_id: uuid::Uuid,
    /// Fingerprint of the command's payload (without its instant), so that a reused command id
    /// with another payload is told apart from a retry.
    pub command_digest: String,
    pub correlation_id: uuid::Uuid,
    pub causation_id: uuid::Uuid,
    pub actor: Actor,
}
