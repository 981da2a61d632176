//! Property tests over random command sequences on many orders at once: valid and invalid
//! commands, random actors, amounts, currencies and clock advances. Every invariant of
//! DOMAIN.md is checked after every command. CI sets `PROPTEST_CASES` to at least 10,000.

mod support;

use chrono::{DateTime, Duration, Utc};
use ledger_domain::*;
use proptest::prelude::*;
use std::collections::HashMap;
use support::*;
use uuid::Uuid;

const CURRENCIES: [&str; 4] = ["EUR", "JPY", "BHD", "USD"];
const ORDERS_MAX: usize = 5;
/// `amount_minor` standing for the largest amount that may be entered, in any currency: an
/// order's escrow with extras, and wallets, then pass it, and must still read back.
const LARGEST: i64 = i64::MAX;

#[derive(Clone, Debug)]
struct Step {
    order: usize,
    kind: usize,
    actor: u8,
    amount_minor: i64,
    other_currency: bool,
    days: u32,
    advance_minutes: i64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..ORDERS_MAX,
        0..CommandKind::ALL.len(),
        0u8..8,
        prop_oneof![
            0i64..=200,
            0i64..=50_000,
            Just(0i64),
            Just(1i64),
            Just(LARGEST)
        ],
        prop::bool::weighted(0.05),
        prop_oneof![0u32..=10, 0u32..=400],
        prop_oneof![
            4 => 0i64..=60 * 24,
            2 => 0i64..=60 * 24 * 10,
            1 => 0i64..=60 * 24 * 240,
        ],
    )
        .prop_map(
            |(order, kind, actor, amount_minor, other_currency, days, advance_minutes)| Step {
                order,
                kind,
                actor,
                amount_minor,
                other_currency,
                days,
                advance_minutes,
            },
        )
}

/// A market of a few orders; parties are drawn from one small pool, so a user is buyer on one
/// order and seller on another.
struct Market {
    currencies: Vec<Currency>,
    states: Vec<OrderState>,
    histories: Vec<Vec<Event>>,
    clock: DateTime<Utc>,
}

fn user(n: u8) -> UserId {
    UserId(Uuid::from_u128(0x100 + u128::from(n)))
}

impl Market {
    fn new(currency_picks: &[usize]) -> Market {
        Market {
            currencies: currency_picks
                .iter()
                .map(|&i| currency(CURRENCIES[i]))
                .collect(),
            states: vec![OrderState::new(); currency_picks.len()],
            histories: vec![Vec::new(); currency_picks.len()],
            clock: t0(),
        }
    }

    fn parties(order: usize) -> (UserId, UserId) {
        let order = order as u8;
        (user(order), user((order + 1) % ORDERS_MAX as u8))
    }

    fn actor(&self, order: usize, pick: u8) -> Actor {
        let (buyer, seller) = Market::parties(order);
        let stranger = user(pick + 40);
        match pick {
            0 | 1 => Actor::new(Role::Buyer, buyer),
            2 | 3 => Actor::new(Role::Seller, seller),
            4 => Actor::new(Role::Buyer, stranger),
            5 => Actor::new(Role::Seller, stranger),
            6 => Actor::new(Role::Mediator, user(99)),
            _ => Actor::system(),
        }
    }

    fn command(&self, s: &Step) -> Command {
        let order = s.order % self.states.len();
        let by = self.actor(order, s.actor);
        let at = self.clock;
        let (_, seller) = Market::parties(order);
        let mut currency = self.currencies[order];
        if s.other_currency {
            currency = self.currencies[(order + 1) % self.currencies.len()];
        }
        let amount = if s.amount_minor == LARGEST {
            rust_decimal::Decimal::from(AMOUNT_MAJOR_UNITS_MAX)
        } else {
            rust_decimal::Decimal::new(s.amount_minor, currency.minor_unit())
        };
        let amount = Money::new(amount, currency).expect("generated amounts are in range");
        let text = || format!("text {}", s.amount_minor);
        match CommandKind::ALL[s.kind] {
            CommandKind::Place => Command::Place {
                by,
                at,
                order_id: OrderId(Uuid::from_u128(order as u128)),
                seller: if s.actor == 1 { by.user_id } else { seller },
                title: text(),
                price: amount,
                delivery_days: s.days,
            },
            CommandKind::AcceptRevision => Command::AcceptRevision {
                by,
                at,
                delivery_days: s.days,
            },
            CommandKind::BuyExtra => Command::BuyExtra {
                by,
                at,
                kind: ExtraKind::CustomOffer,
                description: text(),
                price: amount,
                extra_days: s.days,
            },
            CommandKind::ExtendDeadline => Command::ExtendDeadline {
                by,
                at,
                due_at: at + Duration::days(i64::from(s.days)) - Duration::days(5),
            },
            CommandKind::PartialRefund => Command::PartialRefund {
                by,
                at,
                amount,
                reason: text(),
            },
            CommandKind::ResolveDispute => Command::ResolveDispute {
                by,
                at,
                resolution: match s.amount_minor % 3 {
                    0 => Resolution::Release,
                    1 => Resolution::Refund,
                    _ => Resolution::Split { refund: amount },
                },
                note: text(),
            },
            CommandKind::LeaveReview => Command::LeaveReview {
                by,
                at,
                rating: (s.amount_minor % 7) as u8,
                comment: None,
            },
            kind => sample(kind, by, at),
        }
    }
}

/// Money totals per currency, from the events' own amounts.
#[derive(Default, Debug)]
struct Totals {
    paid_in: HashMap<Currency, rust_decimal::Decimal>,
    sellers: HashMap<Currency, rust_decimal::Decimal>,
    buyers: HashMap<Currency, rust_decimal::Decimal>,
    commission: HashMap<Currency, rust_decimal::Decimal>,
}

impl Totals {
    fn record(&mut self, event: &Event) {
        let add = |map: &mut HashMap<Currency, rust_decimal::Decimal>, m: Money| {
            *map.entry(m.currency()).or_default() += m.amount();
        };
        match event.money_movement() {
            Some(MoneyMovement::PaidIn(m)) => add(&mut self.paid_in, m),
            Some(MoneyMovement::RefundedToBuyer(m)) => add(&mut self.buyers, m),
            Some(MoneyMovement::Released {
                seller_credit,
                commission,
            }) => {
                add(&mut self.sellers, seller_credit);
                add(&mut self.commission, commission);
            }
            None => {}
        }
    }
}

fn run(currency_picks: Vec<usize>, steps: Vec<Step>) -> Result<usize, TestCaseError> {
    let mut market = Market::new(&currency_picks);
    let mut totals = Totals::default();
    let policy = Policy::default();
    let mut accepted = 0;
    for s in &steps {
        market.clock += Duration::minutes(s.advance_minutes);
        let order = s.order % market.states.len();
        let command = market.command(s);
        let before = market.states[order].clone();
        let Ok(events) = decide(&before, &command, &policy) else {
            continue;
        };
        accepted += 1;
        prop_assert!(!events.is_empty());
        if before.status().is_some_and(Status::is_terminal) {
            // Nothing after a terminal state but one review of a closed order.
            prop_assert_eq!(before.status(), Some(Status::Closed));
            prop_assert!(before.order().is_some_and(|o| o.review.is_none()));
            prop_assert!(matches!(events.as_slice(), [Event::ReviewLeft(_)]));
        }
        let mut state = before;
        for event in &events {
            // Every decided event is legal for the state before it, and evolve takes it.
            prop_assert_eq!(check_event(&state, event), Ok(()));
            let count = state.order().map_or(0, |o| o.events);
            state = evolve(state, event);
            prop_assert_eq!(state.order().map(|o| o.events), Some(count + 1));
            // Every event round-trips through JSON unchanged.
            let json = serde_json::to_string(event).expect("serialises");
            let back: Event = serde_json::from_str(&json).expect("deserialises");
            prop_assert_eq!(&back, event);
            prop_assert_eq!(serde_json::to_string(&back).expect("serialises"), json);
            // And in the store's form: type beside, data alone.
            let mut data = Vec::new();
            event
                .serialize_data(&mut serde_json::Serializer::new(&mut data))
                .expect("data");
            let stored = Event::deserialize_data(
                event.event_type(),
                &mut serde_json::Deserializer::from_slice(&data),
            );
            prop_assert_eq!(stored.as_ref().ok(), Some(event));
            totals.record(event);
            market.histories[order].push(event.clone());
        }
        market.states[order] = state;
        check_money(&market, &totals)?;
    }
    Ok(accepted)
}

fn check_money(market: &Market, totals: &Totals) -> Result<(), TestCaseError> {
    let mut escrow: HashMap<Currency, rust_decimal::Decimal> = HashMap::new();
    for (state, history) in market.states.iter().zip(&market.histories) {
        let Some(order) = state.order() else { continue };
        let held = order.escrow_held;
        prop_assert!(
            held.amount() >= rust_decimal::Decimal::ZERO,
            "escrow negative"
        );
        if order.status.is_terminal() {
            prop_assert!(held.is_zero(), "{:?} holds {}", order.status, held);
        }
        // Escrow = price + extras − partial refunds − final refund − release.
        let mut from_history = rust_decimal::Decimal::ZERO;
        for event in history {
            match event.money_movement() {
                Some(MoneyMovement::PaidIn(m)) => from_history += m.amount(),
                Some(MoneyMovement::RefundedToBuyer(m)) => from_history -= m.amount(),
                Some(MoneyMovement::Released {
                    seller_credit,
                    commission,
                }) => from_history -= seller_credit.amount() + commission.amount(),
                None => {}
            }
        }
        prop_assert_eq!(held.amount(), from_history);
        *escrow.entry(held.currency()).or_default() += held.amount();
    }
    for (currency, paid_in) in &totals.paid_in {
        let get = |m: &HashMap<Currency, rust_decimal::Decimal>| {
            m.get(currency).copied().unwrap_or_default()
        };
        let accounted =
            get(&escrow) + get(&totals.sellers) + get(&totals.buyers) + get(&totals.commission);
        prop_assert_eq!(*paid_in, accounted, "money not conserved in {}", currency);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES overrides this; CI runs at least 10,000.
        cases: 512,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_command_sequences_keep_every_invariant(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        run(currency_picks, steps)?;
    }

    /// Sequences biased toward the lifecycle, so deep states (disputes, reviews) are reached
    /// often, not only by luck.
    #[test]
    fn sequences_along_the_lifecycle_keep_every_invariant(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=3),
        steps in lifecycle_steps(80),
    ) {
        run(currency_picks, steps)?;
    }
}

/// Steps whose actor is the party the command is for, the right role most of the time.
fn lifecycle_steps(len_max: usize) -> impl Strategy<Value = Vec<Step>> {
    use CommandKind::*;
    // Weighted toward moving forward, so that few orders die before their later states.
    let weights = [
        (Place, 4),
        (Confirm, 4),
        (Deliver, 4),
        (RequestRevision, 4),
        (AcceptRevision, 2),
        (RefuseRevision, 2),
        (Close, 2),
        (AutoClose, 1),
        (BuyExtra, 2),
        (ExtendDeadline, 1),
        (Cancel, 1),
        (Decline, 1),
        (Expire, 1),
        (RequestCancellation, 1),
        (AgreeCancellation, 1),
        (WithdrawCancellation, 1),
        (PartialRefund, 2),
        (OpenDispute, 1),
        (ResolveDispute, 2),
        (LeaveReview, 3),
    ];
    let kinds: Vec<usize> = weights
        .iter()
        .flat_map(|(kind, weight)| {
            let index = CommandKind::ALL.iter().position(|k| k == kind).unwrap_or(0);
            std::iter::repeat_n(index, *weight)
        })
        .collect();
    let kind = prop::sample::select(kinds);
    prop::collection::vec((step(), kind), 1..len_max).prop_map(|steps| {
        steps
            .into_iter()
            .map(|(mut s, kind)| {
                s.kind = kind;
                s.days %= 15;
                s.actor = match CommandKind::ALL[s.kind] {
                    CommandKind::ResolveDispute => 6,
                    CommandKind::Expire | CommandKind::AutoClose => 7,
                    CommandKind::Confirm
                    | CommandKind::Decline
                    | CommandKind::Deliver
                    | CommandKind::AcceptRevision
                    | CommandKind::RefuseRevision
                    | CommandKind::PartialRefund => 2,
                    _ if s.actor < 6 => s.actor % 4,
                    _ => s.actor,
                };
                s.other_currency = false;
                s
            })
            .collect()
    })
}

/// Guards the generators: if they stopped reaching deep states, the properties above would
/// pass without exercising anything.
#[test]
fn the_generators_reach_every_event_type() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::HashSet::new();
    let strategy = (
        prop::collection::vec(0..CURRENCIES.len(), 1..=2),
        lifecycle_steps(400),
    );
    for _ in 0..400 {
        let (picks, steps) = strategy.new_tree(&mut runner).expect("tree").current();
        let mut market = Market::new(&picks);
        for s in &steps {
            market.clock += Duration::minutes(s.advance_minutes);
            let order = s.order % market.states.len();
            if let Ok(events) = decide(
                &market.states[order],
                &market.command(s),
                &Policy::default(),
            ) {
                for event in &events {
                    seen.insert(event.event_type());
                    market.states[order] = evolve(market.states[order].clone(), event);
                }
            }
        }
    }
    let missing: Vec<_> = EVENT_TYPES.iter().filter(|t| !seen.contains(*t)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}
