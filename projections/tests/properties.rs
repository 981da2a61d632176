//! Views against the log: incremental equals rebuilt, the books balance at every position,
//! finished orders hold nothing, money is conserved, the completion rate counts as DOMAIN.md.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_domain::*;
use ledger_projections::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use uuid::Uuid;

const ORDERS_MAX: usize = 6;
const CURRENCIES: [&str; 3] = ["EUR", "JPY", "BHD"];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("instant")
}

/// Commands a marketplace sends, weighted toward moving orders forward.
const KINDS: [(CommandKind, u32); 16] = [
    (CommandKind::Place, 4),
    (CommandKind::Confirm, 4),
    (CommandKind::Deliver, 4),
    (CommandKind::Close, 3),
    (CommandKind::RequestRevision, 2),
    (CommandKind::AcceptRevision, 1),
    (CommandKind::RefuseRevision, 2),
    (CommandKind::AutoClose, 2),
    (CommandKind::Expire, 1),
    (CommandKind::BuyExtra, 2),
    (CommandKind::PartialRefund, 2),
    (CommandKind::Cancel, 1),
    (CommandKind::Decline, 1),
    (CommandKind::OpenDispute, 1),
    (CommandKind::ResolveDispute, 2),
    (CommandKind::LeaveReview, 2),
];

/// `amount_minor` standing for the largest amount that may be entered, in any currency.
const LARGEST: i64 = i64::MAX;

#[derive(Clone, Debug)]
struct Step {
    order: usize,
    kind: CommandKind,
    by_buyer: bool,
    amount_minor: i64,
    resolution: u8,
    advance_minutes: i64,
}

fn step() -> impl Strategy<Value = Step> {
    let kinds: Vec<CommandKind> = KINDS
        .iter()
        .flat_map(|(k, w)| std::iter::repeat_n(*k, *w as usize))
        .collect();
    (
        0..ORDERS_MAX,
        prop::sample::select(kinds),
        any::<bool>(),
        // Now and then the largest amount that may be entered: escrow with extras, and the
        // wallets it is released to, then pass it, and must come back from stored rows.
        prop_oneof![9 => 1i64..20_000, 1 => Just(LARGEST)],
        0u8..3,
        prop_oneof![3 => 0i64..600, 2 => 0i64..(60 * 24 * 8), 1 => 0i64..(60 * 24 * 100)],
    )
        .prop_map(
            |(order, kind, by_buyer, amount_minor, resolution, advance_minutes)| Step {
                order,
                kind,
                by_buyer,
                amount_minor,
                resolution,
                advance_minutes,
            },
        )
}

fn command(s: &Step, order: OrderId, currency: Currency, at: DateTime<Utc>) -> Command {
    let n = order.0.as_u128();
    let buyer = Actor::new(Role::Buyer, UserId(Uuid::from_u128(100 + n % 4)));
    // Sellers overlap across orders so that completion rates aggregate.
    let seller = Actor::new(Role::Seller, UserId(Uuid::from_u128(200 + n % 3)));
    let party = if s.by_buyer { buyer } else { seller };
    let amount = if s.amount_minor == LARGEST {
        Decimal::from(ledger_domain::AMOUNT_MAJOR_UNITS_MAX)
    } else {
        Decimal::new(s.amount_minor, currency.minor_unit())
    };
    let amount = Money::new(amount, currency).expect("amount in range");
    let reason = || "reason".to_owned();
    match s.kind {
        CommandKind::Place => Command::Place {
            by: buyer,
            at,
            order_id: order,
            seller: seller.user_id,
            title: "t".into(),
            price: amount,
            delivery_days: 3,
        },
        CommandKind::Confirm => Command::Confirm { by: seller, at },
        CommandKind::Deliver => Command::Deliver {
            by: seller,
            at,
            message: String::new(),
        },
        CommandKind::Close => Command::Close { by: buyer, at },
        CommandKind::RequestRevision => Command::RequestRevision {
            by: buyer,
            at,
            reason: reason(),
        },
        CommandKind::AcceptRevision => Command::AcceptRevision {
            by: seller,
            at,
            delivery_days: 2,
        },
        CommandKind::RefuseRevision => Command::RefuseRevision {
            by: seller,
            at,
            reason: reason(),
        },
        CommandKind::AutoClose => Command::AutoClose {
            by: Actor::system(),
            at,
        },
        CommandKind::Expire => Command::Expire {
            by: Actor::system(),
            at,
        },
        CommandKind::BuyExtra => Command::BuyExtra {
            by: buyer,
            at,
            kind: ExtraKind::Option,
            description: "x".into(),
            price: amount,
            extra_days: 1,
        },
        CommandKind::PartialRefund => Command::PartialRefund {
            by: seller,
            at,
            amount,
            reason: reason(),
        },
        CommandKind::Cancel => Command::Cancel {
            by: party,
            at,
            reason: reason(),
        },
        CommandKind::Decline => Command::Decline {
            by: seller,
            at,
            reason: reason(),
        },
        CommandKind::OpenDispute => Command::OpenDispute {
            by: party,
            at,
            reason: reason(),
        },
        CommandKind::ResolveDispute => Command::ResolveDispute {
            by: Actor::new(Role::Mediator, UserId(Uuid::from_u128(9))),
            at,
            resolution: match s.resolution {
                0 => Resolution::Release,
                1 => Resolution::Refund,
                _ => Resolution::Split { refund: amount },
            },
            note: "ruling".into(),
        },
        _ => Command::LeaveReview {
            by: buyer,
            at,
            rating: 4,
            comment: None,
        },
    }
}

/// A history produced by the real rules: every accepted command's events, as facts.
fn history(currency_picks: &[usize], steps: &[Step]) -> Vec<Fact> {
    let mut states = vec![OrderState::new(); currency_picks.len()];
    let mut revisions = vec![0u64; currency_picks.len()];
    let mut clock = t0();
    let mut facts = Vec::new();
    for s in steps {
        clock += Duration::minutes(s.advance_minutes);
        let index = s.order % states.len();
        let order = OrderId(Uuid::from_u128(index as u128 + 1));
        let currency = Currency::from_code(CURRENCIES[currency_picks[index]]).expect("currency");
        let Ok(events) = decide(
            &states[index],
            &command(s, order, currency, clock),
            &Policy::default(),
        ) else {
            continue;
        };
        for event in events {
            states[index] = evolve(std::mem::take(&mut states[index]), &event);
            facts.push(Fact {
                position: facts.len() as u64,
                order,
                revision: revisions[index],
                recorded_at: clock,
                event,
            });
            revisions[index] += 1;
        }
    }
    facts
}

/// The read-model database's rows, in memory: what `Projector::save` writes and `open` reads.
#[derive(Default)]
struct StoredRows(BTreeMap<(ViewName, &'static str, Vec<u8>), Vec<u8>>);

impl StoredRows {
    /// As the engine saves: the changes are taken as copies, serialised afterwards.
    fn save(&mut self, views: &mut Views) {
        for (view, tables) in views.take_pending() {
            for table in tables {
                let mut rows = Vec::new();
                table.into_rows(&mut rows).expect("rows");
                for row in rows {
                    match row.value {
                        Some(value) => self.0.insert((view, row.table, row.key), value),
                        None => self.0.remove(&(view, row.table, row.key)),
                    };
                }
            }
        }
    }

    fn load(&self) -> Views {
        let mut views = Views::default();
        for ((view, table, key), value) in &self.0 {
            views.load_row(*view, table, key, value).expect("row loads");
        }
        views.reindex();
        views
    }
}

fn rebuilt(facts: &[Fact]) -> Views {
    let mut views = Views::default();
    facts.iter().for_each(|f| views.apply(f));
    views
}

fn assert_same_bytes(left: &Views, right: &Views) -> Result<(), TestCaseError> {
    for view in ViewName::ALL {
        prop_assert_eq!(
            left.to_json(view).expect("json"),
            right.to_json(view).expect("json"),
            "view {:?}",
            view
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_batches_with_saves_and_restarts_equal_a_rebuild_from_zero(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        batches in prop::collection::vec((1usize..20, 0u8..3), 1..200),
    ) {
        let facts = history(&currency_picks, &steps);
        let mut views = Views::default();
        let mut stored = StoredRows::default();
        let mut applied = 0;
        for (size, then) in batches.iter().cycle() {
            if applied >= facts.len() {
                break;
            }
            let end = (applied + size).min(facts.len());
            facts[applied..end].iter().for_each(|f| views.apply(f));
            applied = end;
            match then {
                // A save: only the rows that changed are written.
                1 => stored.save(&mut views),
                // A save, then a restart: the views come back from the stored rows alone.
                2 => {
                    stored.save(&mut views);
                    views = stored.load();
                }
                _ => {}
            }
        }
        assert_same_bytes(&views, &rebuilt(&facts))?;
        stored.save(&mut views);
        let loaded = stored.load();
        assert_same_bytes(&loaded, &rebuilt(&facts))?;
        // The indexes derived on load (lists per buyer and seller, the timers' schedule,
        // statement lines per user) are the ones the fold keeps as it goes.
        prop_assert!(loaded == rebuilt(&facts), "derived indexes differ after a restart");
    }

    #[test]
    fn the_books_balance_and_money_is_conserved_at_every_position(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let facts = history(&currency_picks, &steps);
        let mut views = Views::default();
        let mut paid_in: BTreeMap<Currency, Decimal> = BTreeMap::new();
        for fact in &facts {
            views.apply(fact);
            if let Some(MoneyMovement::PaidIn(m)) = fact.event.money_movement() {
                *paid_in.entry(m.currency()).or_default() += m.amount();
            }
            for (currency, sum) in views.journal.trial_balance() {
                prop_assert_eq!(sum, Decimal::ZERO, "trial balance in {} at {}", currency, fact.position);
            }
            // The control accounts, kept as the fold goes, are the sums of their accounts.
            let mut rolled_up: BTreeMap<&str, BTreeMap<Currency, Decimal>> = BTreeMap::new();
            for (account, balances) in views.journal.balances() {
                for (currency, balance) in balances {
                    *rolled_up.entry(account.control()).or_default().entry(*currency).or_default() += *balance;
                }
            }
            let kept: BTreeMap<&str, BTreeMap<Currency, Decimal>> =
                views.journal.controls().map(|(name, b)| (name, b.clone())).collect();
            prop_assert_eq!(kept, rolled_up, "control accounts at {}", fact.position);
            // Finished orders hold nothing; escrow holdings agree with the orders view.
            if let Some(order) = views.orders.order(fact.order) {
                if order.status.is_terminal() {
                    prop_assert!(order.escrow_held.is_zero());
                    prop_assert!(views.escrow.holding(fact.order).is_none());
                    // Nor does the journal keep its escrow account, at zero, for good.
                    let escrow_account = Account::Escrow(fact.order);
                    prop_assert!(views.journal.balances().all(|(account, _)| *account != escrow_account));
                } else {
                    prop_assert_eq!(views.escrow.holding(fact.order).map(|h| h.held), Some(order.escrow_held));
                }
            }
            // Paid in = escrow + wallets + commission, per currency.
            let escrow = views.escrow.totals();
            for (currency, paid) in &paid_in {
                let wallets: Decimal = views.wallets.balances().filter(|(_, m)| m.currency() == *currency).map(|(_, m)| m.amount()).sum();
                let commission = views.journal.balance(Account::Commission, *currency);
                let held = escrow.get(currency).copied().unwrap_or_default();
                prop_assert_eq!(*paid, held + wallets + commission, "conservation in {}", currency);
                prop_assert_eq!(views.journal.balance(Account::Payments, *currency), -*paid);
            }
        }
    }

    /// Finance's books at a month's end: as at any instant, every account, control account
    /// and the trial balance are those of the journal of the events made by then. (Instants
    /// out of log order, and journals of many blocks: the unit tests of `views::journal`.)
    #[test]
    fn the_books_as_at_an_instant_are_the_journal_of_the_events_made_by_then(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), -1i64..=1), 1..4),
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let mut instants = vec![t0() - Duration::days(1), t0() + Duration::days(100_000)];
        if !facts.is_empty() {
            for (index, nudge) in &cuts {
                instants.push(facts[index.index(facts.len())].event.at() + Duration::seconds(*nudge));
            }
        }
        for at in instants {
            let mut then = JournalView::default();
            facts.iter().filter(|f| f.event.at() <= at).for_each(|f| then.apply(f));
            assert_books_as_at(&views.journal, &then, at, POSTINGS_PER_SLICE)?;
        }
    }

    /// Finance's escrow at a month's end: as at any instant, what escrow held and its aging
    /// are what the escrow view of the events made by then answered at that instant.
    #[test]
    fn escrow_as_at_an_instant_is_the_escrow_view_of_the_events_made_by_then(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), -2i64..=2), 1..4),
        days_later in prop::collection::vec(0i64..120, 1..3),
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let mut instants = vec![t0() - Duration::days(1)];
        if !facts.is_empty() {
            for (index, nudge) in &cuts {
                let at = facts[index.index(facts.len())].event.at();
                instants.push(at + Duration::seconds(*nudge));
                // Days on, so that holdings age into the older buckets.
                instants.extend(days_later.iter().map(|days| at + Duration::days(*days)));
            }
        }
        let lend = |read: &mut dyn FnMut(&JournalView)| {
            read(&views.journal);
            Ok::<(), std::convert::Infallible>(())
        };
        for at in instants {
            let mut then = EscrowView::default();
            facts.iter().filter(|f| f.event.at() <= at).for_each(|f| then.apply(f));
            let aging = then.aging(at);
            let expected: BTreeMap<Currency, (Decimal, [Decimal; 4])> = then
                .totals()
                .into_iter()
                .map(|(currency, held)| (currency, (held, aging[&currency])))
                .collect();
            let books = books_at(at, true, POSTINGS_PER_SLICE, lend)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let placed_at = |order| views.orders.order(order).map(|o| o.placed_at);
            prop_assert_eq!(escrow_as_at(&books, placed_at, at), expected, "as at {}", at);
        }
    }

    /// A month's journal: the postings made in a period, page by page.
    #[test]
    fn a_periods_postings_walked_in_pages_are_the_difference_between_the_books_at_its_ends(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        ends in period_ends(),
        page in 1usize..5,
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        assert_period_walk(&views.journal, period_among(&facts, ends), page)?;
    }

    /// A wallet's statement for a month, walked in pages: the lines made in the period,
    /// each once and in log order, and the balances at its ends, which differ by what those
    /// lines credited.
    #[test]
    fn a_wallets_statement_for_a_period_is_the_lines_made_in_it_between_its_balances_at_both_ends(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        ends in period_ends(),
        page in 1usize..5,
        whose in any::<prop::sample::Index>(),
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let period = period_among(&facts, ends);
        let Period { after, until } = period;
        let users: std::collections::BTreeSet<UserId> =
            views.wallets.balances().map(|(user, _)| user).collect();
        let Some(user) = users.iter().nth(whose.index(users.len().max(1))).copied() else {
            return Ok(());
        };
        // Naively, from every line of the wallet.
        let sum = |lines: &mut dyn Iterator<Item = &StatementLine>, currency: Currency| {
            lines.fold(Money::zero(currency), |sum, line| sum.checked_add(line.amount).unwrap_or(sum))
        };
        let whole = views.wallets.wallet(user);
        let mut walked: BTreeMap<Currency, Vec<StatementLine>> = BTreeMap::new();
        let (mut from, mut pages) = (0, 0);
        loop {
            let (statements, next) = views.wallets.period_statement(user, period, from, page);
            prop_assert_eq!(statements.keys().collect::<Vec<_>>(), whole.keys().collect::<Vec<_>>());
            let mut on_page = 0;
            for (currency, statement) in &statements {
                let wallet = &whole[currency];
                let opening = sum(&mut wallet.lines.iter().filter(|l| after.is_some_and(|a| l.at <= a)), *currency);
                let closing = sum(&mut wallet.lines.iter().filter(|l| until.is_none_or(|u| l.at <= u)), *currency);
                prop_assert_eq!(statement.balance, wallet.balance);
                prop_assert_eq!(statement.opening, opening);
                prop_assert_eq!(statement.closing, closing);
                on_page += statement.lines.len();
                walked.entry(*currency).or_default().extend(statement.lines.iter().cloned());
            }
            prop_assert!(on_page <= page);
            pages += 1;
            prop_assert!(pages <= 200, "the pages never end");
            match next {
                Some(next) => {
                    prop_assert!(next > from);
                    from = next;
                }
                None => break,
            }
        }
        for (currency, wallet) in &whole {
            let expected: Vec<StatementLine> =
                wallet.lines.iter().filter(|l| period.contains(l.at)).cloned().collect();
            let got = walked.remove(currency).unwrap_or_default();
            let statement = &views.wallets.period_statement(user, period, 0, usize::MAX).0[currency];
            let credited = sum(&mut got.iter(), *currency);
            prop_assert_eq!(statement.opening.checked_add(credited).ok(), Some(statement.closing));
            prop_assert_eq!(got, expected, "{:?}", currency);
        }
    }

    #[test]
    fn escrow_pages_of_any_size_list_each_old_enough_holding_once_oldest_first(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        later_days in 0i64..120,
        min_age_days in 0i64..60,
        page in 1usize..5,
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let now = facts.last().map_or_else(t0, |f| f.recorded_at) + Duration::days(later_days);
        // Naively: every order's holding, filtered by age, sorted.
        let mut expected: Vec<(DateTime<Utc>, OrderId, Money)> = facts
            .iter()
            .map(|f| f.order)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|order| views.escrow.holding(order).map(|h| (h.since, order, h.held)))
            .filter(|(since, _, _)| (now - *since).num_days() >= min_age_days)
            .collect();
        expected.sort_by_key(|(since, order, _)| (*since, *order));
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let holdings = views.escrow.holdings_older_than(min_age_days, now, after, page);
            prop_assert!(holdings.len() <= page);
            let Some(last) = holdings.last() else { break };
            after = Some((last.since, last.order));
            for h in &holdings {
                prop_assert_eq!(h.age_days, (now - h.since).num_days());
                walked.push((h.since, h.order, h.held));
            }
        }
        prop_assert_eq!(walked, expected);
    }

    #[test]
    fn escrow_totals_and_aging_equal_a_sum_over_every_holding_at_any_instant(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        later_minutes in 0i64..(60 * 24 * 200),
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let holdings: Vec<EscrowHolding> = (1..=ORDERS_MAX as u128)
            .filter_map(|n| views.escrow.holding(OrderId(Uuid::from_u128(n))).cloned())
            .collect();
        // Naively, holding by holding; amounts compared as text, so a scale shows too.
        let naive_totals: BTreeMap<Currency, String> = holdings
            .iter()
            .fold(BTreeMap::<Currency, Decimal>::new(), |mut totals, h| {
                *totals.entry(h.held.currency()).or_insert_with(|| Money::zero(h.held.currency()).amount()) += h.held.amount();
                totals
            })
            .into_iter()
            .map(|(currency, held)| (currency, held.to_string()))
            .collect();
        let totals: BTreeMap<Currency, String> =
            views.escrow.totals().into_iter().map(|(c, held)| (c, held.to_string())).collect();
        prop_assert_eq!(totals, naive_totals);
        // Any instant, and a nanosecond either side of each bucket's bound for each holding.
        let last = facts.last().map_or_else(t0, |f| f.recorded_at);
        let mut nows = vec![last + Duration::minutes(later_minutes)];
        for h in &holdings {
            for upper in AGING_BUCKET_UPPER_DAYS {
                let bound = h.since + Duration::days(upper + 1);
                nows.extend([-1, 0, 1].map(|ns| bound + Duration::nanoseconds(ns)));
            }
        }
        for now in nows {
            let mut naive: BTreeMap<Currency, [Decimal; 4]> = BTreeMap::new();
            for h in &holdings {
                let age = (now - h.since).num_days();
                let bucket = AGING_BUCKET_UPPER_DAYS.iter().position(|upper| age <= *upper).unwrap_or(3);
                naive.entry(h.held.currency()).or_insert([Money::zero(h.held.currency()).amount(); 4])[bucket] += h.held.amount();
            }
            let text = |aging: BTreeMap<Currency, [Decimal; 4]>| -> BTreeMap<Currency, [String; 4]> {
                aging.into_iter().map(|(c, buckets)| (c, buckets.map(|d| d.to_string()))).collect()
            };
            prop_assert_eq!(text(views.escrow.aging(now)), text(naive), "at {}", now);
        }
    }

    #[test]
    fn a_rebuild_that_builds_its_indexes_at_the_end_has_those_kept_event_by_event(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let facts = history(&currency_picks, &steps);
        let mut kept = Views::default();
        facts.iter().for_each(|f| kept.apply(f));
        let mut deferred = Views::default();
        deferred.defer_indexes();
        facts.iter().for_each(|f| deferred.apply(f));
        deferred.build_deferred_indexes();
        // Derived indexes included: `Views` compares them too.
        prop_assert_eq!(deferred, kept);
    }

    #[test]
    fn a_wallet_statement_walked_in_pages_of_any_size_is_the_whole_statement(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        page in 1usize..4,
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let users: std::collections::BTreeSet<UserId> =
            views.wallets.balances().map(|(user, _)| user).collect();
        for user in users {
            let whole = views.wallets.wallet(user);
            let mut walked: BTreeMap<Currency, Vec<StatementLine>> = BTreeMap::new();
            let mut from = Some(0);
            while let Some(position) = from {
                let (wallets, next) = views.wallets.wallet_page(user, position, page);
                let lines: usize = wallets.values().map(|w| w.lines.len()).sum();
                prop_assert!(lines <= page && (lines > 0 || next.is_none()));
                prop_assert!(next.is_none_or(|next| next > position));
                for (currency, wallet) in wallets {
                    prop_assert_eq!(wallet.balance, whole[&currency].balance);
                    walked.entry(currency).or_default().extend(wallet.lines);
                }
                from = next;
            }
            let expected: BTreeMap<Currency, Vec<StatementLine>> =
                whole.into_iter().map(|(currency, w)| (currency, w.lines)).collect();
            prop_assert_eq!(walked, expected);
        }
    }

    #[test]
    fn an_orders_list_walked_in_pages_holds_each_matching_order_once_in_id_order(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        page in 1usize..4,
        party_pick in any::<prop::sample::Index>(),
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let placed: std::collections::BTreeSet<OrderId> = facts.iter().map(|f| f.order).collect();
        let orders: Vec<&Order> = placed.iter().filter_map(|id| views.orders.order(*id)).collect();
        // A history may place none; its lists are then empty.
        let party = (!orders.is_empty()).then(|| orders[party_pick.index(orders.len())]);
        let statuses = Status::ALL.into_iter().map(Some).chain([None]);
        let filters = statuses.flat_map(|status| {
            [
                OrderFilter { buyer: None, seller: None, status },
                OrderFilter { buyer: party.map(|p| p.buyer), seller: None, status },
                OrderFilter { buyer: None, seller: party.map(|p| p.seller), status },
            ]
        });
        for filter in filters {
            let expected: Vec<OrderId> = orders
                .iter()
                .filter(|o| filter.buyer.is_none_or(|b| o.buyer == b))
                .filter(|o| filter.seller.is_none_or(|s| o.seller == s))
                .filter(|o| filter.status.is_none_or(|s| o.status == s))
                .map(|o| o.id)
                .collect();
            let mut walked = Vec::new();
            let mut cursor = None;
            for _ in 0..=orders.len() {
                let listed = views.orders.list(&filter, cursor, page, t0());
                prop_assert!(listed.orders.len() <= page);
                walked.extend(listed.orders.iter().map(|o| o.order_id));
                match listed.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(&walked, &expected, "{:?}", filter);
        }
    }

    #[test]
    fn the_disputes_walked_in_pages_are_every_open_one_longest_waiting_first(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        page in 1usize..4,
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let placed: std::collections::BTreeSet<OrderId> = facts.iter().map(|f| f.order).collect();
        let mut expected: Vec<(Option<DateTime<Utc>>, OrderId)> = placed
            .iter()
            .filter_map(|id| views.orders.order(*id))
            .filter(|o| o.status == Status::InDispute)
            .map(|o| (o.dispute_opened_at, o.id))
            .collect();
        expected.sort();
        let mut walked = Vec::new();
        let mut after = None;
        for _ in 0..=placed.len() {
            let listed = views.orders.disputes_waiting(after, page, t0());
            prop_assert!(listed.len() <= page);
            walked.extend(listed.iter().map(|o| (o.dispute_opened_at, o.order_id)));
            match listed.last() {
                Some(last) if listed.len() == page => {
                    after = last.dispute_opened_at.map(|at| (at, last.order_id));
                }
                _ => break,
            }
        }
        prop_assert_eq!(walked, expected);
    }

    #[test]
    fn the_review_windows_closing_soon_walked_in_pages_are_every_open_one_soonest_first(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        page in 1usize..4,
        days in 0u32..10,
        probe in any::<prop::sample::Index>(),
        before_minutes in 0i64..20_000,
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let placed: std::collections::BTreeSet<OrderId> = facts.iter().map(|f| f.order).collect();
        let windows: Vec<&ReviewWindow> =
            placed.iter().filter_map(|id| views.reviews.window(*id)).collect();
        // Looked at from shortly before one window closes, or from the history's end.
        let now = match windows.is_empty() {
            true => facts.last().map_or(t0(), |f| f.recorded_at),
            false => windows[probe.index(windows.len())].closes_at - Duration::minutes(before_minutes),
        };
        let horizon = now + Duration::days(i64::from(days));
        let mut expected: Vec<(DateTime<Utc>, OrderId)> = windows
            .iter()
            .filter(|w| w.is_open_at(now) && w.closes_at <= horizon)
            .map(|w| (w.closes_at, w.order))
            .collect();
        expected.sort();
        // Every buyer's, then one buyer's through their orders.
        let buyer = windows.get(probe.index(windows.len().max(1))).map(|w| w.buyer);
        let theirs: Vec<(DateTime<Utc>, OrderId)> = expected
            .iter()
            .filter(|(_, order)| views.reviews.window(*order).map(|w| w.buyer) == buyer)
            .copied()
            .collect();
        for (of_buyer, expected) in [(None, expected), (buyer, theirs)] {
            let mut walked = Vec::new();
            let mut after = None;
            for _ in 0..=windows.len() {
                let listed = match of_buyer {
                    None => views.reviews.closing_within(now, days, after, page),
                    Some(buyer) => {
                        let orders = views.orders.orders_of_buyer(buyer);
                        views.reviews.closing_within_of(orders, now, days, after, page)
                    }
                };
                prop_assert!(listed.len() <= page);
                walked.extend(listed.iter().map(|w| (w.closes_at, w.order)));
                match listed.last() {
                    Some(last) if listed.len() == page => after = Some((last.closes_at, last.order)),
                    _ => break,
                }
            }
            prop_assert_eq!(walked, expected, "of buyer {:?}", of_buyer);
        }
    }

    #[test]
    fn a_summary_shows_exactly_the_deadline_a_timer_will_act_on(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let facts = history(&currency_picks, &steps);
        let mut views = Views::default();
        for fact in &facts {
            views.apply(fact);
            let Some(order) = views.orders.order(fact.order) else { continue };
            let summary = OrderSummary::of(order, fact.recorded_at);
            let shown: Vec<(TimerKind, DateTime<Utc>)> = [
                (TimerKind::ExpireUnconfirmed, summary.confirm_by),
                (TimerKind::AutoCloseAfterDelivery, summary.auto_close_at),
                (TimerKind::AutoCloseAfterRefusedRevision, summary.decision_deadline),
            ]
            .into_iter()
            .filter_map(|(kind, at)| at.map(|at| (kind, at)))
            .collect();
            let scheduled: Vec<_> = views.timers.timer(fact.order).map(|t| (t.kind, t.due_at)).into_iter().collect();
            prop_assert_eq!(shown, scheduled, "{:?} after {}", order.status, fact.event.event_type());
        }
    }

    #[test]
    fn the_completion_rate_equals_a_naive_count_of_the_history(
        currency_picks in prop::collection::vec(0..CURRENCIES.len(), 1..=ORDERS_MAX),
        steps in prop::collection::vec(step(), 1..150),
        recent_days in 1u32..120,
    ) {
        let facts = history(&currency_picks, &steps);
        let views = rebuilt(&facts);
        let now = facts.last().map_or(t0(), |f| f.recorded_at);
        let since = now - Duration::days(i64::from(recent_days));
        let mut sellers: BTreeMap<OrderId, UserId> = BTreeMap::new();
        let mut naive: BTreeMap<UserId, [u64; 4]> = BTreeMap::new();
        for fact in &facts {
            match &fact.event {
                Event::OrderPlaced(e) => { sellers.insert(fact.order, e.seller); }
                Event::OrderClosed(e) => {
                    let counts = naive.entry(sellers[&fact.order]).or_default();
                    counts[0] += 1;
                    if e.at > since { counts[2] += 1; }
                }
                Event::OrderCancelled(e) => {
                    let counted = matches!(e.cause,
                        CancellationCause::CancelledBySeller | CancellationCause::CancelledByBuyerWhenLate
                        | CancellationCause::ExpiredUnconfirmed | CancellationCause::DisputeRefunded);
                    let counts = naive.entry(sellers[&fact.order]).or_default();
                    if counted {
                        counts[1] += 1;
                        if e.at > since { counts[3] += 1; }
                    }
                }
                _ => {}
            }
        }
        for (seller, [done, cancelled, recent_done, recent_cancelled]) in naive {
            let rate = views.completion.rate(seller, now, recent_days);
            prop_assert_eq!((rate.all_time.completed, rate.all_time.counted_cancellations), (done, cancelled));
            prop_assert_eq!((rate.recent.completed, rate.recent.counted_cancellations), (recent_done, recent_cancelled));
            let expected = (done + cancelled > 0).then(|| (Decimal::from(done) / Decimal::from(done + cancelled)).round_dp(4));
            prop_assert_eq!(rate.all_time.rate, expected);
        }
    }
}

/// The books of `today` as at `at`, added up in slices of any length, are those of `then`,
/// a journal of what was made by then.
fn assert_books_as_at(
    today: &JournalView,
    then: &JournalView,
    at: DateTime<Utc>,
    postings_per_slice: usize,
) -> Result<(), TestCaseError> {
    let named = |balances: Vec<(Account, BTreeMap<Currency, Decimal>)>| -> BTreeMap<String, BTreeMap<Currency, Decimal>> {
        balances.into_iter().map(|(a, b)| (a.to_string(), b)).collect()
    };
    let lend = |read: &mut dyn FnMut(&JournalView)| {
        read(today);
        Ok::<(), std::convert::Infallible>(())
    };
    let every = books_at(at, true, postings_per_slice, lend)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let controls_only = books_at(at, false, postings_per_slice, lend)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let expected = named(then.balances().map(|(a, b)| (*a, b.clone())).collect());
    prop_assert_eq!(named(every.accounts), expected, "accounts as at {}", at);
    let expected: Vec<(&str, BTreeMap<Currency, Decimal>)> =
        then.controls().map(|(name, b)| (name, b.clone())).collect();
    prop_assert_eq!(&every.controls, &expected, "control accounts as at {}", at);
    prop_assert_eq!(&controls_only.controls, &expected);
    prop_assert!(controls_only.accounts.is_empty());
    prop_assert_eq!(&every.trial_balance, &then.trial_balance());
    prop_assert_eq!(&controls_only.trial_balance, &then.trial_balance());
    Ok(())
}

/// A period's postings walked in pages of `page`: each posting made in it once, in log order,
/// adding up to the difference between the books as at the period's two ends.
/// A period's ends, each open or near an event's instant (a second before, at, or after).
type PeriodEnds = (
    Option<(prop::sample::Index, i64)>,
    Option<(prop::sample::Index, i64)>,
);

fn period_ends() -> impl Strategy<Value = PeriodEnds> {
    let end = || prop::option::of((any::<prop::sample::Index>(), -1i64..=1));
    (end(), end())
}

/// The period whose ends are near those events' instants, the earlier end first; two ends
/// at one instant leave it open at its start.
fn period_among(facts: &[Fact], ends: PeriodEnds) -> Period {
    let instant = |end: Option<(prop::sample::Index, i64)>| {
        end.filter(|_| !facts.is_empty()).map(|(index, nudge)| {
            facts[index.index(facts.len())].event.at() + Duration::seconds(nudge)
        })
    };
    let (after, until) = match (instant(ends.0), instant(ends.1)) {
        (Some(a), Some(u)) if a == u => (None, Some(u)),
        (Some(a), Some(u)) => (Some(a.min(u)), Some(a.max(u))),
        ends => ends,
    };
    Period { after, until }
}

fn assert_period_walk(
    journal: &JournalView,
    period: Period,
    page: usize,
) -> Result<(), TestCaseError> {
    let mut walked = Vec::new();
    let mut from = Some(0);
    while let Some(position) = from {
        let (postings, next) = journal.postings(position, period, page);
        prop_assert!(next.is_none_or(|next| next > position));
        prop_assert!(
            !postings.is_empty() || next.is_none(),
            "an empty page before the end"
        );
        walked.extend(postings);
        from = next;
    }
    let (every, _) = journal.postings(0, Period::default(), usize::MAX);
    let expected: Vec<Posting> = every
        .into_iter()
        .filter(|p| period.contains(p.at))
        .collect();
    prop_assert_eq!(&walked, &expected);
    let lend = |read: &mut dyn FnMut(&JournalView)| {
        read(journal);
        Ok::<(), std::convert::Infallible>(())
    };
    let books = |at: Option<DateTime<Utc>>| -> Result<BTreeMap<(String, Currency), Decimal>, TestCaseError> {
        let accounts = match at {
            Some(at) => books_at(at, true, POSTINGS_PER_SLICE, lend).map_err(|e| TestCaseError::fail(e.to_string()))?.accounts,
            None => journal.balances().map(|(a, b)| (*a, b.clone())).collect(),
        };
        Ok(accounts.into_iter().flat_map(|(a, b)| b.into_iter().map(move |(c, v)| ((a.to_string(), c), v))).collect())
    };
    let mut difference = books(period.until)?;
    if period.after.is_some() {
        for (key, balance) in books(period.after)? {
            *difference.entry(key).or_default() -= balance;
        }
    }
    let mut moved: BTreeMap<(String, Currency), Decimal> = BTreeMap::new();
    for p in &walked {
        *moved
            .entry((p.debit.to_string(), p.amount.currency()))
            .or_default() += p.amount.amount();
        *moved
            .entry((p.credit.to_string(), p.amount.currency()))
            .or_default() -= p.amount.amount();
    }
    difference.retain(|_, v| !v.is_zero());
    moved.retain(|_, v| !v.is_zero());
    prop_assert_eq!(
        moved,
        difference,
        "the period's postings against the books at its ends"
    );
    Ok(())
}

#[test]
fn the_generated_histories_reach_every_money_event_and_reviews() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::HashSet::new();
    let strategy = (
        prop::collection::vec(0..CURRENCIES.len(), 1..=3),
        prop::collection::vec(step(), 100..200),
    );
    for _ in 0..100 {
        let (picks, steps) = strategy.new_tree(&mut runner).expect("tree").current();
        for fact in history(&picks, &steps) {
            seen.insert(fact.event.event_type());
        }
    }
    for needed in [
        "OrderPlaced",
        "ExtraPurchased",
        "PartialRefundIssued",
        "OrderClosed",
        "OrderCancelled",
        "DisputeResolved",
        "ReviewLeft",
        "RevisionRefused",
    ] {
        assert!(seen.contains(needed), "never generated {needed}");
    }
}

#[test]
fn a_save_writes_only_the_rows_an_event_changed() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(step(), 300..400);
    let facts = std::iter::repeat_with(|| {
        let steps = strategy.new_tree(&mut runner).expect("tree").current();
        history(&[0, 1, 2, 0, 1, 2], &steps)
    })
    // Six orders bound a history; take one where most of them went far.
    .take(1_000)
    .find(|facts| facts.len() > 40)
    .expect("a history");

    let (last, before) = facts.split_last().expect("facts");
    let mut views = Views::default();
    before.iter().for_each(|f| views.apply(f));
    let everything = views.take_changes().expect("changes").len();
    views.apply(last);
    let changed = views.take_changes().expect("changes").len();
    // The most one event touches: closing an order rewrites 16 rows across the seven views.
    assert!(
        changed <= 16,
        "one event rewrote {changed} rows of {everything}"
    );
    assert!(
        everything > 4 * 16,
        "the history is large enough to tell: {everything} rows"
    );
    assert!(
        views.take_changes().expect("changes").is_empty(),
        "nothing is written twice"
    );
}
