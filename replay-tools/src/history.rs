//! `ledger history`: an order's timeline as a mediator reads it (instant, actor, event, money
//! effect, state after), and the order as it stood at any instant or revision.

use chrono::{DateTime, Utc};
use ledger_commands::{decode, stream_for, DecodeError};
use ledger_domain::{evolve, Actor, Event, MoneyMovement, OrderId, OrderState, Status};
use ledger_store::{read_whole_stream, EventStore, StoreError};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("order {0} does not exist")]
    UnknownOrder(OrderId),
    /// Answering with a later state would pass it off as the asked revision's.
    #[error("order {order} has revisions 0 to {last}; {asked} is not one yet")]
    RevisionNotReached {
        order: OrderId,
        asked: u64,
        last: u64,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where to stop reading an order's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cutoff {
    Now,
    /// Events that happened at or before this instant.
    At(DateTime<Utc>),
    /// Events up to and including this revision of the order's stream.
    Revision(u64),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub revision: u64,
    pub position: u64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub event_type: &'static str,
    /// How the event moved money, in words; none if it moved none.
    pub money_effect: Option<String>,
    pub status_after: Option<Status>,
    /// The command that appended the event (an idempotency key's, or a fresh one): the
    /// events one command appended share it.
    pub command_id: Uuid,
    /// The caller's `X-Correlation-Id` (a checkout, a support ticket), or the command id:
    /// what ties the event to the request outside the ledger.
    pub correlation_id: Uuid,
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct History {
    pub order: OrderId,
    pub entries: Vec<Entry>,
    /// The order as it stood after the last entry.
    pub state: OrderState,
}

pub async fn history(
    store: &dyn EventStore,
    order: OrderId,
    cutoff: Cutoff,
) -> Result<History, HistoryError> {
    let recorded = read_whole_stream(store, &stream_for(order)).await?;
    let Some(last) = recorded.last().map(|r| r.revision) else {
        return Err(HistoryError::UnknownOrder(order));
    };
    if let Cutoff::Revision(asked) = cutoff {
        if asked > last {
            return Err(HistoryError::RevisionNotReached { order, asked, last });
        }
    }
    let mut entries = Vec::new();
    let mut state = OrderState::new();
    for recorded in recorded {
        let (event, metadata) = decode(&recorded)?;
        let within = match cutoff {
            Cutoff::Now => true,
            Cutoff::At(instant) => event.at() <= instant,
            Cutoff::Revision(revision) => recorded.revision <= revision,
        };
        if !within {
            break;
        }
        state = evolve(state, &event);
        entries.push(Entry {
            revision: recorded.revision,
            position: recorded.position,
            at: event.at(),
            actor: event.by(),
            event_type: event.event_type(),
            money_effect: money_effect(&event),
            status_after: state.status(),
            command_id: metadata.command_id,
            correlation_id: metadata.correlation_id,
            event,
        });
    }
    Ok(History {
        order,
        entries,
        state,
    })
}

fn money_effect(event: &Event) -> Option<String> {
    Some(match event.money_movement()? {
        MoneyMovement::PaidIn(m) => format!("{m} paid into escrow"),
        MoneyMovement::RefundedToBuyer(m) => format!("{m} refunded to the buyer"),
        MoneyMovement::Released {
            seller_credit,
            commission,
        } => {
            format!("{seller_credit} released to the seller, {commission} commission")
        }
    })
}

/// Text from the log as a terminal may show it: control characters escaped (`\u{1b}`), the
/// rest as written. Commands refuse them now, but older or imported events may hold an
/// escape sequence, which a terminal would obey.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The timeline as text, one event a line, then the state it left.
pub fn render(history: &History) -> String {
    let mut out = String::new();
    if history.entries.is_empty() {
        // Only a cutoff before the placement leaves nothing; say so rather than print nothing.
        out.push_str(&format!(
            "order {}: no event yet at that instant; it was placed later\n",
            history.order
        ));
    }
    for e in &history.entries {
        let status = e.status_after.map_or("-".to_owned(), |s| format!("{s:?}"));
        let money = e
            .money_effect
            .as_deref()
            .map_or(String::new(), |m| format!("  [{m}]"));
        out.push_str(&format!(
            "{:>4}  {}  {:<46} {:<22} -> {}{}\n",
            e.revision,
            e.at.format("%Y-%m-%d %H:%M:%S"),
            format!("{} {}", e.actor.role, e.actor.user_id),
            e.event_type,
            status,
            money,
        ));
    }
    if let Some(order) = history.state.order() {
        out.push_str(&format!(
            "\norder {} ({}): {:?}, escrow held {}, price {}, buyer {}, seller {}\n",
            order.id,
            printable(&order.title),
            order.status,
            order.escrow_held,
            order.price,
            order.buyer,
            order.seller
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_from_the_log_are_shown_escaped_and_the_rest_as_written() {
        assert_eq!(
            printable("Logo \u{1b}[2J\u{7}für Café\tA"),
            "Logo \\u{1b}[2J\\u{7}für Café\\tA"
        );
    }
}
