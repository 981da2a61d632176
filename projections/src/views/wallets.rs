//! Wallet credit per user and currency, with the statement lines behind each balance.

use crate::Fact;
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
    pub at: DateTime<Utc>,
    pub amount: Money,
    pub reason: CreditReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub balance: Money,
    pub lines: Vec<StatementLine>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Parties {
    buyer: UserId,
    seller: UserId,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletView {
    wallets: BTreeMap<UserId, BTreeMap<Currency, Wallet>>,
    // Invariant: holds exactly the orders not yet closed or cancelled.
    open_orders: BTreeMap<OrderId, Parties>,
}

impl WalletView {
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
        let wallet = self
            .wallets
            .entry(user)
            .or_default()
            .entry(amount.currency())
            .or_insert_with(|| Wallet {
                balance: Money::zero(amount.currency()),
                lines: Vec::new(),
            });
        // Sums of amounts bounded by AMOUNT_MAJOR_UNITS_MAX cannot overflow a Decimal.
        wallet.balance = wallet.balance.checked_add(amount).unwrap_or(wallet.balance);
        wallet.lines.push(StatementLine {
            order: fact.order,
            position: fact.position,
            at: fact.event.at(),
            amount,
            reason,
        });
    }

    pub fn wallet(&self, user: UserId) -> BTreeMap<Currency, Wallet> {
        self.wallets.get(&user).cloned().unwrap_or_default()
    }

    /// Every user's balance per currency, for reconciliation.
    pub fn balances(&self) -> impl Iterator<Item = (UserId, &Money)> {
        self.wallets
            .iter()
            .flat_map(|(user, by_currency)| by_currency.values().map(move |w| (*user, &w.balance)))
    }
}
