//! `ledger history`: an order's timeline as a mediator reads it (instant, actor, event, money
//! effect, state after), and the order as it stood at any instant or revision.

use chrono::{DateTime, Utc};
use ledger_commands::{decode, stream_for, DecodeError};
use ledger_domain::{
    evolve, Actor, Event, ExtraKind, MoneyMovement, OrderConfirmed, OrderId, OrderState,
    Resolution, RevisionAccepted, Status,
};
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
    if recorded.is_empty() {
        return Err(HistoryError::UnknownOrder(order));
    }
    let mut entries = Vec::with_capacity(recorded.len());
    let mut state = OrderState::new();
    for recorded in recorded {
        let (event, metadata) = decode(&recorded)?;
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
    History {
        order,
        entries,
        state,
    }
    .up_to(cutoff)
}

impl History {
    /// The history as it stood at `cutoff`: its first entries, and the order as they leave
    /// it. Folds the entries' events again, which costs far less than reading the stream.
    pub fn up_to(mut self, cutoff: Cutoff) -> Result<History, HistoryError> {
        let last = self.entries.last().map_or(0, |entry| entry.revision);
        let kept = match cutoff {
            Cutoff::Now => return Ok(self),
            Cutoff::Revision(asked) if asked > last => {
                return Err(HistoryError::RevisionNotReached {
                    order: self.order,
                    asked,
                    last,
                })
            }
            Cutoff::Revision(asked) => self.entries.partition_point(|e| e.revision <= asked),
            // Up to the first event after it, as the order went (the ledger dates no event
            // before its order's last, but a stream written elsewhere might).
            Cutoff::At(instant) => self.entries.iter().take_while(|e| e.at <= instant).count(),
        };
        self.entries.truncate(kept);
        self.state = self.entries.iter().fold(OrderState::new(), |state, entry| {
            evolve(state, &entry.event)
        });
        Ok(self)
    }
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

/// What the event says besides money: the parties' words (quoted, as they wrote them), the
/// deadlines it set and why an order ended. A mediator reads the dispute from these.
pub fn details(event: &Event) -> Option<String> {
    let when = |at: &DateTime<Utc>| at.format(INSTANT_SHOWN).to_string();
    let quoted = |text: &str| format!("\"{}\"", printable(text));
    Some(match event {
        Event::OrderPlaced(e) => format!(
            "{}, {} days to deliver, confirm by {}",
            quoted(&e.title),
            e.delivery_days,
            when(&e.confirm_by)
        ),
        Event::OrderConfirmed(OrderConfirmed { due_at, .. })
        | Event::RevisionAccepted(RevisionAccepted { due_at, .. }) => {
            format!("due {}", when(due_at))
        }
        Event::OrderDelivered(e) => format!(
            "delivery {}{}{}: {}",
            e.delivery_number,
            if e.redelivery { ", a redelivery" } else { "" },
            if e.late { ", late" } else { "" },
            quoted(&e.message)
        ),
        Event::RevisionRequested(e) => quoted(&e.reason),
        Event::RevisionRefused(e) => format!(
            "{}; the buyer decides by {}",
            quoted(&e.reason),
            when(&e.decision_deadline)
        ),
        Event::ExtraPurchased(e) => format!(
            "{} {}, {} more days, due {}",
            match e.kind {
                ExtraKind::Option => "option",
                ExtraKind::CustomOffer => "custom offer",
            },
            quoted(&e.description),
            e.extra_days,
            when(&e.due_at)
        ),
        Event::DeadlineExtended(e) => {
            format!("due {}, was {}", when(&e.due_at), when(&e.previous_due_at))
        }
        Event::CancellationRequested(e) => {
            format!("asked by the {}: {}", e.requested_by, quoted(&e.reason))
        }
        Event::CancellationWithdrawn(_) => return None,
        Event::PartialRefundIssued(e) => quoted(&e.reason),
        Event::DisputeOpened(e) => format!("by the {}: {}", e.opened_by, quoted(&e.reason)),
        Event::DisputeResolved(e) => format!(
            "{}: {}",
            match &e.resolution {
                Resolution::Release => "release everything to the seller".to_owned(),
                Resolution::Refund => "refund everything to the buyer".to_owned(),
                Resolution::Split { refund } => format!("split, {refund} to the buyer"),
            },
            quoted(&e.note)
        ),
        Event::OrderClosed(e) => format!(
            "{}; reviews before {}",
            name_in_json(&e.cause),
            when(&e.review_closes_at)
        ),
        Event::OrderCancelled(e) => format!(
            "{}{}: {}",
            name_in_json(&e.cause),
            if e.counts_against_seller {
                ", counts against the seller"
            } else {
                ""
            },
            quoted(&e.reason)
        ),
        Event::ReviewLeft(e) => match &e.comment {
            Some(comment) => format!("rated {}: {}", e.rating, quoted(comment)),
            None => format!("rated {}", e.rating),
        },
    })
}

/// A cause as the JSON and the CSV reports name it (`dispute_split`), so that one word finds it
/// in all of them.
fn name_in_json(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Instants in the text timeline: to the second, in UTC as everywhere in the ledger.
const INSTANT_SHOWN: &str = "%Y-%m-%d %H:%M:%S";

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
        let details = details(&e.event).map_or(String::new(), |d| format!("  {d}"));
        out.push_str(&format!(
            "{:>4}  {}  {:<46} {:<22} -> {}{}{}\n",
            e.revision,
            e.at.format(INSTANT_SHOWN),
            format!("{} {}", e.actor.role, e.actor.user_id),
            e.event_type,
            status,
            money,
            details,
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
