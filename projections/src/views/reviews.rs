//! Review windows: from close until six calendar months later (the instant is on the
//! `OrderClosed` event), whether a review was left, and the windows closing soon.

use crate::rows::Tracked;
use crate::Fact;
use chrono::{DateTime, Duration, Utc};
use ledger_domain::{Event, OrderId, UserId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftReview {
    pub rating: u8,
    #[serde(with = "ledger_domain::instant")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewWindow {
    pub order: OrderId,
    pub buyer: UserId,
    pub seller: UserId,
    #[serde(with = "ledger_domain::instant")]
    pub opens_at: DateTime<Utc>,
    /// Reviews are accepted strictly before this instant.
    #[serde(with = "ledger_domain::instant")]
    pub closes_at: DateTime<Utc>,
    pub review: Option<LeftReview>,
}

impl ReviewWindow {
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        self.review.is_none() && self.opens_at <= now && now < self.closes_at
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewView {
    windows: Tracked<OrderId, ReviewWindow>,
    // Invariant: holds exactly the orders not yet closed or cancelled.
    open_orders: Tracked<OrderId, (UserId, UserId)>,
}

impl ReviewView {
    crate::rows::stored_tables!("windows" => windows, "open_orders" => open_orders);

    pub fn apply(&mut self, fact: &Fact) {
        match &fact.event {
            Event::OrderPlaced(e) => {
                self.open_orders.insert(fact.order, (e.buyer, e.seller));
            }
            Event::OrderCancelled(_) => {
                self.open_orders.remove(&fact.order);
            }
            Event::OrderClosed(e) => {
                if let Some((buyer, seller)) = self.open_orders.remove(&fact.order) {
                    let window = ReviewWindow {
                        order: fact.order,
                        buyer,
                        seller,
                        opens_at: e.at,
                        closes_at: e.review_closes_at,
                        review: None,
                    };
                    self.windows.insert(fact.order, window);
                }
            }
            Event::ReviewLeft(e) => {
                if let Some(window) = self.windows.get_mut(&fact.order) {
                    window.review = Some(LeftReview {
                        rating: e.rating,
                        at: e.at,
                    });
                }
            }
            _ => {}
        }
    }

    pub fn window(&self, order: OrderId) -> Option<&ReviewWindow> {
        self.windows.get(&order)
    }

    /// Open windows without a review that close within `days` of `now`, soonest first.
    pub fn closing_within(&self, now: DateTime<Utc>, days: u32) -> Vec<&ReviewWindow> {
        let horizon = now + Duration::days(i64::from(days));
        let mut closing: Vec<&ReviewWindow> = self
            .windows
            .values()
            .filter(|w| w.is_open_at(now) && w.closes_at <= horizon)
            .collect();
        closing.sort_by_key(|w| (w.closes_at, w.order));
        closing
    }
}
