//! Wallet credit per user and currency, with the statement lines behind each balance.

use crate::rows::{Appended, FastMap, Tracked};
use crate::{Fact, Period};
use chrono::{DateTime, Utc};
use ledger_domain::{CancellationCause, Currency, Event, Money, OrderId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CreditReason {
    PartialRefund,
    CancellationRefund {
        cause: CancellationCause,
    },
    /// Escrow released to the seller, less commission.
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    pub order: OrderId,
    pub position: u64,
    #[serde(with = "ledger_domain::instant")]
    pub at: DateTime<Utc>,
    pub amount: Money,
    pub reason: CreditReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub balance: Money,
    pub lines: Vec<StatementLine>,
}

/// A wallet's statement for a period, in one currency: what it holds now, what it held as
/// the period began and as it ended, and the lines between (those of one page).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeriodStatement {
    pub balance: Money,
    pub opening: Money,
    pub closing: Money,
    pub lines: Vec<StatementLine>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Parties {
    buyer: UserId,
    seller: UserId,
}

/// A statement line and whose it is, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct UserLine {
    user: UserId,
    line: StatementLine,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletView {
    balances: Tracked<UserId, BTreeMap<Currency, Money>>,
    lines: Appended<UserLine>,
    // Invariant: indexes of `lines` per user; derived, rebuilt by `reindex`.
    #[serde(skip)]
    lines_by_user: FastMap<UserId, Vec<usize>>,
    // Invariant: holds exactly the orders not yet closed or cancelled.
    open_orders: Tracked<OrderId, Parties>,
}

impl WalletView {
    crate::rows::stored_tables!("balances" => balances, "lines" => lines, "open_orders" => open_orders);

    pub fn apply(&mut self, fact: &Fact) {
        match &fact.event {
            Event::OrderPlaced(e) => {
                let parties = Parties {
                    buyer: e.buyer,
                    seller: e.seller,
                };
                self.open_orders.insert(fact.order, parties);
            }
            Event::PartialRefundIssued(e) => {
                if let Some(parties) = self.open_orders.get(&fact.order).copied() {
                    self.credit(parties.buyer, fact, e.amount, CreditReason::PartialRefund);
                }
            }
            Event::OrderCancelled(e) => {
                if let Some(parties) = self.open_orders.remove(&fact.order) {
                    let reason = CreditReason::CancellationRefund { cause: e.cause };
                    self.credit(parties.buyer, fact, e.refund, reason);
                }
            }
            Event::OrderClosed(e) => {
                if let Some(parties) = self.open_orders.remove(&fact.order) {
                    self.credit(parties.seller, fact, e.seller_credit, CreditReason::Release);
                }
            }
            _ => {}
        }
    }

    fn credit(&mut self, user: UserId, fact: &Fact, amount: Money, reason: CreditReason) {
        if amount.is_zero() {
            return;
        }
        let balance = self
            .balances
            .get_or_default(&user)
            .entry(amount.currency())
            .or_insert(Money::zero(amount.currency()));
        // Sums of amounts bounded by AMOUNT_MAJOR_UNITS_MAX cannot overflow a Decimal.
        *balance = balance.checked_add(amount).unwrap_or(*balance);
        self.lines_by_user
            .entry(user)
            .or_default()
            .push(self.lines.len());
        self.lines.push(UserLine {
            user,
            line: StatementLine {
                order: fact.order,
                position: fact.position,
                at: fact.event.at(),
                amount,
                reason,
            },
        });
    }

    pub(crate) fn reindex(&mut self) {
        self.lines_by_user.clear();
        for (index, entry) in self.lines.as_slice().iter().enumerate() {
            self.lines_by_user
                .entry(entry.user)
                .or_default()
                .push(index);
        }
    }

    /// The user's balance in each currency, with the statement lines behind it.
    pub fn wallet(&self, user: UserId) -> BTreeMap<Currency, Wallet> {
        self.wallet_page(user, 0, usize::MAX).0
    }

    /// The user's balance in each currency, with at most `limit` statement lines (all
    /// currencies) from `from_position` on. A position holds one line at most (an event
    /// credits one user, once), so the next page's position, returned if any, splits none.
    pub fn wallet_page(
        &self,
        user: UserId,
        from_position: u64,
        limit: usize,
    ) -> (BTreeMap<Currency, Wallet>, Option<u64>) {
        let Some(balances) = self.balances.get(&user) else {
            return (BTreeMap::new(), None);
        };
        let lines = self.lines.as_slice();
        let indexes = self.lines_by_user.get(&user).map_or(&[][..], Vec::as_slice);
        let position = |i: &usize| lines[*i].line.position;
        let start = indexes.partition_point(|i| position(i) < from_position);
        let end = start.saturating_add(limit.max(1)).min(indexes.len());
        let page = &indexes[start..end];
        let wallets = balances
            .iter()
            .map(|(currency, balance)| {
                let lines = page
                    .iter()
                    .map(|i| &lines[*i].line)
                    .filter(|line| line.amount.currency() == *currency)
                    .cloned()
                    .collect();
                (
                    *currency,
                    Wallet {
                        balance: *balance,
                        lines,
                    },
                )
            })
            .collect();
        (wallets, indexes.get(end).map(position))
    }

    /// The user's statement for `period` in each currency the wallet has held: the balances
    /// as it began and ended (by the instants of the lines' events, as the journal's
    /// periods), and at most `limit` of its lines (all currencies) from `from_position` on.
    /// Returns the next page's position among the period's lines, if any. Its cost is the
    /// user's lines, which it adds up.
    pub fn period_statement(
        &self,
        user: UserId,
        period: Period,
        from_position: u64,
        limit: usize,
    ) -> (BTreeMap<Currency, PeriodStatement>, Option<u64>) {
        let Some(balances) = self.balances.get(&user) else {
            return (BTreeMap::new(), None);
        };
        let mut statements: BTreeMap<Currency, PeriodStatement> = balances
            .iter()
            .map(|(currency, balance)| {
                let zero = Money::zero(*currency);
                let statement = PeriodStatement {
                    balance: *balance,
                    opening: zero,
                    closing: zero,
                    lines: Vec::new(),
                };
                (*currency, statement)
            })
            .collect();
        let lines = self.lines.as_slice();
        let indexes = self.lines_by_user.get(&user).map_or(&[][..], Vec::as_slice);
        let (mut taken, mut next_from) = (0, None);
        for line in indexes.iter().map(|i| &lines[*i].line) {
            let Some(statement) = statements.get_mut(&line.amount.currency()) else {
                continue;
            };
            // Sums of amounts bounded by AMOUNT_MAJOR_UNITS_MAX cannot overflow a Decimal.
            let add = |sum: Money| sum.checked_add(line.amount).unwrap_or(sum);
            if period.after.is_some_and(|after| line.at <= after) {
                statement.opening = add(statement.opening);
            }
            if period.until.is_none_or(|until| line.at <= until) {
                statement.closing = add(statement.closing);
            }
            if !period.contains(line.at) || line.position < from_position {
                continue;
            }
            if taken < limit.max(1) {
                statement.lines.push(line.clone());
                taken += 1;
            } else if next_from.is_none() {
                next_from = Some(line.position);
            }
        }
        (statements, next_from)
    }

    /// Every user's balance per currency, for reconciliation; in no particular order.
    pub fn balances(&self) -> impl Iterator<Item = (UserId, &Money)> {
        self.balances
            .iter()
            .flat_map(|(user, by_currency)| by_currency.values().map(move |m| (*user, m)))
    }
}
