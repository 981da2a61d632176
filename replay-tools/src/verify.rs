//! `ledger verify`: replays the whole log and checks every invariant of DOMAIN.md: each event
//! legal against the state before it, revisions gapless per stream, positions gapless, escrow
//! never negative and zero in terminal states, money conserved, the trial balance zero.
//! Other applications' streams hold no order: only their positions are checked.

use ledger_domain::{check_event, Currency, MoneyMovement, OrderState};
use ledger_projections::{Account, Fact, Views};
use ledger_store::{read_all_page, EventStore, StoreError};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Violations listed in full; past this they are only counted.
pub const VIOLATIONS_LISTED_MAX: usize = 1_000;

/// One broken invariant, where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Stream and revision; none for a problem of the whole log.
    pub at: Option<(String, u64)>,
    pub position: Option<u64>,
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.at, self.position) {
            (Some((stream, revision)), Some(position)) => {
                write!(
                    f,
                    "{stream} revision {revision} (position {position}): {}",
                    self.problem
                )
            }
            _ => write!(f, "the whole log: {}", self.problem),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub events: u64,
    pub orders: usize,
    /// Events of other applications' streams: their positions are checked, nothing else.
    pub others: u64,
    pub violations: Vec<Violation>,
    /// Violations past `VIOLATIONS_LISTED_MAX`.
    pub violations_unlisted: u64,
}

impl Report {
    pub fn is_sound(&self) -> bool {
        self.violations.is_empty()
    }

    fn violation(&mut self, violation: Violation) {
        if self.violations.len() < VIOLATIONS_LISTED_MAX {
            self.violations.push(violation);
        } else {
            self.violations_unlisted += 1;
        }
    }
}

pub async fn verify(store: &dyn EventStore) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut orders: HashMap<String, (u64, OrderState)> = HashMap::new();
    let mut views = Views::default();
    let mut paid_in: BTreeMap<Currency, Decimal> = BTreeMap::new();
    let mut next_position = 0;
    let mut others = 0;
    loop {
        let page = read_all_page(store, next_position).await?;
        if page.is_empty() {
            break;
        }
        for recorded in &page {
            report.events += 1;
            let stream = recorded.stream.to_string();
            let at = || Some((stream.clone(), recorded.revision));
            let mut violation = |problem: String| {
                report.violation(Violation {
                    at: at(),
                    position: Some(recorded.position),
                    problem,
                })
            };
            if recorded.position != next_position {
                violation(format!("position gap: expected {next_position}"));
            }
            next_position = recorded.position + 1;
            if !crate::transfer::is_the_ledgers(&recorded.stream) {
                others += 1;
                continue;
            }
            let (expected_revision, state) = orders.entry(stream.clone()).or_default();
            if recorded.revision != *expected_revision {
                violation(format!(
                    "revision gap: expected revision {expected_revision}"
                ));
            }
            *expected_revision = recorded.revision + 1;
            let fact = match Fact::decode(recorded) {
                Ok(fact) => fact,
                Err(error) => {
                    violation(format!("unreadable: {error}"));
                    continue;
                }
            };
            if let Err(illegal) = check_event(state, &fact.event) {
                violation(format!("illegal {}: {illegal}", fact.event.event_type()));
            }
            state.apply(&fact.event);
            if let Some(MoneyMovement::PaidIn(money)) = fact.event.money_movement() {
                *paid_in.entry(money.currency()).or_default() += money.amount();
            }
            views.apply(&fact);
        }
    }
    report.orders = orders.len();
    report.others = others;
    check_the_books(&views, &orders, &paid_in, &mut report);
    Ok(report)
}

/// Conservation and the trial balance, over the whole log.
fn check_the_books(
    views: &Views,
    orders: &HashMap<String, (u64, OrderState)>,
    paid_in: &BTreeMap<Currency, Decimal>,
    report: &mut Report,
) {
    let whole = |problem: String| Violation {
        at: None,
        position: None,
        problem,
    };
    for (currency, sum) in views.journal.trial_balance() {
        if sum != Decimal::ZERO {
            report.violation(whole(format!(
                "trial balance in {currency} is {sum}, not zero"
            )));
        }
    }
    let mut escrow: BTreeMap<Currency, Decimal> = BTreeMap::new();
    for (_, state) in orders.values() {
        if let Some(order) = state.order() {
            *escrow.entry(order.currency()).or_default() += order.escrow_held.amount();
        }
    }
    for (currency, paid) in paid_in {
        let wallets: Decimal = views
            .wallets
            .balances()
            .filter(|(_, m)| m.currency() == *currency)
            .map(|(_, m)| m.amount())
            .sum();
        let commission = views.journal.balance(Account::Commission, *currency);
        let held = escrow.get(currency).copied().unwrap_or_default();
        let accounted = held + wallets + commission;
        if *paid != accounted {
            report.violation(whole(format!(
                "money not conserved in {currency}: {paid} paid in, {accounted} accounted for \
                 (escrow {held}, wallets {wallets}, commission {commission})"
            )));
        }
    }
}
