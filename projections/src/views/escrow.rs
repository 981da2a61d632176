//! Escrow held per order and in total per currency, with since-when for aging.

use crate::rows::Tracked;
use crate::Fact;
use chrono::{DateTime, Utc};
use ledger_domain::{Currency, Event, Money, OrderId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Aging buckets in whole days since the escrow was first funded: 0–7, 8–30, 31–90, >90.
pub const AGING_BUCKET_UPPER_DAYS: [i64; 3] = [7, 30, 90];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowHolding {
    pub held: Money,
    /// When the buyer's payment entered escrow.
    #[serde(with = "ledger_domain::instant")]
    pub since: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowView {
    // Invariant: only orders holding money; an order leaves at close or cancellation.
    holdings: Tracked<OrderId, EscrowHolding>,
    // Invariant: one entry per holding, by `since`; derived, rebuilt by `reindex`. Finance
    // pages through it oldest first without sorting every holding under the views' lock.
    #[serde(skip)]
    oldest_first: BTreeSet<(DateTime<Utc>, OrderId)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgedHolding {
    pub order: OrderId,
    pub held: Money,
    #[serde(with = "ledger_domain::instant")]
    pub since: DateTime<Utc>,
    pub age_days: i64,
}

impl EscrowView {
    crate::rows::stored_tables!("holdings" => holdings);

    pub fn apply(&mut self, fact: &Fact) {
        match &fact.event {
            Event::OrderPlaced(e) => {
                let holding = EscrowHolding {
                    held: e.escrow_after,
                    since: e.at,
                };
                if let Some(earlier) = self.holdings.insert(fact.order, holding) {
                    self.oldest_first.remove(&(earlier.since, fact.order));
                }
                self.oldest_first.insert((e.at, fact.order));
            }
            Event::ExtraPurchased(e) => self.set(fact.order, e.escrow_after),
            Event::PartialRefundIssued(e) => self.set(fact.order, e.escrow_after),
            Event::OrderClosed(_) | Event::OrderCancelled(_) => {
                if let Some(holding) = self.holdings.remove(&fact.order) {
                    self.oldest_first.remove(&(holding.since, fact.order));
                }
            }
            _ => {}
        }
    }

    fn set(&mut self, order: OrderId, held: Money) {
        if let Some(holding) = self.holdings.get_mut(&order) {
            holding.held = held;
        }
    }

    pub(crate) fn reindex(&mut self) {
        self.oldest_first = self
            .holdings
            .iter()
            .map(|(order, holding)| (holding.since, *order))
            .collect();
    }

    pub fn holding(&self, order: OrderId) -> Option<&EscrowHolding> {
        self.holdings.get(&order)
    }

    pub fn totals(&self) -> BTreeMap<Currency, Decimal> {
        let mut totals = BTreeMap::new();
        for holding in self.holdings.values() {
            *totals.entry(holding.held.currency()).or_default() += holding.held.amount();
        }
        totals
    }

    /// Per currency, the sums held in each aging bucket.
    pub fn aging(&self, now: DateTime<Utc>) -> BTreeMap<Currency, [Decimal; 4]> {
        let mut buckets: BTreeMap<Currency, [Decimal; 4]> = BTreeMap::new();
        for holding in self.holdings.values() {
            let age = (now - holding.since).num_days();
            let bucket = AGING_BUCKET_UPPER_DAYS
                .iter()
                .position(|upper| age <= *upper)
                .unwrap_or(3);
            let currency = holding.held.currency();
            // An empty bucket reads at the currency's minor unit, as every amount does.
            buckets
                .entry(currency)
                .or_insert_with(|| [Money::zero(currency).amount(); 4])[bucket] +=
                holding.held.amount();
        }
        buckets
    }

    /// At most `limit` orders holding escrow for at least `min_age_days`, oldest first (by
    /// `since`, then order id), from just after `after` if given: that pair is where a page
    /// ended.
    pub fn holdings_older_than(
        &self,
        min_age_days: i64,
        now: DateTime<Utc>,
        after: Option<(DateTime<Utc>, OrderId)>,
        limit: usize,
    ) -> Vec<AgedHolding> {
        let from = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        self.oldest_first
            .range((from, Bound::Unbounded))
            .filter_map(|(since, order)| {
                let holding = self.holdings.get(order)?;
                Some(AgedHolding {
                    order: *order,
                    held: holding.held,
                    since: *since,
                    age_days: (now - *since).num_days(),
                })
            })
            // Oldest first, so ages only fall: the first too young ends the list.
            .take_while(|h| h.age_days >= min_age_days)
            .take(limit)
            .collect()
    }
}
