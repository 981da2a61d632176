//! `decide`: every business rule of DOMAIN.md. Given the order's state, a command and the
//! policy, it returns the events to append or the rule that refuses the command.
//!
//! Checks run in a fixed order, so a command that breaks several rules gets the most basic
//! reason: role, existence, party, instant, dispute, terminal state, state, then the
//! command's own rules.

use crate::command::{Command, CommandKind, ExtraKind, Resolution};
use crate::event::*;
use crate::ids::{Actor, Party, Role, UserId};
use crate::instant;
use crate::money::Money;
use crate::policy::*;
use crate::rejection::Rejection;
use crate::state::{Order, OrderState, Status};
use chrono::{DateTime, Days, Months, Utc};

type Decision = Result<Vec<Event>, Rejection>;

/// Roles that may send each command at all (DOMAIN.md, "Who acts").
pub fn roles_allowed(kind: CommandKind) -> &'static [Role] {
    use CommandKind::*;
    match kind {
        Place | RequestRevision | Close | BuyExtra | ExtendDeadline | LeaveReview => &[Role::Buyer],
        Confirm | Decline | Deliver | AcceptRevision | RefuseRevision | PartialRefund => {
            &[Role::Seller]
        }
        Cancel | RequestCancellation | AgreeCancellation | WithdrawCancellation | OpenDispute => {
            &[Role::Buyer, Role::Seller]
        }
        Expire | AutoClose => &[Role::System],
        ResolveDispute => &[Role::Mediator],
    }
}

/// The states work is under way in: where extras, refunds, disputes and cancellations apply.
pub const ACTIVE_STATES: [Status; 4] = [
    Status::InProgress,
    Status::Delivered,
    Status::RevisionRequested,
    Status::RevisionRefused,
];

/// States each command may start from, for the given role (only `Cancel` depends on it).
pub fn states_allowed(kind: CommandKind, role: Role) -> &'static [Status] {
    use CommandKind::*;
    match kind {
        Place => &[],
        Confirm | Decline | Expire => &[Status::Placed],
        Deliver | ExtendDeadline => &[Status::InProgress],
        RequestRevision => &[Status::Delivered],
        AcceptRevision | RefuseRevision => &[Status::RevisionRequested],
        Close | AutoClose => &[Status::Delivered, Status::RevisionRefused],
        Cancel if role == Role::Buyer => &[Status::Placed, Status::InProgress],
        Cancel | BuyExtra | RequestCancellation | AgreeCancellation | WithdrawCancellation
        | PartialRefund | OpenDispute => &ACTIVE_STATES,
        ResolveDispute => &[Status::InDispute],
        LeaveReview => &[Status::Closed],
    }
}

pub fn decide(state: &OrderState, command: &Command, policy: &Policy) -> Decision {
    policy.validate()?;
    let kind = command.kind();
    let by = command.by();
    if !roles_allowed(kind).contains(&by.role) {
        return Err(Rejection::RoleNotAllowed {
            role: by.role,
            command: kind,
        });
    }
    // The audit trail tells the timers' acts from people's by this id.
    if by.user_id == UserId::SYSTEM && by.role != Role::System {
        return Err(Rejection::SystemUserId { party: "caller" });
    }
    match (state.order(), command) {
        (None, Command::Place { .. }) => place(command, policy),
        (Some(_), Command::Place { .. }) => Err(Rejection::AlreadyPlaced),
        (None, _) => Err(Rejection::OrderNotFound),
        (Some(order), _) => {
            admit(order, kind, &by, command.at())?;
            decide_on(order, command, policy)
        }
    }
}

/// The checks every command on an existing order passes before its own rules.
fn admit(order: &Order, kind: CommandKind, by: &Actor, at: DateTime<Utc>) -> Result<(), Rejection> {
    if let Some(party) = by.party_role() {
        if order.party_of(by).is_none() {
            return Err(Rejection::NotAParty { party });
        }
    }
    if at < order.last_event_at {
        return Err(Rejection::ClockWentBackwards {
            at,
            last_event_at: order.last_event_at,
        });
    }
    let status = order.status;
    if status == Status::InDispute && kind != CommandKind::ResolveDispute {
        return Err(Rejection::OrderInDispute);
    }
    let reviewing_closed = kind == CommandKind::LeaveReview && status == Status::Closed;
    if status.is_terminal() && !reviewing_closed {
        return Err(Rejection::OrderFinished { status });
    }
    if !states_allowed(kind, by.role).contains(&status) {
        return Err(Rejection::WrongState {
            command: kind,
            status,
        });
    }
    Ok(())
}

fn decide_on(order: &Order, command: &Command, policy: &Policy) -> Decision {
    match command {
        Command::Place { .. } => Err(Rejection::AlreadyPlaced),
        Command::Confirm { by, at } => confirm(order, *by, *at),
        Command::Decline { by, at, reason } => {
            let reason = required_text("reason", reason, REASON_CHARS_MAX)?;
            Ok(vec![cancelled(
                order,
                CancellationCause::DeclinedBySeller,
                reason,
                *by,
                *at,
            )])
        }
        Command::Expire { by, at } => expire(order, *by, *at),
        Command::Deliver { by, at, message } => deliver(order, message, *by, *at, policy),
        Command::RequestRevision { by, at, reason } => request_revision(order, reason, *by, *at),
        Command::AcceptRevision {
            by,
            at,
            delivery_days,
        } => accept_revision(*delivery_days, *by, *at),
        Command::RefuseRevision { by, at, reason } => refuse_revision(reason, *by, *at, policy),
        Command::Close { by, at } => close(order, CloseCause::ClosedByBuyer, *by, *at, policy),
        Command::AutoClose { by, at } => auto_close(order, *by, *at, policy),
        Command::BuyExtra {
            by,
            at,
            kind,
            description,
            price,
            extra_days,
        } => buy_extra(order, *kind, description, *price, *extra_days, *by, *at),
        Command::ExtendDeadline { by, at, due_at } => extend_deadline(order, *due_at, *by, *at),
        Command::Cancel { by, at, reason } => cancel(order, reason, *by, *at),
        Command::RequestCancellation { by, at, reason } => {
            request_cancellation(order, reason, *by, *at)
        }
        Command::AgreeCancellation { by, at } => agree_cancellation(order, *by, *at),
        Command::WithdrawCancellation { by, at } => withdraw_cancellation(order, *by, *at),
        Command::PartialRefund {
            by,
            at,
            amount,
            reason,
        } => {
            let reason = required_text("reason", reason, REASON_CHARS_MAX)?;
            let refund = partial_refund(order, *amount, reason, *by, *at)?;
            Ok(vec![Event::PartialRefundIssued(refund)])
        }
        Command::OpenDispute { by, at, reason } => open_dispute(order, reason, *by, *at),
        Command::ResolveDispute {
            by,
            at,
            resolution,
            note,
        } => resolve_dispute(order, *resolution, note, *by, *at, policy),
        Command::LeaveReview {
            by,
            at,
            rating,
            comment,
        } => leave_review(order, *rating, comment.as_deref(), *by, *at),
    }
}

fn place(command: &Command, policy: &Policy) -> Decision {
    let Command::Place {
        by,
        at,
        order_id,
        seller,
        title,
        price,
        delivery_days,
    } = command
    else {
        return Err(Rejection::OrderNotFound);
    };
    if by.user_id == *seller {
        return Err(Rejection::BuyerIsSeller);
    }
    if *seller == UserId::SYSTEM {
        return Err(Rejection::SystemUserId { party: "seller" });
    }
    let title = single_line("title", title, TITLE_CHARS_MAX)?;
    positive("price", price)?;
    let currency = price.currency();
    if let Some(why) = currency.not_payable() {
        return Err(Rejection::CurrencyNotPayable { currency, why });
    }
    days_in_range("delivery_days", *delivery_days, 1, DELIVERY_DAYS_MAX)?;
    Ok(vec![Event::OrderPlaced(OrderPlaced {
        order_id: *order_id,
        buyer: by.user_id,
        seller: *seller,
        title,
        price: *price,
        delivery_days: *delivery_days,
        commission_rate: policy.commission_rate,
        confirm_by: days_after(*at, policy.confirmation_window_days)?,
        escrow_after: *price,
        by: *by,
        at: *at,
    })])
}

fn confirm(order: &Order, by: Actor, at: DateTime<Utc>) -> Decision {
    // The deadline runs from confirmation, not placement. [seed 000]
    let due_at = days_after(at, order.delivery_days)?;
    Ok(vec![Event::OrderConfirmed(OrderConfirmed {
        due_at,
        by,
        at,
    })])
}

fn expire(order: &Order, by: Actor, at: DateTime<Utc>) -> Decision {
    deadline_reached(CommandKind::Expire, order.confirm_by, at)?;
    let reason = "the seller did not confirm the order in time".to_owned();
    Ok(vec![cancelled(
        order,
        CancellationCause::ExpiredUnconfirmed,
        reason,
        by,
        at,
    )])
}

fn deliver(
    order: &Order,
    message: &str,
    by: Actor,
    at: DateTime<Utc>,
    policy: &Policy,
) -> Decision {
    let message = optional_text("message", message, REASON_CHARS_MAX)?;
    let due_at = order.due_at.ok_or(Rejection::InconsistentState("due_at"))?;
    Ok(vec![Event::OrderDelivered(OrderDelivered {
        delivery_number: order.deliveries + 1,
        redelivery: order.deliveries > 0,
        late: at > due_at,
        due_at,
        auto_close_at: days_after(at, policy.acceptance_window_days)?,
        message,
        by,
        at,
    })])
}

fn request_revision(order: &Order, reason: &str, by: Actor, at: DateTime<Utc>) -> Decision {
    buyer_still_deciding(order, at)?;
    let reason = required_text("reason", reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::RevisionRequested(RevisionRequested {
        reason,
        by,
        at,
    })])
}

fn accept_revision(delivery_days: u32, by: Actor, at: DateTime<Utc>) -> Decision {
    days_in_range("delivery_days", delivery_days, 1, DELIVERY_DAYS_MAX)?;
    let due_at = days_after(at, delivery_days)?;
    Ok(vec![Event::RevisionAccepted(RevisionAccepted {
        due_at,
        by,
        at,
    })])
}

fn refuse_revision(reason: &str, by: Actor, at: DateTime<Utc>, policy: &Policy) -> Decision {
    let reason = required_text("reason", reason, REASON_CHARS_MAX)?;
    let decision_deadline = days_after(at, policy.decision_window_days)?;
    Ok(vec![Event::RevisionRefused(RevisionRefused {
        reason,
        decision_deadline,
        by,
        at,
    })])
}

fn close(
    order: &Order,
    cause: CloseCause,
    by: Actor,
    at: DateTime<Utc>,
    policy: &Policy,
) -> Decision {
    Ok(vec![Event::OrderClosed(released(
        order,
        order.escrow_held,
        cause,
        by,
        at,
        policy,
    )?)])
}

fn auto_close(order: &Order, by: Actor, at: DateTime<Utc>, policy: &Policy) -> Decision {
    let (deadline, cause) = match order.status {
        Status::Delivered => (order.auto_close_at, CloseCause::AutoClosedAfterDelivery),
        _ => (
            order.decision_deadline,
            CloseCause::AutoClosedAfterRefusedRevision,
        ),
    };
    let deadline = deadline.ok_or(Rejection::InconsistentState("auto-close deadline"))?;
    deadline_reached(CommandKind::AutoClose, deadline, at)?;
    close(order, cause, by, at, policy)
}

fn buy_extra(
    order: &Order,
    kind: ExtraKind,
    description: &str,
    price: Money,
    extra_days: u32,
    by: Actor,
    at: DateTime<Utc>,
) -> Decision {
    let description = required_text("description", description, EXTRA_DESCRIPTION_CHARS_MAX)?;
    same_currency(order, &price)?;
    positive("price", &price)?;
    days_in_range("extra_days", extra_days, 0, EXTRA_DAYS_MAX)?;
    if order.extras.len() >= EXTRAS_PER_ORDER_MAX as usize {
        return Err(Rejection::TooManyExtras {
            max: EXTRAS_PER_ORDER_MAX,
        });
    }
    let due_before = order.due_at.ok_or(Rejection::InconsistentState("due_at"))?;
    Ok(vec![Event::ExtraPurchased(ExtraPurchased {
        kind,
        description,
        price,
        extra_days,
        due_at: days_after(due_before, extra_days)?,
        escrow_after: order.escrow_held.checked_add(price)?,
        by,
        at,
    })])
}

fn extend_deadline(order: &Order, due_at: DateTime<Utc>, by: Actor, at: DateTime<Utc>) -> Decision {
    let current = order.due_at.ok_or(Rejection::InconsistentState("due_at"))?;
    if due_at <= current {
        return Err(Rejection::DeadlineNotLater {
            current,
            requested: due_at,
        });
    }
    if due_at <= at {
        return Err(Rejection::DeadlineInPast {
            requested: due_at,
            now: at,
        });
    }
    let latest = days_after(at, DEADLINE_AHEAD_DAYS_MAX)?;
    if due_at > latest {
        return Err(Rejection::DeadlineTooFar {
            requested: due_at,
            latest,
        });
    }
    Ok(vec![Event::DeadlineExtended(DeadlineExtended {
        previous_due_at: current,
        due_at,
        by,
        at,
    })])
}

fn cancel(order: &Order, reason: &str, by: Actor, at: DateTime<Utc>) -> Decision {
    let cause = match (order.party_of(&by), order.status) {
        (Some(Party::Buyer), Status::Placed) => {
            CancellationCause::CancelledByBuyerBeforeConfirmation
        }
        (Some(Party::Buyer), _) if order.is_late_at(at) => {
            CancellationCause::CancelledByBuyerWhenLate
        }
        (Some(Party::Buyer), _) => {
            let due_at = order.due_at.ok_or(Rejection::InconsistentState("due_at"))?;
            return Err(Rejection::NotLateYet { due_at });
        }
        _ => CancellationCause::CancelledBySeller,
    };
    let reason = required_text("reason", reason, REASON_CHARS_MAX)?;
    Ok(vec![cancelled(order, cause, reason, by, at)])
}

fn request_cancellation(order: &Order, reason: &str, by: Actor, at: DateTime<Utc>) -> Decision {
    if let Some(pending) = &order.pending_cancellation {
        return Err(Rejection::CancellationAlreadyRequested {
            requested_by: pending.requested_by,
        });
    }
    let reason = required_text("reason", reason, REASON_CHARS_MAX)?;
    let requested_by = order.party_of(&by).ok_or(Rejection::NotAParty {
        party: Party::Buyer,
    })?;
    Ok(vec![Event::CancellationRequested(CancellationRequested {
        requested_by,
        reason,
        by,
        at,
    })])
}

fn agree_cancellation(order: &Order, by: Actor, at: DateTime<Utc>) -> Decision {
    let pending = order
        .pending_cancellation
        .as_ref()
        .ok_or(Rejection::NoCancellationRequested)?;
    if order.party_of(&by) == Some(pending.requested_by) {
        return Err(Rejection::CannotAgreeToOwnRequest);
    }
    let reason = pending.reason.clone();
    Ok(vec![cancelled(
        order,
        CancellationCause::Mutual,
        reason,
        by,
        at,
    )])
}

fn withdraw_cancellation(order: &Order, by: Actor, at: DateTime<Utc>) -> Decision {
    let pending = order
        .pending_cancellation
        .as_ref()
        .ok_or(Rejection::NoCancellationRequested)?;
    if order.party_of(&by) != Some(pending.requested_by) {
        return Err(Rejection::NotTheRequester {
            requested_by: pending.requested_by,
        });
    }
    Ok(vec![Event::CancellationWithdrawn(CancellationWithdrawn {
        by,
        at,
    })])
}

/// `0 < amount < escrow held`: refunding everything is a cancellation. [DOMAIN, seed 001]
fn partial_refund(
    order: &Order,
    amount: Money,
    reason: String,
    by: Actor,
    at: DateTime<Utc>,
) -> Result<PartialRefundIssued, Rejection> {
    same_currency(order, &amount)?;
    positive("refund", &amount)?;
    let escrow_held = order.escrow_held;
    if amount.amount() > escrow_held.amount() {
        return Err(Rejection::AmountExceedsEscrow {
            amount,
            escrow_held,
        });
    }
    if amount == escrow_held {
        return Err(Rejection::RefundWouldEmptyEscrow { escrow_held });
    }
    Ok(PartialRefundIssued {
        amount,
        reason,
        escrow_after: escrow_held.checked_sub(amount)?,
        by,
        at,
    })
}

fn open_dispute(order: &Order, reason: &str, by: Actor, at: DateTime<Utc>) -> Decision {
    let opened_by = order.party_of(&by).ok_or(Rejection::NotAParty {
        party: Party::Buyer,
    })?;
    if opened_by == Party::Buyer {
        buyer_still_deciding(order, at)?;
    }
    let reason = required_text("reason", reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::DisputeOpened(DisputeOpened {
        opened_by,
        reason,
        by,
        at,
    })])
}

fn resolve_dispute(
    order: &Order,
    resolution: Resolution,
    note: &str,
    by: Actor,
    at: DateTime<Utc>,
    policy: &Policy,
) -> Decision {
    let note = required_text("note", note, REASON_CHARS_MAX)?;
    let ruling = Event::DisputeResolved(DisputeResolved {
        resolution,
        note: note.clone(),
        by,
        at,
    });
    match resolution {
        Resolution::Release => {
            let closed = released(
                order,
                order.escrow_held,
                CloseCause::DisputeReleased,
                by,
                at,
                policy,
            )?;
            Ok(vec![ruling, Event::OrderClosed(closed)])
        }
        Resolution::Refund => {
            let cancelled = cancelled(order, CancellationCause::DisputeRefunded, note, by, at);
            Ok(vec![ruling, cancelled])
        }
        Resolution::Split { refund } => {
            let refund = partial_refund(order, refund, note, by, at)?;
            let rest = refund.escrow_after;
            let closed = released(order, rest, CloseCause::DisputeSplit, by, at, policy)?;
            Ok(vec![
                ruling,
                Event::PartialRefundIssued(refund),
                Event::OrderClosed(closed),
            ])
        }
    }
}

fn leave_review(
    order: &Order,
    rating: u8,
    comment: Option<&str>,
    by: Actor,
    at: DateTime<Utc>,
) -> Decision {
    if order.review.is_some() {
        return Err(Rejection::ReviewAlreadyLeft);
    }
    let closes_at = order
        .review_closes_at
        .ok_or(Rejection::InconsistentState("review_closes_at"))?;
    if at >= closes_at {
        return Err(Rejection::ReviewWindowClosed {
            closed_at: closes_at,
        });
    }
    if !(RATING_MIN..=RATING_MAX).contains(&rating) {
        return Err(Rejection::RatingOutOfRange { rating });
    }
    let comment = comment
        .map(|c| optional_text("comment", c, REVIEW_COMMENT_CHARS_MAX))
        .transpose()?;
    Ok(vec![Event::ReviewLeft(ReviewLeft {
        rating,
        comment,
        by,
        at,
    })])
}

/// Releases `amount` (all escrow still holds) to the seller, less commission at the order's rate.
fn released(
    order: &Order,
    amount: Money,
    cause: CloseCause,
    by: Actor,
    at: DateTime<Utc>,
    policy: &Policy,
) -> Result<OrderClosed, Rejection> {
    let commission = amount.commission_at(order.commission_rate)?;
    Ok(OrderClosed {
        cause,
        released: amount,
        commission,
        seller_credit: amount.checked_sub(commission)?,
        escrow_after: Money::zero(order.currency()),
        review_closes_at: review_window_end(at, policy.review_window_months)?,
        by,
        at,
    })
}

/// All that escrow holds goes back to the buyer.
fn cancelled(
    order: &Order,
    cause: CancellationCause,
    reason: String,
    by: Actor,
    at: DateTime<Utc>,
) -> Event {
    Event::OrderCancelled(OrderCancelled {
        cause,
        counts_against_seller: cause.counts_against_seller(),
        refund: order.escrow_held,
        reason,
        escrow_after: Money::zero(order.currency()),
        by,
        at,
    })
}

/// The buyer's window to ask for a revision or dispute a delivery ends when the order is due
/// to close by itself; past it, a late timer must not be raced.
fn buyer_still_deciding(order: &Order, at: DateTime<Utc>) -> Result<(), Rejection> {
    let deadline = match order.status {
        Status::Delivered => order.auto_close_at,
        Status::RevisionRefused => order.decision_deadline,
        _ => None,
    };
    match deadline {
        Some(deadline) if at >= deadline => Err(Rejection::DecisionWindowClosed { deadline }),
        _ => Ok(()),
    }
}

/// The first instant the review window no longer includes: the day after the last calendar
/// day, `months` after the close (31 August closes → last day 28 or 29 February).
pub fn review_window_end(
    closed_at: DateTime<Utc>,
    months: u32,
) -> Result<DateTime<Utc>, Rejection> {
    closed_at
        .date_naive()
        .checked_add_months(Months::new(months))
        .and_then(|last_day| last_day.checked_add_days(Days::new(1)))
        .and_then(|day_after| day_after.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc())
        .filter(|end| *end <= instant::latest())
        .ok_or(Rejection::InstantOutOfRange)
}

/// Deadlines past [`instant::latest`] are refused: the wire could not carry them as RFC 3339.
fn days_after(at: DateTime<Utc>, days: u32) -> Result<DateTime<Utc>, Rejection> {
    at.checked_add_days(Days::new(u64::from(days)))
        .filter(|deadline| *deadline <= instant::latest())
        .ok_or(Rejection::InstantOutOfRange)
}

fn deadline_reached(
    command: CommandKind,
    deadline: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), Rejection> {
    if at >= deadline {
        Ok(())
    } else {
        Err(Rejection::DeadlineNotReached { command, deadline })
    }
}

fn same_currency(order: &Order, money: &Money) -> Result<(), Rejection> {
    if money.currency() == order.currency() {
        Ok(())
    } else {
        Err(Rejection::CurrencyMismatch {
            expected: order.currency(),
            got: money.currency(),
        })
    }
}

fn positive(field: &'static str, money: &Money) -> Result<(), Rejection> {
    if money.is_zero() {
        Err(Rejection::AmountNotPositive { field })
    } else {
        Ok(())
    }
}

fn days_in_range(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), Rejection> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Rejection::DaysOutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

fn required_text(field: &'static str, text: &str, chars_max: usize) -> Result<String, Rejection> {
    if text.trim().is_empty() {
        return Err(Rejection::TextEmpty { field });
    }
    optional_text(field, text, chars_max)
}

/// Free text (a reason, a message, a comment): lines and tabs, no other control characters.
/// A NUL or an escape sequence breaks the consumers of the event streams (a PostgreSQL
/// `text` column refuses NUL; a terminal obeys escapes) and is never what a person typed.
fn optional_text(field: &'static str, text: &str, chars_max: usize) -> Result<String, Rejection> {
    if text.chars().count() > chars_max {
        return Err(Rejection::TextTooLong { field, chars_max });
    }
    if let Some(character) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Rejection::TextControlCharacter {
            field,
            character,
            single_line: false,
        });
    }
    Ok(text.to_owned())
}

/// A title is one line: no control character at all.
fn single_line(field: &'static str, text: &str, chars_max: usize) -> Result<String, Rejection> {
    if let Some(character) = text.chars().find(|c| c.is_control()) {
        return Err(Rejection::TextControlCharacter {
            field,
            character,
            single_line: true,
        });
    }
    required_text(field, text, chars_max)
}
