//! Whether a recorded event could legally follow the state before it, without the command that
//! produced it: the lifecycle's transitions and the money's arithmetic. `decide` only ever
//! produces legal events; this check is for histories that came from elsewhere (an import, a
//! bug, a hand edit), and is what `ledger verify` replays.

use crate::decide::ACTIVE_STATES;
use crate::event::*;
use crate::money::{Money, MoneyError};
use crate::state::{OrderState, Status};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IllegalEvent {
    #[error("{event_type} before the order was placed")]
    BeforePlacement { event_type: &'static str },
    #[error("a second OrderPlaced on the same order")]
    PlacedTwice,
    #[error("{event_type} on an order that is {status}")]
    WrongState {
        event_type: &'static str,
        status: Status,
    },
    #[error("{event_type} at {at}, before the previous event at {previous}")]
    TimeWentBackwards {
        event_type: &'static str,
        at: DateTime<Utc>,
        previous: DateTime<Utc>,
    },
    #[error("{event_type} records escrow {recorded} but the movements give {expected}")]
    EscrowMismatch {
        event_type: &'static str,
        expected: Money,
        recorded: Money,
    },
    #[error("{event_type} moves {recorded} where escrow held {escrow_held}")]
    AmountMismatch {
        event_type: &'static str,
        escrow_held: Money,
        recorded: Money,
    },
    #[error("commission {recorded} differs from {expected} at the order's rate")]
    CommissionMismatch { expected: Money, recorded: Money },
    #[error(
        "seller credit {seller_credit} plus commission {commission} is not the release {released}"
    )]
    ReleaseUnbalanced {
        released: Money,
        seller_credit: Money,
        commission: Money,
    },
    #[error("a partial refund of {amount} does not leave money in escrow ({escrow_held} held)")]
    RefundNotPartial { amount: Money, escrow_held: Money },
    #[error("the cancellation's counts_against_seller contradicts its cause")]
    CountsAgainstSellerContradictsCause,
    #[error("{event_type}: {source}")]
    Money {
        event_type: &'static str,
        source: MoneyError,
    },
}

/// Checks that `event` may follow `state`. A history is legal when every event passes this
/// against the fold of the events before it.
pub fn check_event(state: &OrderState, event: &Event) -> Result<(), IllegalEvent> {
    let event_type = event.event_type();
    let Some(order) = state.order() else {
        return match event {
            Event::OrderPlaced(e) => {
                let expected = e.price;
                equal_escrow(event_type, expected, e.escrow_after)
            }
            _ => Err(IllegalEvent::BeforePlacement { event_type }),
        };
    };
    if event.at() < order.last_event_at {
        return Err(IllegalEvent::TimeWentBackwards {
            event_type,
            at: event.at(),
            previous: order.last_event_at,
        });
    }
    let status = order.status;
    let wrong_state = || IllegalEvent::WrongState { event_type, status };
    if !from_states(event).contains(&status) {
        return Err(wrong_state());
    }
    let money = |source| IllegalEvent::Money { event_type, source };
    let held = order.escrow_held;
    match event {
        Event::OrderPlaced(_) => Err(IllegalEvent::PlacedTwice),
        Event::CancellationRequested(_) if order.pending_cancellation.is_some() => {
            Err(wrong_state())
        }
        Event::CancellationWithdrawn(_) if order.pending_cancellation.is_none() => {
            Err(wrong_state())
        }
        Event::ReviewLeft(_) if order.review.is_some() => Err(wrong_state()),
        Event::ExtraPurchased(e) => {
            let expected = held.checked_add(e.price).map_err(money)?;
            equal_escrow(event_type, expected, e.escrow_after)
        }
        Event::PartialRefundIssued(e) => {
            if e.amount.is_zero() || e.amount.amount() >= held.amount() {
                return Err(IllegalEvent::RefundNotPartial {
                    amount: e.amount,
                    escrow_held: held,
                });
            }
            let expected = held.checked_sub(e.amount).map_err(money)?;
            equal_escrow(event_type, expected, e.escrow_after)
        }
        Event::OrderClosed(e) => {
            same_amount(event_type, held, e.released)?;
            let expected = e
                .released
                .commission_at(order.commission_rate)
                .map_err(money)?;
            if expected != e.commission {
                return Err(IllegalEvent::CommissionMismatch {
                    expected,
                    recorded: e.commission,
                });
            }
            let sum = e.seller_credit.checked_add(e.commission).map_err(money)?;
            if sum != e.released {
                return Err(IllegalEvent::ReleaseUnbalanced {
                    released: e.released,
                    seller_credit: e.seller_credit,
                    commission: e.commission,
                });
            }
            equal_escrow(event_type, Money::zero(held.currency()), e.escrow_after)
        }
        Event::OrderCancelled(e) => {
            same_amount(event_type, held, e.refund)?;
            if e.counts_against_seller != e.cause.counts_against_seller() {
                return Err(IllegalEvent::CountsAgainstSellerContradictsCause);
            }
            equal_escrow(event_type, Money::zero(held.currency()), e.escrow_after)
        }
        _ => Ok(()),
    }
}

/// The states an event may follow. Disputes resolve into a refund, a close or a cancellation.
fn from_states(event: &Event) -> &'static [Status] {
    match event {
        Event::OrderPlaced(_) => &[],
        Event::OrderConfirmed(_) => &[Status::Placed],
        Event::OrderDelivered(_) | Event::DeadlineExtended(_) => &[Status::InProgress],
        Event::RevisionRequested(_) => &[Status::Delivered],
        Event::RevisionAccepted(_) | Event::RevisionRefused(_) => &[Status::RevisionRequested],
        Event::ExtraPurchased(_)
        | Event::CancellationRequested(_)
        | Event::CancellationWithdrawn(_)
        | Event::DisputeOpened(_) => &ACTIVE_STATES,
        Event::PartialRefundIssued(_) => &[
            Status::InProgress,
            Status::Delivered,
            Status::RevisionRequested,
            Status::RevisionRefused,
            Status::InDispute,
        ],
        Event::DisputeResolved(_) => &[Status::InDispute],
        Event::OrderClosed(_) => &[
            Status::Delivered,
            Status::RevisionRefused,
            Status::InDispute,
        ],
        Event::OrderCancelled(_) => &[
            Status::Placed,
            Status::InProgress,
            Status::Delivered,
            Status::RevisionRequested,
            Status::RevisionRefused,
            Status::InDispute,
        ],
        Event::ReviewLeft(_) => &[Status::Closed],
    }
}

fn equal_escrow(
    event_type: &'static str,
    expected: Money,
    recorded: Money,
) -> Result<(), IllegalEvent> {
    if expected == recorded {
        Ok(())
    } else {
        Err(IllegalEvent::EscrowMismatch {
            event_type,
            expected,
            recorded,
        })
    }
}

fn same_amount(
    event_type: &'static str,
    escrow_held: Money,
    recorded: Money,
) -> Result<(), IllegalEvent> {
    if escrow_held == recorded {
        Ok(())
    } else {
        Err(IllegalEvent::AmountMismatch {
            event_type,
            escrow_held,
            recorded,
        })
    }
}
