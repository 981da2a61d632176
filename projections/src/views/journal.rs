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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub enum Account {
    Payments,
    Escrow(OrderId),
    Wallet(UserId),
    Commission,
}

/// The control accounts: every order's escrow rolls up into `escrow`, every user's wallet
/// into `wallet`; `payments` and `commission` are their own.
pub const CONTROL_ACCOUNTS: [&str; 4] = ["payments", "escrow", "wallet", "commission"];

impl Account {
    /// The name's fixed part, and the id that follows it. Names are written from these
    /// pieces, not through `write!`: every posting names two accounts, and formatting them
    /// was ~3% of a rebuild's samples.
    fn name_parts(&self) -> (&'static str, Option<uuid::Uuid>) {
        match self {
            Account::Payments => ("payments", None),
            Account::Escrow(order) => ("escrow:", Some(order.0)),
            Account::Wallet(user) => ("wallet:", Some(user.0)),
            Account::Commission => ("commission", None),
        }
    }

    fn control_index(&self) -> usize {
        match self {
            Account::Payments => 0,
            Account::Escrow(_) => 1,
            Account::Wallet(_) => 2,
            Account::Commission => 3,
        }
    }

    /// The control account this one rolls up into (`CONTROL_ACCOUNTS`).
    pub fn control(&self) -> &'static str {
        CONTROL_ACCOUNTS[self.control_index()]
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (fixed, id) = self.name_parts();
        f.write_str(fixed)?;
        match id {
            Some(id) => f.write_str(
                id.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            None => Ok(()),
        }
    }
}

/// The longest name: `escrow:` or `wallet:` and a hyphenated id.
const ACCOUNT_NAME_BYTES_MAX: usize = 7 + uuid::fmt::Hyphenated::LENGTH;

impl Serialize for Account {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut name = [0u8; ACCOUNT_NAME_BYTES_MAX];
        let (fixed, id) = self.name_parts();
        name[..fixed.len()].copy_from_slice(fixed.as_bytes());
        let length = match id {
            Some(id) => fixed.len() + id.hyphenated().encode_lower(&mut name[fixed.len()..]).len(),
            None => fixed.len(),
        };
        let name = std::str::from_utf8(&name[..length]).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(name)
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
    // Invariant: per control account (`CONTROL_ACCOUNTS`), the sum of its accounts'
    // balances, none at zero; derived, rebuilt by `reindex`. Finance's summary and the
    // trial balance's totals read these instead of walking an account per open order.
    #[serde(skip)]
    controls: [BTreeMap<Currency, Decimal>; 4],
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
        self.add(debit, amount.currency(), amount.amount());
        self.add(credit, amount.currency(), -amount.amount());
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

    /// An account back at zero is dropped: every finished order's escrow account would
    /// otherwise be kept, stored and listed for good.
    fn add(&mut self, account: Account, currency: Currency, delta: Decimal) {
        let balances = self.balances.get_or_default(&account);
        if add_to(balances, currency, delta) {
            self.balances.remove(&account);
        }
        add_to(&mut self.controls[account.control_index()], currency, delta);
    }

    pub(crate) fn reindex(&mut self) {
        self.controls = Default::default();
        for (account, balances) in self.balances.iter() {
            for (currency, balance) in balances {
                add_to(
                    &mut self.controls[account.control_index()],
                    *currency,
                    *balance,
                );
            }
        }
    }

    /// Postings from `from_position` on, `limit` of them or a few more: a page never splits
    /// one event's postings (a release and its commission), since the next page starts at a
    /// position and would repeat them. Returns the next page's position, if any.
    pub fn postings(&self, from_position: u64, limit: usize) -> (&[Posting], Option<u64>) {
        let postings = self.postings.as_slice();
        let start = postings.partition_point(|p| p.position < from_position);
        let mut end = start.saturating_add(limit.max(1)).min(postings.len());
        while let (Some(last), Some(next)) =
            (end.checked_sub(1).map(|i| &postings[i]), postings.get(end))
        {
            if next.position != last.position {
                break;
            }
            end += 1;
        }
        (&postings[start..end], postings.get(end).map(|p| p.position))
    }

    /// Every account's balances, in no particular order; none is at zero.
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

    /// Each control account's balances (the sum of its accounts'), those not at zero.
    pub fn controls(&self) -> impl Iterator<Item = (&'static str, &BTreeMap<Currency, Decimal>)> {
        CONTROL_ACCOUNTS
            .into_iter()
            .zip(&self.controls)
            .filter(|(_, balances)| !balances.is_empty())
    }

    /// The sum of every account's balance per currency: zero in a sound ledger.
    pub fn trial_balance(&self) -> BTreeMap<Currency, Decimal> {
        let mut sums: BTreeMap<Currency, Decimal> = BTreeMap::new();
        for by_currency in &self.controls {
            for (currency, balance) in by_currency {
                *sums.entry(*currency).or_default() += *balance;
            }
        }
        sums
    }
}

/// Adds `delta` to the balance in `currency`, dropping it at zero; true once none is left.
fn add_to(balances: &mut BTreeMap<Currency, Decimal>, currency: Currency, delta: Decimal) -> bool {
    let balance = balances.entry(currency).or_default();
    *balance += delta;
    if balance.is_zero() {
        balances.remove(&currency);
    }
    balances.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn account() -> impl Strategy<Value = Account> {
        prop_oneof![
            Just(Account::Payments),
            Just(Account::Commission),
            any::<u128>().prop_map(|id| Account::Escrow(OrderId(uuid::Uuid::from_u128(id)))),
            any::<u128>().prop_map(|id| Account::Wallet(UserId(uuid::Uuid::from_u128(id)))),
        ]
    }

    proptest! {
        /// Account names are stored in rows and keys, answered by the API and exported:
        /// written piecewise, they must read as they always have, and back.
        #[test]
        fn an_account_is_named_as_before_and_read_back(account in account()) {
            let expected = match account {
                Account::Payments => "payments".to_owned(),
                Account::Commission => "commission".to_owned(),
                Account::Escrow(order) => format!("escrow:{}", order.0.hyphenated()),
                Account::Wallet(user) => format!("wallet:{}", user.0.hyphenated()),
            };
            prop_assert_eq!(account.to_string(), expected.clone());
            prop_assert_eq!(account.to_key(), expected.clone());
            let json = serde_json::to_string(&account).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&json, &format!("\"{expected}\""));
            let back: Account = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, account);
        }
    }
}
