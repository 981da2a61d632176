//! Why a command was refused. A rejection is an expected outcome, not a failure of the
//! service: it appends nothing, and its message is written for the mediator reading it.

use crate::command::CommandKind;
use crate::ids::{Party, Role, UserId};
use crate::money::{Currency, Money, MoneyError, NotPayable};
use crate::policy::PolicyError;
use crate::state::Status;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("a {role} cannot {} an order", command.verb())]
    RoleNotAllowed { role: Role, command: CommandKind },
    #[error("the order does not exist: it was never placed")]
    OrderNotFound,
    #[error("an order with this id has already been placed")]
    AlreadyPlaced,
    #[error("you are not the {party} of this order")]
    NotAParty { party: Party },
    #[error(
        "the order is in dispute: only a mediator can act on it until the dispute is resolved"
    )]
    OrderInDispute,
    #[error("the order is {status}: it can no longer be modified")]
    OrderFinished { status: Status },
    #[error("cannot {} an order that is {status}", command.verb())]
    WrongState {
        command: CommandKind,
        status: Status,
    },
    #[error("the command is dated {at}, before the order's last event at {last_event_at}")]
    ClockWentBackwards {
        at: DateTime<Utc>,
        last_event_at: DateTime<Utc>,
    },
    #[error("a buyer cannot cancel an order in progress without the seller's agreement until it is late; it is due at {due_at}")]
    NotLateYet { due_at: DateTime<Utc> },
    #[error("cannot {} before {deadline}", command.verb())]
    DeadlineNotReached {
        command: CommandKind,
        deadline: DateTime<Utc>,
    },
    #[error(
        "the buyer's window to decide closed at {deadline}; the order is due to close by itself"
    )]
    DecisionWindowClosed { deadline: DateTime<Utc> },
    #[error("{amount} exceeds the {escrow_held} held in escrow")]
    AmountExceedsEscrow { amount: Money, escrow_held: Money },
    #[error("refunding all {escrow_held} held in escrow is a cancellation (in a dispute, the outcome `refund`), not a partial refund")]
    RefundWouldEmptyEscrow { escrow_held: Money },
    #[error("{field} must be more than zero")]
    AmountNotPositive { field: &'static str },
    #[error("the order is in {expected}; an amount in {got} cannot be used on it")]
    CurrencyMismatch { expected: Currency, got: Currency },
    #[error("the review window closed at {closed_at}")]
    ReviewWindowClosed { closed_at: DateTime<Utc> },
    #[error("the buyer has already reviewed this order")]
    ReviewAlreadyLeft,
    #[error("a rating is from 1 to 5 (got {rating})")]
    RatingOutOfRange { rating: u8 },
    #[error("the {requested_by} has already asked to cancel this order")]
    CancellationAlreadyRequested { requested_by: Party },
    #[error("nobody has asked to cancel this order")]
    NoCancellationRequested,
    #[error("the other party must agree to a cancellation you asked for")]
    CannotAgreeToOwnRequest,
    #[error("only the {requested_by}, who asked, can withdraw the cancellation request")]
    NotTheRequester { requested_by: Party },
    #[error("the new deadline {requested} must be later than the current one, {current}")]
    DeadlineNotLater {
        current: DateTime<Utc>,
        requested: DateTime<Utc>,
    },
    #[error("the new deadline {requested} is already past (now {now})")]
    DeadlineInPast {
        requested: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("the new deadline {requested} is too far ahead: at most {latest}")]
    DeadlineTooFar {
        requested: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
    #[error("a buyer cannot order from themselves")]
    BuyerIsSeller,
    #[error("{field} cannot be empty")]
    TextEmpty { field: &'static str },
    #[error("{field} is longer than {chars_max} characters")]
    TextTooLong {
        field: &'static str,
        chars_max: usize,
    },
    #[error("{field} contains a control character ({}): {}", char_name(*character), if *single_line { "it is one line of text" } else { "only line breaks and tabs are allowed" })]
    TextControlCharacter {
        field: &'static str,
        character: char,
        single_line: bool,
    },
    #[error("{field} must be from {min} to {max} (got {value})")]
    DaysOutOfRange {
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("an order can have at most {max} extras")]
    TooManyExtras { max: u32 },
    #[error(
        "the {party} cannot be {}, the id the service's own timers act under",
        UserId::SYSTEM
    )]
    SystemUserId { party: &'static str },
    #[error("{currency} {why}")]
    CurrencyNotPayable { currency: Currency, why: NotPayable },
    #[error("the resulting date falls after 9999-12-31, the last day RFC 3339 can write")]
    InstantOutOfRange,
    #[error("the order's recorded state is inconsistent: {0} is missing")]
    InconsistentState(&'static str),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("the platform policy is invalid: {0}")]
    Policy(#[from] PolicyError),
}

impl Rejection {
    /// Who may act and on which order come before anything about the order's state: a
    /// caller refused for these hears only that (HTTP answers them before a precondition,
    /// RFC 9110 §13.2.1), and learns nothing of an order that is not theirs.
    pub fn denies_access(&self) -> bool {
        matches!(
            self,
            Rejection::RoleNotAllowed { .. }
                | Rejection::OrderNotFound
                | Rejection::NotAParty { .. }
                | Rejection::SystemUserId { .. }
        )
    }

    /// A stable machine-readable code, carried in API problem documents.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::RoleNotAllowed { .. } => "role_not_allowed",
            Rejection::OrderNotFound => "order_not_found",
            Rejection::AlreadyPlaced => "already_placed",
            Rejection::NotAParty { .. } => "not_a_party",
            Rejection::OrderInDispute => "order_in_dispute",
            Rejection::OrderFinished { .. } => "order_finished",
            Rejection::WrongState { .. } => "wrong_state",
            Rejection::ClockWentBackwards { .. } => "clock_went_backwards",
            Rejection::NotLateYet { .. } => "not_late_yet",
            Rejection::DeadlineNotReached { .. } => "deadline_not_reached",
            Rejection::DecisionWindowClosed { .. } => "decision_window_closed",
            Rejection::AmountExceedsEscrow { .. } => "amount_exceeds_escrow",
            Rejection::RefundWouldEmptyEscrow { .. } => "refund_would_empty_escrow",
            Rejection::AmountNotPositive { .. } => "amount_not_positive",
            Rejection::CurrencyMismatch { .. } => "currency_mismatch",
            Rejection::ReviewWindowClosed { .. } => "review_window_closed",
            Rejection::ReviewAlreadyLeft => "review_already_left",
            Rejection::RatingOutOfRange { .. } => "rating_out_of_range",
            Rejection::CancellationAlreadyRequested { .. } => "cancellation_already_requested",
            Rejection::NoCancellationRequested => "no_cancellation_requested",
            Rejection::CannotAgreeToOwnRequest => "cannot_agree_to_own_request",
            Rejection::NotTheRequester { .. } => "not_the_requester",
            Rejection::DeadlineNotLater { .. } => "deadline_not_later",
            Rejection::DeadlineInPast { .. } => "deadline_in_past",
            Rejection::DeadlineTooFar { .. } => "deadline_too_far",
            Rejection::BuyerIsSeller => "buyer_is_seller",
            Rejection::TextEmpty { .. } => "text_empty",
            Rejection::TextTooLong { .. } => "text_too_long",
            Rejection::TextControlCharacter { .. } => "text_control_character",
            Rejection::DaysOutOfRange { .. } => "days_out_of_range",
            Rejection::TooManyExtras { .. } => "too_many_extras",
            Rejection::CurrencyNotPayable { .. } => "currency_not_payable",
            Rejection::SystemUserId { .. } => "system_user_id",
            Rejection::InstantOutOfRange => "instant_out_of_range",
            Rejection::InconsistentState(_) => "inconsistent_state",
            Rejection::Money(_) => "invalid_money",
            Rejection::Policy(_) => "invalid_policy",
        }
    }
}

/// A control character as `U+0000`: printed as itself it would be invisible, or worse.
fn char_name(character: char) -> String {
    format!("U+{:04X}", u32::from(character))
}
