//! `ledger verify`: replays the whole log and checks every invariant of DOMAIN.md: each event
//! legal against the state before it, revisions gapless per stream, positions gapless, escrow
//! never negative and zero in terminal states, money conserved, the trial balance zero.
//! Other applications' streams hold no order: only their positions are checked.

use ledger_domain::{check_event, is_order_stream, Currency, MoneyMovement, OrderState};
use ledger_projections::{Account, Fact, FactError, Views};
use ledger_store::{fold_all, EventStore, RecordedEvent, StoreError, StreamName};
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

/// An event and, for the ledger's streams, what the views read of it.
type Decoded = Vec<(RecordedEvent, Option<Result<Fact, FactError>>)>;

/// Reads, decodes and checks the log at once, as a rebuild folds it
/// (`ledger_store::fold_all`): checking must go in order, and on one thread it waited for
/// the other two. `on_progress` is told the events checked so far, a page at a time.
pub async fn verify(
    store: &dyn EventStore,
    mut on_progress: impl FnMut(u64),
) -> Result<Report, StoreError> {
    let (checker, _) = fold_all(
        store,
        None,
        Checker::new(),
        |page| {
            Ok::<_, StoreError>(
                page.into_iter()
                    .map(|recorded| {
                        let fact = is_order_stream(recorded.stream.as_str())
                            .then(|| Fact::decode(&recorded));
                        (recorded, fact)
                    })
                    .collect::<Decoded>(),
            )
        },
        |checker, page| {
            for (recorded, fact) in page {
                checker.check(&recorded, fact);
            }
        },
        &mut on_progress,
    )
    .await?;
    Ok(checker.finish())
}

/// What the check carries from one event to the next.
struct Checker {
    report: Report,
    orders: HashMap<StreamName, (u64, OrderState)>,
    views: Views,
    paid_in: BTreeMap<Currency, Decimal>,
    next_position: u64,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            report: Report::default(),
            orders: HashMap::new(),
            // Only the journal's and the wallets' balances are asked of the views: the others
            // are not folded, and no change is tracked for a save.
            views: Views::unstored(),
            paid_in: BTreeMap::new(),
            next_position: 0,
        }
    }

    fn check(&mut self, recorded: &RecordedEvent, fact: Option<Result<Fact, FactError>>) {
        let report = &mut self.report;
        report.events += 1;
        let mut violation = |problem: String| {
            report.violation(Violation {
                at: Some((recorded.stream.to_string(), recorded.revision)),
                position: Some(recorded.position),
                problem,
            })
        };
        if recorded.position != self.next_position {
            violation(format!("position gap: expected {}", self.next_position));
        }
        self.next_position = recorded.position + 1;
        // Another application's stream: its positions are all there is to check.
        let Some(fact) = fact else {
            report.others += 1;
            return;
        };
        let (expected_revision, state) = self.orders.entry(recorded.stream.clone()).or_default();
        if recorded.revision != *expected_revision {
            violation(format!(
                "revision gap: expected revision {expected_revision}"
            ));
        }
        *expected_revision = recorded.revision + 1;
        let fact = match fact {
            Ok(fact) => fact,
            Err(error) => {
                violation(format!("unreadable: {error}"));
                return;
            }
        };
        if let Err(illegal) = check_event(state, &fact.event) {
            violation(format!("illegal {}: {illegal}", fact.event.event_type()));
        }
        state.apply(&fact.event);
        if let Some(MoneyMovement::PaidIn(money)) = fact.event.money_movement() {
            *self.paid_in.entry(money.currency()).or_default() += money.amount();
        }
        self.views.journal.apply(&fact);
        self.views.wallets.apply(&fact);
    }

    fn finish(mut self) -> Report {
        self.report.orders = self.orders.len();
        check_the_books(&self.views, &self.orders, &self.paid_in, &mut self.report);
        self.report
    }
}

/// Conservation and the trial balance, over the whole log.
fn check_the_books(
    views: &Views,
    orders: &HashMap<StreamName, (u64, OrderState)>,
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
