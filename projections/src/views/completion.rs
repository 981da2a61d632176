//! Sellers' completion rate: completed / (completed + counted cancellations), over all time
//! and over a recent window evaluated when asked.

use crate::rows::{Appended, FastMap, Tracked};
use crate::Fact;
use chrono::{DateTime, Duration, Utc};
use ledger_domain::{Event, OrderId, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Decimal places of a reported rate.
pub const RATE_DECIMALS: u32 = 4;

/// A finished order that counts in a seller's rate, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Finish {
    seller: UserId,
    #[serde(with = "ledger_domain::instant")]
    at: DateTime<Utc>,
    /// Closed (true) or cancelled against the seller (false).
    completed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SellerTrack {
    completed: Vec<DateTime<Utc>>,
    counted_cancellations: Vec<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RateFigures {
    pub completed: u64,
    pub counted_cancellations: u64,
    /// None when the seller has no finished order to rate.
    pub rate: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompletionRate {
    pub seller: UserId,
    pub all_time: RateFigures,
    pub recent: RateFigures,
    pub recent_days: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionView {
    finishes: Appended<Finish>,
    // Invariant: `finishes` grouped by seller; derived, rebuilt by `reindex`.
    #[serde(skip)]
    sellers: FastMap<UserId, SellerTrack>,
    // Invariant: holds exactly the orders not yet closed or cancelled.
    open_orders: Tracked<OrderId, UserId>,
}

impl CompletionView {
    crate::rows::stored_tables!("finishes" => finishes, "open_orders" => open_orders);

    pub fn apply(&mut self, fact: &Fact) {
        match &fact.event {
            Event::OrderPlaced(e) => {
                self.open_orders.insert(fact.order, e.seller);
            }
            // A split dispute closes the order: it counts as completed.
            Event::OrderClosed(e) => {
                if let Some(seller) = self.open_orders.remove(&fact.order) {
                    self.finish(Finish {
                        seller,
                        at: e.at,
                        completed: true,
                    });
                }
            }
            Event::OrderCancelled(e) => {
                if let Some(seller) = self.open_orders.remove(&fact.order) {
                    if e.counts_against_seller {
                        self.finish(Finish {
                            seller,
                            at: e.at,
                            completed: false,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, finish: Finish) {
        self.track(&finish);
        self.finishes.push(finish);
    }

    fn track(&mut self, finish: &Finish) {
        let track = self.sellers.entry(finish.seller).or_default();
        if finish.completed {
            track.completed.push(finish.at);
        } else {
            track.counted_cancellations.push(finish.at);
        }
    }

    pub(crate) fn reindex(&mut self) {
        self.sellers.clear();
        let finishes = std::mem::take(&mut self.finishes);
        for finish in finishes.as_slice() {
            self.track(finish);
        }
        self.finishes = finishes;
    }

    pub fn rate(&self, seller: UserId, now: DateTime<Utc>, recent_days: u32) -> CompletionRate {
        let empty = SellerTrack::default();
        let track = self.sellers.get(&seller).unwrap_or(&empty);
        let since = now - Duration::days(i64::from(recent_days));
        let recent = |instants: &[DateTime<Utc>]| instants.iter().filter(|at| **at > since).count();
        CompletionRate {
            seller,
            all_time: figures(track.completed.len(), track.counted_cancellations.len()),
            recent: figures(
                recent(&track.completed),
                recent(&track.counted_cancellations),
            ),
            recent_days,
        }
    }
}

fn figures(completed: usize, cancelled: usize) -> RateFigures {
    let total = completed + cancelled;
    RateFigures {
        completed: completed as u64,
        counted_cancellations: cancelled as u64,
        rate: (total > 0).then(|| {
            let mut rate = (Decimal::from(completed as u64) / Decimal::from(total as u64))
                .round_dp(RATE_DECIMALS);
            // Always written at the same places ("0.0000", "0.6667", "1.0000"), as amounts are.
            rate.rescale(RATE_DECIMALS);
            rate
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_written_at_four_places_whatever_its_value() {
        let written = |completed, cancelled| {
            serde_json::to_value(figures(completed, cancelled).rate).expect("json")
        };
        assert_eq!(written(2, 1), "0.6667");
        assert_eq!(written(2, 3), "0.4000");
        assert_eq!(written(0, 3), "0.0000");
        assert_eq!(written(5, 0), "1.0000");
        assert_eq!(written(0, 0), serde_json::Value::Null);
    }
}
