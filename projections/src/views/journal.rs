//! The double-entry journal: one balanced posting per money movement between `payments`,
//! `escrow:<order>`, `wallet:<user>` and `commission`, and the trial balance.
//!
//! Convention: a posting debits one account and credits another by the same amount; an
//! account's balance is its debits minus its credits. Escrow and wallets hold positive
//! balances, `payments` (money that came in from outside) the negative of all paid in, so
//! the balances of every currency always sum to zero.

use crate::rows::{Appended, RowKey, Tracked};
use crate::Fact;
use chrono::{DateTime, Utc};
use ledger_domain::{Currency, Event, Money, OrderId, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Account {
    Payments,
    Escrow(OrderId),
    Wallet(UserId),
    Commission,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Payments => f.write_str("payments"),
            Account::Escrow(order) => write!(f, "escrow:{order}"),
            Account::Wallet(user) => write!(f, "wallet:{user}"),
            Account::Commission => f.write_str("commission"),
        }
    }
}

impl From<Account> for String {
    fn from(account: Account) -> String {
        account.to_string()
    }
}

impl TryFrom<String> for Account {
    type Error = String;
    fn try_from(text: String) -> Result<Account, String> {
        let uuid = |s: &str| uuid::Uuid::parse_str(s).map_err(|e| format!("{text}: {e}"));
        match text.split_once(':') {
            None if text == "payments" => Ok(Account::Payments),
            None if text == "commission" => Ok(Account::Commission),
            Some(("escrow", id)) => Ok(Account::Escrow(OrderId(uuid(id)?))),
            Some(("wallet", id)) => Ok(Account::Wallet(UserId(uuid(id)?))),
            _ => Err(format!("`{text}` is not an account")),
        }
    }
}

impl RowKey for Account {
    fn to_key(&self) -> String {
        self.to_string()
    }
    fn from_key(key: &str) -> Option<Self> {
        Account::try_from(key.to_owned()).ok()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub position: u64,
    pub order: OrderId,
    #[serde(with = "ledger_domain::instant")]
    pub at: DateTime<Utc>,
    pub debit: Account,
    pub credit: Account,
    pub amount: Money,
    /// One of a few fixed texts while folding; owned only when read back from storage.
    pub memo: Cow<'static, str>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalView {
    postings: Appended<Posting>,
    balances: Tracked<Account, BTreeMap<Currency, Decimal>>,
    // Invariant: holds exactly the orders not yet closed or cancelled.
    open_orders: Tracked<OrderId, (UserId, UserId)>,
}

impl JournalView {
    crate::rows::stored_tables!("postings" => postings, "balances" => balances, "open_orders" => open_orders);

    pub fn apply(&mut self, fact: &Fact) {
        let escrow = Account::Escrow(fact.order);
        match &fact.event {
            Event::OrderPlaced(e) => {
                self.open_orders.insert(fact.order, (e.buyer, e.seller));
                self.post(
                    fact,
                    escrow,
                    Account::Payments,
                    e.price,
                    "payment into escrow",
                );
            }
            Event::ExtraPurchased(e) => {
                self.post(
                    fact,
                    escrow,
                    Account::Payments,
                    e.price,
                    "extra paid into escrow",
                );
            }
            Event::PartialRefundIssued(e) => {
                if let Some((buyer, _)) = self.open_orders.get(&fact.order).copied() {
                    self.post(
                        fact,
                        Account::Wallet(buyer),
                        escrow,
                        e.amount,
                        "partial refund",
                    );
                }
            }
            Event::OrderCancelled(e) => {
                if let Some((buyer, _)) = self.open_orders.remove(&fact.order) {
                    self.post(
                        fact,
                        Account::Wallet(buyer),
                        escrow,
                        e.refund,
                        "cancellation refund",
                    );
                }
            }
            Event::OrderClosed(e) => {
                if let Some((_, seller)) = self.open_orders.remove(&fact.order) {
                    self.post(
                        fact,
                        Account::Wallet(seller),
                        escrow,
                        e.seller_credit,
                        "release to seller",
                    );
                    self.post(
                        fact,
                        Account::Commission,
                        escrow,
                        e.commission,
                        "platform commission",
                    );
                }
            }
            _ => {}
        }
    }

    fn post(
        &mut self,
        fact: &Fact,
        debit: Account,
        credit: Account,
        amount: Money,
        memo: &'static str,
    ) {
        if amount.is_zero() {
            return;
        }
        let currency = amount.currency();
        *self
            .balances
            .get_or_default(&debit)
            .entry(currency)
            .or_default() += amount.amount();
        *self
            .balances
            .get_or_default(&credit)
            .entry(currency)
            .or_default() -= amount.amount();
        self.postings.push(Posting {
            position: fact.position,
            order: fact.order,
            at: fact.event.at(),
            debit,
            credit,
            amount,
            memo: Cow::Borrowed(memo),
        });
    }

    /// Postings from `from_position` on, at most `limit`.
    pub fn postings(&self, from_position: u64, limit: usize) -> &[Posting] {
        let postings = self.postings.as_slice();
        let start = postings.partition_point(|p| p.position < from_position);
        let end = start.saturating_add(limit).min(postings.len());
        &postings[start..end]
    }

    /// Every account's balances, in no particular order.
    pub fn balances(&self) -> impl Iterator<Item = (&Account, &BTreeMap<Currency, Decimal>)> {
        self.balances.iter()
    }

    pub fn balance(&self, account: Account, currency: Currency) -> Decimal {
        self.balances
            .get(&account)
            .and_then(|b| b.get(&currency))
            .copied()
            .unwrap_or_default()
    }

    /// The sum of every account's balance per currency: zero in a sound ledger.
    pub fn trial_balance(&self) -> BTreeMap<Currency, Decimal> {
        let mut sums: BTreeMap<Currency, Decimal> = BTreeMap::new();
        for by_currency in self.balances.values() {
            for (currency, balance) in by_currency {
                *sums.entry(*currency).or_default() += *balance;
            }
        }
        sums
    }
}
