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
use std::collections::BTreeMap;
use std::fmt;

/// Written as its name (`escrow:<order>`) where people read it, and in binary formats (the
/// views' rows) as its kind and id: 19 bytes where the name took 45, twice in every posting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    /// The binary form: the control index, then the id's 16 bytes if it has one.
    fn to_bytes(self, bytes: &mut [u8; 17]) -> &[u8] {
        bytes[0] = self.control_index() as u8;
        match self.name_parts().1 {
            Some(id) => {
                bytes[1..].copy_from_slice(id.as_bytes());
                &bytes[..]
            }
            None => &bytes[..1],
        }
    }

    /// `to_bytes` read back; anything else, `None`.
    fn from_bytes(bytes: &[u8]) -> Option<Account> {
        let id = || uuid::Uuid::from_slice(bytes.get(1..)?).ok();
        match bytes.first()? {
            0 if bytes.len() == 1 => Some(Account::Payments),
            1 => Some(Account::Escrow(OrderId(id()?))),
            2 => Some(Account::Wallet(UserId(id()?))),
            3 if bytes.len() == 1 => Some(Account::Commission),
            _ => None,
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
        if !serializer.is_human_readable() {
            return serializer.serialize_bytes(self.to_bytes(&mut [0; 17]));
        }
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

impl<'de> Deserialize<'de> for Account {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Account, D::Error> {
        if deserializer.is_human_readable() {
            let name = String::deserialize(deserializer)?;
            return Account::try_from(name).map_err(serde::de::Error::custom);
        }
        deserializer.deserialize_bytes(AccountBytes)
    }
}

struct AccountBytes;

impl serde::de::Visitor<'_> for AccountBytes {
    type Value = Account;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an account's kind and id")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Account, E> {
        Account::from_bytes(bytes).ok_or_else(|| E::custom(format!("{bytes:?} is not an account")))
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

/// Keyed by its binary form, whose byte order is the accounts' order.
impl RowKey for Account {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_bytes(&mut [0; 17]));
    }
    fn from_key(key: &[u8]) -> Option<Self> {
        Account::from_bytes(key)
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
    pub memo: Memo,
}

/// Why money moved: one of a few fixed reasons. A byte in memory and in the views' rows,
/// where its text took 24 bytes a posting (a `Cow<str>`) and ~20 in each row; its text in
/// JSON and CSV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memo {
    PaymentIntoEscrow,
    ExtraPaidIntoEscrow,
    PartialRefund,
    CancellationRefund,
    ReleaseToSeller,
    PlatformCommission,
}

impl Memo {
    /// Every memo, each at its binary form's number.
    pub const ALL: [Memo; 6] = [
        Memo::PaymentIntoEscrow,
        Memo::ExtraPaidIntoEscrow,
        Memo::PartialRefund,
        Memo::CancellationRefund,
        Memo::ReleaseToSeller,
        Memo::PlatformCommission,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Memo::PaymentIntoEscrow => "payment into escrow",
            Memo::ExtraPaidIntoEscrow => "extra paid into escrow",
            Memo::PartialRefund => "partial refund",
            Memo::CancellationRefund => "cancellation refund",
            Memo::ReleaseToSeller => "release to seller",
            Memo::PlatformCommission => "platform commission",
        }
    }
}

impl fmt::Display for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl Serialize for Memo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(self.text())
        } else {
            serializer.serialize_u8(*self as u8)
        }
    }
}

impl<'de> Deserialize<'de> for Memo {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MemoVisitor)
    }
}

struct MemoVisitor;

impl serde::de::Visitor<'_> for MemoVisitor {
    type Value = Memo;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a posting's memo, as its text or its number")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Memo, E> {
        Memo::ALL
            .into_iter()
            .find(|memo| memo.text() == text)
            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &self))
    }

    fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Memo, E> {
        usize::try_from(number)
            .ok()
            .and_then(|index| Memo::ALL.get(index).copied())
            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(number), &self))
    }
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
    // Invariant: one entry per block of `POSTINGS_PER_BLOCK` postings; derived, rebuilt by
    // `reindex`. Postings are in log order and their instants nearly so, but not quite (two
    // commands decided in one order may commit in the other): these say which postings are
    // surely older or newer than an instant without looking at them, so that the books as at
    // an instant, or a period's postings, read only the postings that may count.
    #[serde(skip)]
    blocks: Vec<BlockInstants>,
}

/// Postings a block of `JournalView::blocks`: a few bytes of index for this many. Small in
/// unit tests, so that a few dozen postings span many blocks.
const POSTINGS_PER_BLOCK: usize = if cfg!(test) { 4 } else { 256 };

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlockInstants {
    /// The latest instant of every posting up to this block's end.
    latest_so_far: DateTime<Utc>,
    /// The earliest instant of this block's postings.
    earliest: DateTime<Utc>,
}

/// The instants a journal read keeps: `after` one (exclusive) and `until` one (inclusive),
/// so that a period's postings are exactly the difference between the books as at its two
/// ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Period {
    pub after: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Period {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.after.is_none_or(|after| at > after) && self.until.is_none_or(|until| at <= until)
    }
}

/// Postings looked at while the lock that lends the journal is held once, when the books
/// as at an instant are added up (`books_at`): commands are folded between two slices.
pub const POSTINGS_PER_SLICE: usize = 16_384;

/// The books as they stood at an instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BooksAt {
    /// Every account's balances, none at zero, in no particular order; empty when only the
    /// control accounts were asked for.
    pub accounts: Vec<(Account, BTreeMap<Currency, Decimal>)>,
    /// Each control account's balances, those not at zero.
    pub controls: Vec<(&'static str, BTreeMap<Currency, Decimal>)>,
    /// Per currency, the sum of every account: zero in a sound ledger.
    pub trial_balance: BTreeMap<Currency, Decimal>,
}

/// The books as at an instant, being added up. Either the postings made by then are added
/// from zero, or those made after are taken back from the balances of the moment it began,
/// whichever are fewer. Only postings below `scan.end` (the journal's length then) are read: they
/// never change, so slices read at different moments add up to the books of that one.
struct Tally {
    at: DateTime<Utc>,
    from_zero: bool,
    // Postings below it were all made by `at`.
    settled: usize,
    scan: std::ops::Range<usize>,
    // The last posting's position when the tally began: the journal it reads is still that one.
    last_position: Option<u64>,
    every_account: bool,
    accounts: crate::rows::FastMap<Account, BTreeMap<Currency, Decimal>>,
    controls: [BTreeMap<Currency, Decimal>; 4],
}

impl Tally {
    fn counts(&self, index: usize, posting: &Posting) -> bool {
        if self.from_zero {
            index < self.settled || posting.at <= self.at
        } else {
            posting.at > self.at
        }
    }

    fn add_up(&mut self, movements: &[(Account, Account, Money)]) {
        let sign = if self.from_zero {
            Decimal::ONE
        } else {
            Decimal::NEGATIVE_ONE
        };
        for (debit, credit, money) in movements {
            let (currency, amount) = (money.currency(), money.amount() * sign);
            for (account, delta) in [(*debit, amount), (*credit, -amount)] {
                add_to(&mut self.controls[account.control_index()], currency, delta);
                if self.every_account {
                    let balances = self.accounts.entry(account).or_default();
                    if add_to(balances, currency, delta) {
                        self.accounts.remove(&account);
                    }
                }
            }
        }
    }

    fn finish(self) -> BooksAt {
        BooksAt {
            trial_balance: sum_controls(&self.controls),
            accounts: self.accounts.into_iter().collect(),
            controls: CONTROL_ACCOUNTS
                .into_iter()
                .zip(self.controls)
                .filter(|(_, balances)| !balances.is_empty())
                .collect(),
        }
    }
}

/// The books as they stood at `at`: the postings made at or before it, by their events'
/// instants, however late they were logged. `lend` lends the journal for a moment (e.g.
/// under the views' lock) and is called once to begin, then once a slice of
/// `postings_per_slice`: the additions are made between, holding nothing. Without
/// `every_account`, only the control accounts are added up (no copy of every account).
pub fn books_at<E>(
    at: DateTime<Utc>,
    every_account: bool,
    postings_per_slice: usize,
    mut lend: impl FnMut(&mut dyn FnMut(&JournalView)) -> Result<(), E>,
) -> Result<BooksAt, E> {
    let mut movements = Vec::new();
    'begin: loop {
        let mut tally = None;
        lend(&mut |journal| tally = Some(journal.begin_tally(at, every_account)))?;
        let Some(mut tally) = tally else {
            return Ok(BooksAt::default());
        };
        let mut next = tally.scan.start;
        while next < tally.scan.end {
            let slice = next..next
                .saturating_add(postings_per_slice.max(1))
                .min(tally.scan.end);
            let mut same_journal = false;
            movements.clear();
            lend(&mut |journal| {
                same_journal = journal.copy_movements(&tally, slice.clone(), &mut movements);
            })?;
            if !same_journal {
                // Replaced wholesale (a rebuild) since the tally began: begin again.
                continue 'begin;
            }
            tally.add_up(&movements);
            next = slice.end;
        }
        return Ok(tally.finish());
    }
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
                    Memo::PaymentIntoEscrow,
                );
            }
            Event::ExtraPurchased(e) => {
                self.post(
                    fact,
                    escrow,
                    Account::Payments,
                    e.price,
                    Memo::ExtraPaidIntoEscrow,
                );
            }
            Event::PartialRefundIssued(e) => {
                if let Some((buyer, _)) = self.open_orders.get(&fact.order).copied() {
                    self.post(
                        fact,
                        Account::Wallet(buyer),
                        escrow,
                        e.amount,
                        Memo::PartialRefund,
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
                        Memo::CancellationRefund,
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
                        Memo::ReleaseToSeller,
                    );
                    self.post(
                        fact,
                        Account::Commission,
                        escrow,
                        e.commission,
                        Memo::PlatformCommission,
                    );
                }
            }
            _ => {}
        }
    }

    fn post(&mut self, fact: &Fact, debit: Account, credit: Account, amount: Money, memo: Memo) {
        if amount.is_zero() {
            return;
        }
        self.add(debit, amount.currency(), amount.amount());
        self.add(credit, amount.currency(), -amount.amount());
        note_instant(&mut self.blocks, self.postings.len(), fact.event.at());
        self.postings.push(Posting {
            position: fact.position,
            order: fact.order,
            at: fact.event.at(),
            debit,
            credit,
            amount,
            memo,
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
        self.blocks = Vec::new();
        for (index, posting) in self.postings.as_slice().iter().enumerate() {
            note_instant(&mut self.blocks, index, posting.at);
        }
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

    /// Postings from `from_position` on that were made in `period` (by their events'
    /// instants), in log order, `limit` of them or a few more: a page never splits one
    /// event's postings (a release and its commission), since the next page starts at a
    /// position and would repeat them. Returns the next page's position, if any. Blocks
    /// wholly outside the period are passed over without reading their postings.
    pub fn postings(
        &self,
        from_position: u64,
        period: Period,
        limit: usize,
    ) -> (Vec<Posting>, Option<u64>) {
        let postings = self.postings.as_slice();
        let mut index = postings.partition_point(|p| p.position < from_position);
        if let Some(after) = period.after {
            // Every posting of these blocks was made by `after`.
            let made_by_then = self
                .blocks
                .partition_point(|block| block.latest_so_far <= after);
            index = index.max(made_by_then.saturating_mul(POSTINGS_PER_BLOCK));
        }
        let mut page: Vec<Posting> = Vec::new();
        while let Some(posting) = postings.get(index) {
            let made_later =
                |block: &BlockInstants| period.until.is_some_and(|u| block.earliest > u);
            if index.is_multiple_of(POSTINGS_PER_BLOCK)
                && self
                    .blocks
                    .get(index / POSTINGS_PER_BLOCK)
                    .is_some_and(made_later)
            {
                index = index.saturating_add(POSTINGS_PER_BLOCK);
                continue;
            }
            if period.contains(posting.at) {
                let same_event = page
                    .last()
                    .is_some_and(|last| last.position == posting.position);
                if page.len() >= limit.max(1) && !same_event {
                    return (page, Some(posting.position));
                }
                page.push(posting.clone());
            }
            index += 1;
        }
        (page, None)
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
        sum_controls(&self.controls)
    }

    fn begin_tally(&self, at: DateTime<Utc>, every_account: bool) -> Tally {
        let postings = self.postings.as_slice();
        let settled_blocks = self
            .blocks
            .partition_point(|block| block.latest_so_far <= at);
        let settled = settled_blocks
            .saturating_mul(POSTINGS_PER_BLOCK)
            .min(postings.len());
        let from_zero = settled < postings.len() - settled;
        let (scan, accounts, controls) = if from_zero {
            (0..postings.len(), Default::default(), Default::default())
        } else {
            let accounts = if every_account {
                self.balances.iter().map(|(a, b)| (*a, b.clone())).collect()
            } else {
                Default::default()
            };
            (settled..postings.len(), accounts, self.controls.clone())
        };
        Tally {
            at,
            from_zero,
            settled,
            scan,
            last_position: postings.last().map(|p| p.position),
            every_account,
            accounts,
            controls,
        }
    }

    /// The movements in `slice` that `tally` counts, into `out`; false if this journal is
    /// no longer the one the tally began on.
    fn copy_movements(
        &self,
        tally: &Tally,
        slice: std::ops::Range<usize>,
        out: &mut Vec<(Account, Account, Money)>,
    ) -> bool {
        let postings = self.postings.as_slice();
        let end = tally.scan.end;
        let same_journal = match end.checked_sub(1) {
            Some(last) => postings.get(last).map(|p| p.position) == tally.last_position,
            None => true,
        };
        let Some(slice_postings) = postings.get(slice.clone()).filter(|_| same_journal) else {
            return false;
        };
        out.extend(
            (slice.start..)
                .zip(slice_postings)
                .filter(|(index, p)| tally.counts(*index, p))
                .map(|(_, p)| (p.debit, p.credit, p.amount)),
        );
        true
    }
}

/// Keeps `blocks` for the posting about to be pushed at `index`.
fn note_instant(blocks: &mut Vec<BlockInstants>, index: usize, at: DateTime<Utc>) {
    match blocks.last_mut() {
        Some(block) if !index.is_multiple_of(POSTINGS_PER_BLOCK) => {
            block.latest_so_far = block.latest_so_far.max(at);
            block.earliest = block.earliest.min(at);
        }
        last => {
            let latest_so_far = last.map_or(at, |block| block.latest_so_far.max(at));
            blocks.push(BlockInstants {
                latest_so_far,
                earliest: at,
            });
        }
    }
}

fn sum_controls(controls: &[BTreeMap<Currency, Decimal>; 4]) -> BTreeMap<Currency, Decimal> {
    let mut sums: BTreeMap<Currency, Decimal> = BTreeMap::new();
    for by_currency in controls {
        for (currency, balance) in by_currency {
            *sums.entry(*currency).or_default() += *balance;
        }
    }
    sums
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
    use chrono::{Duration, TimeZone};
    use ledger_domain::{Actor, OrderPlaced, Role};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000, 0)
            .single()
            .unwrap_or_default()
    }

    /// Placements of orders `first..`, each at `t0` and its minutes; the buyers and sellers
    /// repeat, so that wallets and escrow accounts are shared and left behind.
    fn placements(first: usize, minutes: &[i64]) -> Vec<Fact> {
        let eur = Currency::from_code("EUR").ok();
        let chf = Currency::from_code("CHF").ok();
        minutes
            .iter()
            .enumerate()
            .filter_map(|(offset, minutes)| {
                let index = first + offset;
                let currency = if index.is_multiple_of(3) { chf? } else { eur? };
                let price = Money::new(Decimal::new(100 + index as i64, 2), currency).ok()?;
                let order = OrderId(uuid::Uuid::from_u128(index as u128 + 1));
                let buyer = UserId(uuid::Uuid::from_u128(1_000 + index as u128 % 5));
                let at = t0() + Duration::minutes(*minutes);
                let event = Event::OrderPlaced(OrderPlaced {
                    order_id: order,
                    buyer,
                    seller: UserId(uuid::Uuid::from_u128(2_000 + index as u128 % 3)),
                    title: String::new(),
                    price,
                    delivery_days: 1,
                    commission_rate: Decimal::new(20, 2),
                    confirm_by: at,
                    escrow_after: price,
                    by: Actor::new(Role::Buyer, buyer),
                    at,
                });
                Some(Fact {
                    position: index as u64,
                    order,
                    revision: 0,
                    recorded_at: at,
                    event,
                })
            })
            .collect()
    }

    fn named(
        accounts: Vec<(Account, BTreeMap<Currency, Decimal>)>,
    ) -> BTreeMap<String, BTreeMap<Currency, Decimal>> {
        accounts
            .into_iter()
            .map(|(a, b)| (a.to_string(), b))
            .collect()
    }

    /// Lends `journal` as the views' lock would, unchanged between slices.
    fn lend(
        journal: &JournalView,
        read: &mut dyn FnMut(&JournalView),
    ) -> Result<(), std::convert::Infallible> {
        read(journal);
        Ok(())
    }

    proptest! {
        /// Instants are nearly in log order but not quite (two commands decided in one
        /// order may commit in the other). Placements logged with their instants a little
        /// out of order and a few far, over many blocks: as at any instant the books count
        /// exactly the postings made by then, and a period's postings, page by page, are
        /// exactly those made in it.
        #[test]
        fn the_books_and_a_periods_postings_count_by_instant_however_late_each_was_logged(
            jitter in prop::collection::vec(prop_oneof![12 => -40i64..=40, 1 => -2_000i64..2_000], 8..80),
            cuts in prop::collection::vec(-100i64..1_000, 1..4),
            postings_per_slice in prop_oneof![Just(POSTINGS_PER_SLICE), 1usize..12],
            page in 1usize..6,
        ) {
            let minutes: Vec<i64> = jitter.iter().enumerate().map(|(i, j)| i as i64 * 10 + j).collect();
            let facts = placements(0, &minutes);
            let mut journal = JournalView::default();
            facts.iter().for_each(|f| journal.apply(f));
            for minutes in &cuts {
                let at = t0() + Duration::minutes(*minutes);
                let mut then = JournalView::default();
                facts.iter().filter(|f| f.event.at() <= at).for_each(|f| then.apply(f));
                for every_account in [true, false] {
                    let Ok(books) = books_at(at, every_account, postings_per_slice, |read| lend(&journal, read));
                    let expected: Vec<(&str, BTreeMap<Currency, Decimal>)> =
                        then.controls().map(|(name, b)| (name, b.clone())).collect();
                    prop_assert_eq!(&books.controls, &expected, "control accounts as at {}", at);
                    prop_assert_eq!(&books.trial_balance, &then.trial_balance());
                    let expected = if every_account {
                        named(then.balances().map(|(a, b)| (*a, b.clone())).collect())
                    } else {
                        BTreeMap::new()
                    };
                    prop_assert_eq!(named(books.accounts), expected, "accounts as at {}", at);
                }
            }
            let ends: Vec<DateTime<Utc>> = cuts.iter().map(|m| t0() + Duration::minutes(*m)).collect();
            let period = match ends[..] {
                [a, b, ..] if a != b => Period { after: Some(a.min(b)), until: Some(a.max(b)) },
                [a, ..] => Period { after: None, until: Some(a) },
                [] => Period::default(),
            };
            let mut walked = Vec::new();
            let mut from = Some(0);
            while let Some(position) = from {
                let (postings, next) = journal.postings(position, period, page);
                prop_assert!(next.is_none_or(|next| next > position));
                walked.extend(postings);
                from = next;
            }
            let expected: Vec<Posting> = journal
                .postings
                .as_slice()
                .iter()
                .filter(|p| period.contains(p.at))
                .cloned()
                .collect();
            prop_assert_eq!(walked, expected);
        }

        /// Commands go on being folded between two slices: the books read are those of the
        /// moment the reading began, every slice of them.
        #[test]
        fn the_books_as_at_an_instant_are_of_the_moment_the_reading_began(
            placed in 2usize..60,
            later in 1usize..20,
            cut in 0i64..700,
            postings_per_slice in 1usize..8,
        ) {
            // Those folded while reading are older than every other: as at any instant after
            // them they would count, were they read.
            let first = placements(0, &(0..placed as i64).map(|i| 10 * i + 60).collect::<Vec<_>>());
            let meanwhile = placements(placed, &(0..later as i64).collect::<Vec<_>>());
            let mut journal = JournalView::default();
            first.iter().for_each(|f| journal.apply(f));
            let at = t0() + Duration::minutes(cut);
            let mut then = JournalView::default();
            first.iter().filter(|f| f.event.at() <= at).for_each(|f| then.apply(f));
            let mut folded_meanwhile = meanwhile.iter();
            let Ok(books) = books_at(at, true, postings_per_slice, |read: &mut dyn FnMut(&JournalView)| {
                read(&journal);
                if let Some(fact) = folded_meanwhile.next() {
                    journal.apply(fact);
                }
                Ok::<(), std::convert::Infallible>(())
            });
            prop_assert_eq!(named(books.accounts), named(then.balances().map(|(a, b)| (*a, b.clone())).collect()));
        }
    }

    fn account() -> impl Strategy<Value = Account> {
        prop_oneof![
            Just(Account::Payments),
            Just(Account::Commission),
            any::<u128>().prop_map(|id| Account::Escrow(OrderId(uuid::Uuid::from_u128(id)))),
            any::<u128>().prop_map(|id| Account::Wallet(UserId(uuid::Uuid::from_u128(id)))),
        ]
    }

    proptest! {
        /// Account names are answered by the API and exported:
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
            let json = serde_json::to_string(&account).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&json, &format!("\"{expected}\""));
            let back: Account = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, account);
        }

        /// In the views' rows an account is its kind and id, not its name, and reads back.
        #[test]
        fn an_account_in_a_row_is_its_kind_and_id_and_read_back(account in account()) {
            let row = crate::rows::RowBytes::default().of(&account)?.to_vec();
            prop_assert!(row.len() <= 19, "{} bytes", row.len());
            prop_assert_eq!(crate::rows::decode_row::<Account>("t", b"k", &row)?, account);
        }

        /// A stored key reads back, and keys sort as the accounts do: the rows of a
        /// save reach the store in its index's order.
        #[test]
        fn account_keys_read_back_and_sort_as_the_accounts(a in account(), b in account()) {
            use crate::rows::RowKey;
            prop_assert_eq!(Account::from_key(&a.to_key()), Some(a));
            prop_assert_eq!(a.to_key().cmp(&b.to_key()), a.cmp(&b));
        }
    }

    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    /// A memo is its text in JSON and one byte in a row, and reads back from either; what is
    /// no memo is refused.
    #[test]
    fn a_memo_is_its_text_in_json_and_a_byte_in_a_row() -> Result<(), Box<dyn std::error::Error>> {
        let mut texts = std::collections::BTreeSet::new();
        for memo in Memo::ALL {
            let json = serde_json::to_string(&memo)?;
            assert_eq!(json, format!("\"{memo}\""));
            assert_eq!(serde_json::from_str::<Memo>(&json)?, memo);
            let row = crate::rows::RowBytes::default().of(&memo)?.to_vec();
            assert_eq!(row.len(), 1, "{memo}");
            assert_eq!(crate::rows::decode_row::<Memo>("t", b"k", &row)?, memo);
            texts.insert(memo.text());
        }
        assert_eq!(texts.len(), Memo::ALL.len(), "each memo has its own text");
        assert!(serde_json::from_str::<Memo>("\"gift\"").is_err());
        let past_the_last = crate::rows::RowBytes::default()
            .of(&(Memo::ALL.len() as u8))?
            .to_vec();
        assert!(crate::rows::decode_row::<Memo>("t", b"k", &past_the_last).is_err());
        Ok(())
    }

    #[test]
    fn a_row_that_is_no_account_is_refused() {
        for bytes in [&[][..], &[0, 1][..], &[1; 5][..], &[1; 18][..], &[4][..]] {
            let mut encoder = crate::rows::RowBytes::default();
            let row = encoder.of(&Bytes(bytes)).unwrap_or_default();
            assert!(
                crate::rows::decode_row::<Account>("t", b"k", row).is_err(),
                "{bytes:?}"
            );
        }
    }
}
