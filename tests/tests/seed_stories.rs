//! The stories of the help-centre pages in shared/seeds, end to end: commands through the
//! pipeline into the real store, views rebuilt from the log, timers firing.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_commands::{CommandError, CommandHandler, CommandRequest, Outcome};
use ledger_domain::*;
use ledger_projections::{Account, DueTimer, Projector, TimerKind, TimerView, Views};
use ledger_store::{AllFrom, Direction, EventStore, SqliteStore};
use order_ledger::timers::{
    fire_due_timers, fire_timers, RefusalWarnings, TimerPages, TimerReport,
};

use std::sync::Arc;
use uuid::Uuid;

const BUYER: UserId = UserId(Uuid::from_u128(0xb1));
const SELLER: UserId = UserId(Uuid::from_u128(0x51));
const MEDIATOR: UserId = UserId(Uuid::from_u128(0xed));

fn buyer() -> Actor {
    Actor::new(Role::Buyer, BUYER)
}
fn seller() -> Actor {
    Actor::new(Role::Seller, SELLER)
}
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("instant")
}
fn at(days: i64, hours: i64) -> DateTime<Utc> {
    t0() + Duration::days(days) + Duration::hours(hours)
}
fn eur(a: &str) -> Money {
    Money::parse(a, Currency::from_code("EUR").expect("EUR")).expect("amount")
}
fn dec(a: &str) -> Decimal {
    a.parse().expect("decimal")
}

struct Ledger {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    handler: CommandHandler,
    projector: Projector,
}

impl Ledger {
    fn new() -> Ledger {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("log")).expect("store"));
        let handler = CommandHandler::new(store.clone(), Policy::default());
        let projector = Projector::open(&dir.path().join("views")).expect("views");
        Ledger {
            _dir: dir,
            store,
            handler,
            projector,
        }
    }

    async fn send(&self, order: OrderId, command: Command) -> Result<Outcome, CommandError> {
        self.handler
            .handle(CommandRequest::new(Uuid::new_v4(), order, command))
            .await
    }

    async fn ok(&self, order: OrderId, command: Command) -> Outcome {
        self.send(order, command).await.expect("accepted")
    }

    async fn views(&mut self) -> &Views {
        self.projector
            .catch_up(&*self.store, |_| {})
            .await
            .expect("views catch up");
        self.projector.views()
    }

    async fn timers(&mut self) -> TimerView {
        self.views().await.timers.clone()
    }

    async fn tick(&mut self, now: DateTime<Utc>) -> TimerReport {
        let timers = self.timers().await;
        fire_due_timers(&self.handler, &timers, now)
            .await
            .expect("timers")
    }

    async fn event_count(&self) -> usize {
        self.store
            .read_all(AllFrom::Start, Direction::Forwards, 10_000)
            .await
            .expect("read")
            .len()
    }

    /// Places `order` for 200.00 EUR, 5 days, at `when`.
    async fn place(&self, order: OrderId, when: DateTime<Utc>) {
        self.ok(
            order,
            Command::Place {
                by: buyer(),
                at: when,
                order_id: order,
                seller: SELLER,
                title: "A logo".into(),
                price: eur("200.00"),
                delivery_days: 5,
            },
        )
        .await;
    }

    /// Places an order for 200.00 EUR, 5 days, confirmed an hour later (due at day 5, 1h).
    async fn confirmed_order(&self) -> OrderId {
        let order = OrderId(Uuid::new_v4());
        self.place(order, t0()).await;
        self.ok(
            order,
            Command::Confirm {
                by: seller(),
                at: at(0, 1),
            },
        )
        .await;
        order
    }

    /// A confirmed order delivered on day 2 (auto-closes on day 5).
    async fn delivered_order(&self) -> OrderId {
        let order = self.confirmed_order().await;
        self.ok(
            order,
            Command::Deliver {
                by: seller(),
                at: at(2, 0),
                message: "v1".into(),
            },
        )
        .await;
        order
    }

    async fn refused_revision(&self) -> OrderId {
        let order = self.delivered_order().await;
        self.ok(
            order,
            Command::RequestRevision {
                by: buyer(),
                at: at(3, 0),
                reason: "colours".into(),
            },
        )
        .await;
        self.ok(
            order,
            Command::RefuseRevision {
                by: seller(),
                at: at(3, 1),
                reason: "out of scope".into(),
            },
        )
        .await;
        order
    }
}

fn assert_books_balance(views: &Views) {
    for (currency, sum) in views.journal.trial_balance() {
        assert_eq!(sum, Decimal::ZERO, "trial balance in {currency}");
    }
}

fn wallet_balance(views: &Views, user: UserId) -> Option<Money> {
    views
        .wallets
        .wallet(user)
        .values()
        .next()
        .map(|w| w.balance)
}

#[tokio::test]
async fn revision_refused_then_the_buyer_closes_and_the_seller_is_paid_less_commission() {
    let mut ledger = Ledger::new();
    let order = ledger.refused_revision().await;
    ledger
        .ok(
            order,
            Command::Close {
                by: buyer(),
                at: at(5, 0),
            },
        )
        .await;
    let views = ledger.views().await;
    assert_eq!(wallet_balance(views, SELLER), Some(eur("160.00")));
    let eur_code = Currency::from_code("EUR").expect("EUR");
    assert_eq!(
        views.journal.balance(Account::Commission, eur_code),
        dec("40.00")
    );
    assert!(views.escrow.totals().is_empty());
    let rate = views.completion.rate(SELLER, at(5, 0), 60);
    assert_eq!(
        (rate.all_time.completed, rate.all_time.rate),
        (1, Some(Decimal::ONE))
    );
    assert_books_balance(views);
}

#[tokio::test]
async fn revision_refused_and_seven_days_without_a_decision_auto_closes() {
    let mut ledger = Ledger::new();
    let order = ledger.refused_revision().await;
    let deadline = at(10, 1);
    assert_eq!(
        ledger.tick(deadline - Duration::seconds(1)).await,
        TimerReport::default(),
        "not due yet"
    );
    assert_eq!(ledger.tick(deadline).await.fired, 1);
    let views = ledger.views().await;
    let summary = views.orders.summary(order, deadline).expect("order");
    assert_eq!(summary.status, Status::Closed);
    assert_eq!(wallet_balance(views, SELLER), Some(eur("160.00")));
    assert!(views.timers.timer(order).is_none(), "no timer left");
    assert_books_balance(views);
}

#[tokio::test]
async fn a_timer_fired_twice_or_by_two_instances_at_once_acts_once() {
    let mut ledger = Ledger::new();
    ledger.refused_revision().await;
    let stale = ledger.timers().await;
    let deadline = at(10, 1);
    let second = CommandHandler::new(ledger.store.clone(), Policy::default());
    let (a, b) = tokio::join!(
        fire_due_timers(&ledger.handler, &stale, deadline),
        fire_due_timers(&second, &stale, deadline),
    );
    let (a, b) = (a.expect("first instance"), b.expect("second instance"));
    assert_eq!(a.fired + b.fired, 1, "{a:?} {b:?}");
    assert_eq!(a.already_fired + b.already_fired, 1, "{a:?} {b:?}");
    let events = ledger.event_count().await;
    // Fired again from the same stale view, later: still nothing new.
    let again = fire_due_timers(&ledger.handler, &stale, deadline + Duration::hours(1))
        .await
        .expect("again");
    assert_eq!(again.already_fired, 1);
    assert_eq!(ledger.event_count().await, events);
}

#[tokio::test]
async fn a_timer_refused_for_a_reason_of_its_own_does_not_hold_back_the_others() {
    let mut ledger = Ledger::new();
    let order = ledger.refused_revision().await;
    let deadline = at(10, 1);
    let due = ledger.timers().await.due(deadline, 10);
    assert_eq!(due.len(), 1, "{due:?}");
    // First in line, a timer no moved-on order explains: its order was never placed.
    let stray = DueTimer {
        order: OrderId(Uuid::from_u128(0x0dd)),
        kind: TimerKind::AutoCloseAfterRefusedRevision,
        due_at: deadline - Duration::days(1),
    };
    let report = fire_timers(
        &ledger.handler,
        [vec![stray], due].concat(),
        deadline,
        &mut Vec::new(),
        &mut RefusalWarnings::default(),
    )
    .await
    .expect("the tick goes on past the refused timer");
    assert_eq!(
        report,
        TimerReport {
            fired: 1,
            refused: 1,
            ..TimerReport::default()
        }
    );
    let views = ledger.views().await;
    let summary = views.orders.summary(order, deadline).expect("order");
    assert_eq!(summary.status, Status::Closed);
}

#[tokio::test]
async fn timers_refused_at_every_tick_do_not_hide_the_deadlines_behind_them() {
    // The views of one log, acted on in another that holds only the last order: every
    // timer before it is refused there (its order is unknown), tick after tick.
    let mut seen = Ledger::new();
    let mut acting = Ledger::new();
    let refused_first = 25;
    for n in 0..refused_first {
        seen.place(OrderId(Uuid::from_u128(0x5700 + n)), t0()).await;
    }
    let order = OrderId(Uuid::new_v4());
    seen.place(order, at(0, 1)).await;
    acting.place(order, at(0, 1)).await;
    let timers = seen.timers().await;
    let now = at(10, 0);
    let mut pages = TimerPages::new(10);
    let mut tick = TimerReport::default();
    let mut warnings = RefusalWarnings::default();
    // Three pages hold them all; a way through that went back to the start would not end.
    for _ in 0..10 {
        let page = pages.next_page(&timers, now);
        let report = fire_timers(&acting.handler, page, now, &mut Vec::new(), &mut warnings)
            .await
            .expect("the store answers");
        tick.fired += report.fired;
        tick.refused += report.refused;
        tick.moved_on += report.moved_on;
        tick.already_fired += report.already_fired;
        if !pages.more() {
            break;
        }
    }
    assert_eq!(
        tick,
        TimerReport {
            fired: 1,
            refused: refused_first as usize,
            ..TimerReport::default()
        }
    );
    let summary = acting
        .views()
        .await
        .orders
        .summary(order, now)
        .expect("order");
    assert_eq!(summary.status, Status::Cancelled, "the order expired");
}

#[tokio::test]
async fn a_timer_whose_order_moved_on_does_nothing() {
    let mut ledger = Ledger::new();
    let order = ledger.delivered_order().await;
    let stale = ledger.timers().await;
    ledger
        .ok(
            order,
            Command::Close {
                by: buyer(),
                at: at(3, 0),
            },
        )
        .await;
    let events = ledger.event_count().await;
    let report = fire_due_timers(&ledger.handler, &stale, at(5, 0))
        .await
        .expect("timers");
    assert_eq!(
        report,
        TimerReport {
            moved_on: 1,
            ..TimerReport::default()
        }
    );
    assert_eq!(ledger.event_count().await, events);
}

#[tokio::test]
async fn a_late_order_cancelled_by_the_buyer_refunds_in_full_and_counts_against_the_seller() {
    let mut ledger = Ledger::new();
    let order = ledger.confirmed_order().await;
    let refused = ledger
        .send(
            order,
            Command::Cancel {
                by: buyer(),
                at: at(5, 1),
                reason: "late".into(),
            },
        )
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(Rejection::NotLateYet { .. }))
    ));
    ledger
        .ok(
            order,
            Command::Cancel {
                by: buyer(),
                at: at(6, 0),
                reason: "late".into(),
            },
        )
        .await;
    let views = ledger.views().await;
    assert_eq!(wallet_balance(views, BUYER), Some(eur("200.00")));
    assert_eq!(wallet_balance(views, SELLER), None);
    let rate = views.completion.rate(SELLER, at(6, 0), 60);
    assert_eq!(
        (rate.all_time.counted_cancellations, rate.all_time.rate),
        (1, Some(Decimal::ZERO))
    );
    assert_books_balance(views);
}

#[tokio::test]
async fn a_mutual_cancellation_refunds_the_buyer_and_is_not_counted() {
    let mut ledger = Ledger::new();
    let order = ledger.confirmed_order().await;
    ledger
        .ok(
            order,
            Command::RequestCancellation {
                by: seller(),
                at: at(1, 0),
                reason: "too big".into(),
            },
        )
        .await;
    ledger
        .ok(
            order,
            Command::AgreeCancellation {
                by: buyer(),
                at: at(1, 2),
            },
        )
        .await;
    let views = ledger.views().await;
    assert_eq!(wallet_balance(views, BUYER), Some(eur("200.00")));
    let rate = views.completion.rate(SELLER, at(2, 0), 60);
    assert_eq!(
        (rate.all_time.counted_cancellations, rate.all_time.rate),
        (0, None)
    );
    assert_books_balance(views);
}

#[tokio::test]
async fn a_dispute_split_by_a_mediator_refunds_part_and_releases_the_rest() {
    let mut ledger = Ledger::new();
    let order = ledger.delivered_order().await;
    ledger
        .ok(
            order,
            Command::OpenDispute {
                by: buyer(),
                at: at(2, 5),
                reason: "half missing".into(),
            },
        )
        .await;
    let blocked = ledger
        .send(
            order,
            Command::Close {
                by: buyer(),
                at: at(2, 6),
            },
        )
        .await;
    assert!(matches!(
        blocked,
        Err(CommandError::Rejected(Rejection::OrderInDispute))
    ));
    ledger
        .ok(
            order,
            Command::ResolveDispute {
                by: Actor::new(Role::Mediator, MEDIATOR),
                at: at(3, 0),
                resolution: Resolution::Split {
                    refund: eur("80.00"),
                },
                note: "agreed in chat: 80 back".into(),
            },
        )
        .await;
    let views = ledger.views().await;
    assert_eq!(wallet_balance(views, BUYER), Some(eur("80.00")));
    assert_eq!(wallet_balance(views, SELLER), Some(eur("96.00")));
    let eur_code = Currency::from_code("EUR").expect("EUR");
    assert_eq!(
        views.journal.balance(Account::Commission, eur_code),
        dec("24.00")
    );
    assert_eq!(
        views
            .completion
            .rate(SELLER, at(3, 0), 60)
            .all_time
            .completed,
        1,
        "a split counts as completed"
    );
    assert_books_balance(views);
}

#[tokio::test]
async fn a_review_five_months_after_close_is_accepted_and_six_months_and_a_day_is_refused() {
    let mut ledger = Ledger::new();
    let mut closed = Vec::new();
    for _ in 0..2 {
        let order = ledger.delivered_order().await;
        ledger
            .ok(
                order,
                Command::Close {
                    by: buyer(),
                    at: at(3, 0),
                },
            )
            .await;
        closed.push(order);
    }
    let closed_at = at(3, 0);
    let five_months = closed_at
        .checked_add_months(chrono::Months::new(5))
        .expect("date");
    let six_months_and_a_day = closed_at
        .checked_add_months(chrono::Months::new(6))
        .expect("date")
        + Duration::days(1);
    ledger
        .ok(
            closed[0],
            Command::LeaveReview {
                by: buyer(),
                at: five_months,
                rating: 5,
                comment: Some("great".into()),
            },
        )
        .await;
    let late = ledger
        .send(
            closed[1],
            Command::LeaveReview {
                by: buyer(),
                at: six_months_and_a_day,
                rating: 1,
                comment: None,
            },
        )
        .await;
    assert!(matches!(
        late,
        Err(CommandError::Rejected(Rejection::ReviewWindowClosed { .. }))
    ));
    let views = ledger.views().await;
    let reviewed = views.reviews.window(closed[0]).expect("window");
    assert_eq!(reviewed.review.as_ref().map(|r| r.rating), Some(5));
    let unreviewed = views.reviews.window(closed[1]).expect("window");
    assert!(unreviewed.review.is_none());
    assert!(!unreviewed.is_open_at(six_months_and_a_day));
    // Seen a week before its end, the unreviewed window is among those closing soon.
    let week_before = unreviewed.closes_at - Duration::days(7);
    let closing: Vec<OrderId> = views
        .reviews
        .closing_within(week_before, 10, None, 10)
        .iter()
        .map(|w| w.order)
        .collect();
    assert_eq!(closing, vec![closed[1]]);
}
