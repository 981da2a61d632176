//! Commands: what someone asks of an order. Each carries who asks (`by`) and when (`at`); the
//! domain never reads a clock, so the instant is part of the request.

use crate::ids::{Actor, OrderId, UserId};
use crate::money::Money;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraKind {
    /// One of the service's listed additional options.
    Option,
    /// A custom offer the seller made and the buyer accepted.
    CustomOffer,
}

/// How a mediator settles a dispute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Resolution {
    /// Everything in escrow goes to the seller; the order closes.
    Release,
    /// Everything in escrow goes back to the buyer; the order is cancelled, against the seller.
    Refund,
    /// `refund` goes back to the buyer, the rest to the seller; the order closes.
    Split { refund: Money },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    Place {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        order_id: OrderId,
        seller: UserId,
        title: String,
        price: Money,
        delivery_days: u32,
    },
    Confirm {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
    },
    Decline {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        reason: String,
    },
    Expire {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
    },
    Deliver {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        message: String,
    },
    RequestRevision {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        reason: String,
    },
    AcceptRevision {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        delivery_days: u32,
    },
    RefuseRevision {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        reason: String,
    },
    Close {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
    },
    AutoClose {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
    },
    BuyExtra {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        kind: ExtraKind,
        description: String,
        price: Money,
        extra_days: u32,
    },
    ExtendDeadline {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        #[serde(with = "crate::instant")]
        due_at: DateTime<Utc>,
    },
    Cancel {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        reason: String,
    },
    RequestCancellation {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        reason: String,
    },
    AgreeCancellation {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
    },
    WithdrawCancellation {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
    },
    PartialRefund {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        amount: Money,
        reason: String,
    },
    OpenDispute {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        reason: String,
    },
    ResolveDispute {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        resolution: Resolution,
        note: String,
    },
    LeaveReview {
        by: Actor,
        #[serde(with = "crate::instant")]
        at: DateTime<Utc>,
        rating: u8,
        comment: Option<String>,
    },
}

/// The kind of a command without its data: for the rules table, metrics and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Place,
    Confirm,
    Decline,
    Expire,
    Deliver,
    RequestRevision,
    AcceptRevision,
    RefuseRevision,
    Close,
    AutoClose,
    BuyExtra,
    ExtendDeadline,
    Cancel,
    RequestCancellation,
    AgreeCancellation,
    WithdrawCancellation,
    PartialRefund,
    OpenDispute,
    ResolveDispute,
    LeaveReview,
}

impl CommandKind {
    pub const ALL: [CommandKind; 20] = [
        CommandKind::Place,
        CommandKind::Confirm,
        CommandKind::Decline,
        CommandKind::Expire,
        CommandKind::Deliver,
        CommandKind::RequestRevision,
        CommandKind::AcceptRevision,
        CommandKind::RefuseRevision,
        CommandKind::Close,
        CommandKind::AutoClose,
        CommandKind::BuyExtra,
        CommandKind::ExtendDeadline,
        CommandKind::Cancel,
        CommandKind::RequestCancellation,
        CommandKind::AgreeCancellation,
        CommandKind::WithdrawCancellation,
        CommandKind::PartialRefund,
        CommandKind::OpenDispute,
        CommandKind::ResolveDispute,
        CommandKind::LeaveReview,
    ];

    /// The verb a mediator reads in a rejection: "cannot {verb} an order that is closed".
    pub fn verb(self) -> &'static str {
        match self {
            CommandKind::Place => "place",
            CommandKind::Confirm => "confirm",
            CommandKind::Decline => "decline",
            CommandKind::Expire => "expire",
            CommandKind::Deliver => "deliver",
            CommandKind::RequestRevision => "request a revision of",
            CommandKind::AcceptRevision => "accept a revision of",
            CommandKind::RefuseRevision => "refuse a revision of",
            CommandKind::Close => "close",
            CommandKind::AutoClose => "auto-close",
            CommandKind::BuyExtra => "buy an extra for",
            CommandKind::ExtendDeadline => "extend the deadline of",
            CommandKind::Cancel => "cancel",
            CommandKind::RequestCancellation => "request the cancellation of",
            CommandKind::AgreeCancellation => "agree to cancel",
            CommandKind::WithdrawCancellation => "withdraw a cancellation request on",
            CommandKind::PartialRefund => "partially refund",
            CommandKind::OpenDispute => "open a dispute on",
            CommandKind::ResolveDispute => "resolve a dispute on",
            CommandKind::LeaveReview => "review",
        }
    }
}

impl Command {
    pub fn by(&self) -> Actor {
        *self.envelope().0
    }

    pub fn at(&self) -> DateTime<Utc> {
        *self.envelope().1
    }

    /// Moves the command's instant; the pipeline uses it so that a command that lost a race
    /// takes effect after the event that won it.
    pub fn set_at(&mut self, instant: DateTime<Utc>) {
        match self {
            Command::Place { at, .. }
            | Command::Confirm { at, .. }
            | Command::Decline { at, .. }
            | Command::Expire { at, .. }
            | Command::Deliver { at, .. }
            | Command::RequestRevision { at, .. }
            | Command::AcceptRevision { at, .. }
            | Command::RefuseRevision { at, .. }
            | Command::Close { at, .. }
            | Command::AutoClose { at, .. }
            | Command::BuyExtra { at, .. }
            | Command::ExtendDeadline { at, .. }
            | Command::Cancel { at, .. }
            | Command::RequestCancellation { at, .. }
            | Command::AgreeCancellation { at, .. }
            | Command::WithdrawCancellation { at, .. }
            | Command::PartialRefund { at, .. }
            | Command::OpenDispute { at, .. }
            | Command::ResolveDispute { at, .. }
            | Command::LeaveReview { at, .. } => *at = instant,
        }
    }

    fn envelope(&self) -> (&Actor, &DateTime<Utc>) {
        match self {
            Command::Place { by, at, .. }
            | Command::Confirm { by, at }
            | Command::Decline { by, at, .. }
            | Command::Expire { by, at }
            | Command::Deliver { by, at, .. }
            | Command::RequestRevision { by, at, .. }
            | Command::AcceptRevision { by, at, .. }
            | Command::RefuseRevision { by, at, .. }
            | Command::Close { by, at }
            | Command::AutoClose { by, at }
            | Command::BuyExtra { by, at, .. }
            | Command::ExtendDeadline { by, at, .. }
            | Command::Cancel { by, at, .. }
            | Command::RequestCancellation { by, at, .. }
            | Command::AgreeCancellation { by, at }
            | Command::WithdrawCancellation { by, at }
            | Command::PartialRefund { by, at, .. }
            | Command::OpenDispute { by, at, .. }
            | Command::ResolveDispute { by, at, .. }
            | Command::LeaveReview { by, at, .. } => (by, at),
        }
    }

    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Place { .. } => CommandKind::Place,
            Command::Confirm { .. } => CommandKind::Confirm,
            Command::Decline { .. } => CommandKind::Decline,
            Command::Expire { .. } => CommandKind::Expire,
            Command::Deliver { .. } => CommandKind::Deliver,
            Command::RequestRevision { .. } => CommandKind::RequestRevision,
            Command::AcceptRevision { .. } => CommandKind::AcceptRevision,
            Command::RefuseRevision { .. } => CommandKind::RefuseRevision,
            Command::Close { .. } => CommandKind::Close,
            Command::AutoClose { .. } => CommandKind::AutoClose,
            Command::BuyExtra { .. } => CommandKind::BuyExtra,
            Command::ExtendDeadline { .. } => CommandKind::ExtendDeadline,
            Command::Cancel { .. } => CommandKind::Cancel,
            Command::RequestCancellation { .. } => CommandKind::RequestCancellation,
            Command::AgreeCancellation { .. } => CommandKind::AgreeCancellation,
            Command::WithdrawCancellation { .. } => CommandKind::WithdrawCancellation,
            Command::PartialRefund { .. } => CommandKind::PartialRefund,
            Command::OpenDispute { .. } => CommandKind::OpenDispute,
            Command::ResolveDispute { .. } => CommandKind::ResolveDispute,
            Command::LeaveReview { .. } => CommandKind::LeaveReview,
        }
    }
}
