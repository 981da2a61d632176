//! Escrow held per order and in total per currency, with since-when for aging.

use crate::rows::Tracked;
use crate::{Account, BooksAt, Fact};
use chrono::{DateTime, TimeDelta, Utc};
use ledger_domain::{Currency, Event, Money, OrderId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;
use uuid::Uuid;

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
    // Derived from `holdings`, rebuilt by `reindex`, so that finance's reads under the
    // views' lock cost what they return, not what escrow holds.
    #[serde(skip)]
    by_age: ByAge,
}

/// Holdings in one currency, added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sum {
    holdings: usize,
    held: Decimal,
}

/// Seconds in the slices of time that `ByAge` adds holdings up by.
const SLICE_SECONDS: i64 = 3600;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ByAge {
    // Invariant: one entry per holding, by `since`, with what it holds: finance pages
    // oldest first, and a page reads nothing else.
    oldest_first: BTreeMap<(DateTime<Utc>, OrderId), Money>,
    // Invariant: per hour of `since` and currency, the holdings in it added up; no empty
    // entry. An aging bucket is whole hours plus the holdings of the hour its bound cuts.
    // A currency's total is its hours added up.
    by_hour: BTreeMap<i64, BTreeMap<Currency, Sum>>,
    // While set, all of the above is left stale, for `reindex` to rebuild once: see
    // `Views::defer_indexes`.
    deferred: bool,
}

impl ByAge {
    fn add(&mut self, order: OrderId, holding: &EscrowHolding) {
        if !self.deferred {
            self.oldest_first
                .insert((holding.since, order), holding.held);
            self.count(holding.since, holding.held, true);
        }
    }

    fn remove(&mut self, order: OrderId, holding: &EscrowHolding) {
        if !self.deferred {
            self.oldest_first.remove(&(holding.since, order));
            self.count(holding.since, holding.held, false);
        }
    }

    fn change(&mut self, order: OrderId, since: DateTime<Utc>, from: Money, to: Money) {
        if !self.deferred {
            if let Some(held) = self.oldest_first.get_mut(&(since, order)) {
                *held = to;
            }
            self.count(since, from, false);
            self.count(since, to, true);
        }
    }

    fn count(&mut self, since: DateTime<Utc>, held: Money, add: bool) {
        let hour = since.timestamp().div_euclid(SLICE_SECONDS);
        let by_currency = self.by_hour.entry(hour).or_default();
        Self::count_in(by_currency, held, add);
        if by_currency.is_empty() {
            self.by_hour.remove(&hour);
        }
    }

    fn count_in(sums: &mut BTreeMap<Currency, Sum>, held: Money, add: bool) {
        let sum = sums.entry(held.currency()).or_default();
        if add {
            sum.holdings += 1;
            sum.held += held.amount();
        } else {
            sum.holdings -= 1;
            sum.held -= held.amount();
        }
        if sum.holdings == 0 {
            sums.remove(&held.currency());
        }
    }

    /// Per currency, what the holdings of the hours in `hours` hold together.
    fn held_in(&self, hours: impl std::ops::RangeBounds<i64>) -> BTreeMap<Currency, Decimal> {
        let mut sums: BTreeMap<Currency, Decimal> = BTreeMap::new();
        for by_currency in self.by_hour.range(hours).map(|(_, sums)| sums) {
            for (currency, sum) in by_currency {
                *sums.entry(*currency).or_default() += sum.held;
            }
        }
        sums
    }

    /// Per currency, what the holdings funded at `bound` or before hold together.
    fn held_until(&self, bound: DateTime<Utc>) -> BTreeMap<Currency, Decimal> {
        let hour = bound.timestamp().div_euclid(SLICE_SECONDS);
        let mut sums = self.held_in(..hour);
        let hour_start =
            DateTime::from_timestamp(hour * SLICE_SECONDS, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let cut = self.oldest_first.range((
            Bound::Included((hour_start, OrderId(Uuid::nil()))),
            Bound::Included((bound, OrderId(Uuid::max()))),
        ));
        for held in cut.map(|(_, held)| held) {
            *sums.entry(held.currency()).or_default() += held.amount();
        }
        sums
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgedHolding {
    pub order: OrderId,
    pub held: Money,
    #[serde(with = "ledger_domain::instant")]
    pub since: DateTime<Utc>,
    pub age_days: i64,
}

/// Escrow as it stood at `at`, per currency: what it held then and its aging then (the
/// buckets of [`EscrowView::aging`]), as the view would have answered at that instant. From
/// the books as at `at` with every account (each order's escrow account) and when each
/// order was placed, which is when its escrow began; an order not known there is left out.
pub fn escrow_as_at(
    books: &BooksAt,
    placed_at: impl Fn(OrderId) -> Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> BTreeMap<Currency, (Decimal, [Decimal; 4])> {
    let mut by_currency: BTreeMap<Currency, (Decimal, [Decimal; 4])> = BTreeMap::new();
    for (account, balances) in &books.accounts {
        let Account::Escrow(order) = account else {
            continue;
        };
        let Some(since) = placed_at(*order) else {
            continue;
        };
        // Whole days, as the view's bounds count them: older than a bucket's upper bound
        // is funded `upper + 1` days or more before `at`.
        let age_days = (at - since).num_days();
        let bucket = AGING_BUCKET_UPPER_DAYS
            .iter()
            .position(|upper| age_days <= *upper)
            .unwrap_or(AGING_BUCKET_UPPER_DAYS.len());
        for (currency, held) in balances {
            let zero = Money::zero(*currency).amount();
            let (total, buckets) = by_currency.entry(*currency).or_insert((zero, [zero; 4]));
            *total += *held;
            buckets[bucket] += *held;
        }
    }
    by_currency
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
                if let Some(earlier) = self.holdings.insert(fact.order, holding.clone()) {
                    self.by_age.remove(fact.order, &earlier);
                }
                self.by_age.add(fact.order, &holding);
            }
            Event::ExtraPurchased(e) => self.set(fact.order, e.escrow_after),
            Event::PartialRefundIssued(e) => self.set(fact.order, e.escrow_after),
            Event::OrderClosed(_) | Event::OrderCancelled(_) => {
                if let Some(holding) = self.holdings.remove(&fact.order) {
                    self.by_age.remove(fact.order, &holding);
                }
            }
            _ => {}
        }
    }

    fn set(&mut self, order: OrderId, held: Money) {
        if let Some(holding) = self.holdings.get_mut(&order) {
            let before = std::mem::replace(&mut holding.held, held);
            self.by_age.change(order, holding.since, before, held);
        }
    }

    /// Leaves the derived indexes stale until `reindex`, for a rebuild.
    pub(crate) fn defer_index(&mut self) {
        self.by_age.deferred = true;
    }

    pub(crate) fn reindex(&mut self) {
        let holdings = self.holdings.iter();
        // Collected, not inserted one by one: a B-tree is built from a sorted run in one pass.
        let oldest_first = holdings
            .map(|(order, h)| ((h.since, *order), h.held))
            .collect();
        self.by_age = ByAge {
            oldest_first,
            ..ByAge::default()
        };
        for holding in self.holdings.values() {
            self.by_age.count(holding.since, holding.held, true);
        }
    }

    pub fn holding(&self, order: OrderId) -> Option<&EscrowHolding> {
        self.holdings.get(&order)
    }

    pub fn totals(&self) -> BTreeMap<Currency, Decimal> {
        self.by_age.held_in(..)
    }

    /// Per currency, the sums held in each aging bucket.
    pub fn aging(&self, now: DateTime<Utc>) -> BTreeMap<Currency, [Decimal; 4]> {
        // Held by what is older than each bucket's upper bound: funded `upper + 1` days
        // before `now` or earlier. Nothing is that old when the bound is before time began.
        let older = AGING_BUCKET_UPPER_DAYS.map(|upper| {
            now.checked_sub_signed(TimeDelta::days(upper + 1))
                .map(|bound| self.by_age.held_until(bound))
                .unwrap_or_default()
        });
        self.totals()
            .into_iter()
            .map(|(currency, total)| {
                // An empty bucket reads at the currency's minor unit, as every amount does.
                let zero = Money::zero(currency).amount();
                let [over_7, over_30, over_90] = older
                    .each_ref()
                    .map(|sums| sums.get(&currency).copied().unwrap_or(zero));
                let buckets = [total - over_7, over_7 - over_30, over_30 - over_90, over_90];
                (currency, buckets)
            })
            .collect()
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
        self.by_age
            .oldest_first
            .range((from, Bound::Unbounded))
            .map(|((since, order), held)| AgedHolding {
                order: *order,
                held: *held,
                since: *since,
                age_days: (now - *since).num_days(),
            })
            // Oldest first, so ages only fall: the first too young ends the list.
            .take_while(|h| h.age_days >= min_age_days)
            .take(limit)
            .collect()
    }
}
