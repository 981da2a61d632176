//! Shared fixtures for the domain's tests: fixed parties, a fixed clock origin, one sample
//! command per kind, and a given/when/then harness in the style of cqrs's `TestFramework`.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_domain::*;
use uuid::Uuid;

pub const ORDER: OrderId = OrderId(Uuid::from_u128(0x0a));
pub const BUYER: UserId = UserId(Uuid::from_u128(0xb1));
pub const SELLER: UserId = UserId(Uuid::from_u128(0x51));
pub const OTHER_BUYER: UserId = UserId(Uuid::from_u128(0xb2));
pub const OTHER_SELLER: UserId = UserId(Uuid::from_u128(0x52));
pub const MEDIATOR: UserId = UserId(Uuid::from_u128(0xed));
pub const FINANCE: UserId = UserId(Uuid::from_u128(0xf1));

pub fn buyer() -> Actor {
    Actor::new(Role::Buyer, BUYER)
}
pub fn seller() -> Actor {
    Actor::new(Role::Seller, SELLER)
}
pub fn mediator() -> Actor {
    Actor::new(Role::Mediator, MEDIATOR)
}
pub fn finance() -> Actor {
    Actor::new(Role::Finance, FINANCE)
}
pub fn system() -> Actor {
    Actor::system()
}

pub fn currency(code: &str) -> Currency {
    Currency::from_code(code).expect("test currency")
}
pub fn money(amount: &str, code: &str) -> Money {
    Money::parse(amount, currency(code)).expect("test amount")
}
pub fn eur(amount: &str) -> Money {
    money(amount, "EUR")
}

/// Monday 2 March 2026, 09:00 UTC: the origin of every test clock.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid instant")
}
pub fn hours(h: i64) -> DateTime<Utc> {
    t0() + Duration::hours(h)
}
pub fn days(d: i64) -> DateTime<Utc> {
    t0() + Duration::days(d)
}

/// Default order: 120.00 EUR, 5 days to deliver.
pub const PRICE: &str = "120.00";
pub const DELIVERY_DAYS: u32 = 5;

/// A command of `kind`, by `by`, at `at`, with ordinary data.
pub fn sample(kind: CommandKind, by: Actor, at: DateTime<Utc>) -> Command {
    let reason = || "a reason".to_owned();
    match kind {
        CommandKind::Place => Command::Place {
            by,
            at,
            order_id: ORDER,
            seller: SELLER,
            title: "A logo".to_owned(),
            price: eur(PRICE),
            delivery_days: DELIVERY_DAYS,
        },
        CommandKind::Confirm => Command::Confirm { by, at },
        CommandKind::Decline => Command::Decline {
            by,
            at,
            reason: reason(),
        },
        CommandKind::Expire => Command::Expire { by, at },
        CommandKind::Deliver => Command::Deliver {
            by,
            at,
            message: "here it is".to_owned(),
        },
        CommandKind::RequestRevision => Command::RequestRevision {
            by,
            at,
            reason: reason(),
        },
        CommandKind::AcceptRevision => Command::AcceptRevision {
            by,
            at,
            delivery_days: 2,
        },
        CommandKind::RefuseRevision => Command::RefuseRevision {
            by,
            at,
            reason: reason(),
        },
        CommandKind::Close => Command::Close { by, at },
        CommandKind::AutoClose => Command::AutoClose { by, at },
        CommandKind::BuyExtra => Command::BuyExtra {
            by,
            at,
            kind: ExtraKind::Option,
            description: "express".to_owned(),
            price: eur("30.00"),
            extra_days: 2,
        },
        CommandKind::ExtendDeadline => Command::ExtendDeadline {
            by,
            at,
            due_at: at + Duration::days(30),
        },
        CommandKind::Cancel => Command::Cancel {
            by,
            at,
            reason: reason(),
        },
        CommandKind::RequestCancellation => Command::RequestCancellation {
            by,
            at,
            reason: reason(),
        },
        CommandKind::AgreeCancellation => Command::AgreeCancellation { by, at },
        CommandKind::WithdrawCancellation => Command::WithdrawCancellation { by, at },
        CommandKind::PartialRefund => Command::PartialRefund {
            by,
            at,
            amount: eur("20.00"),
            reason: reason(),
        },
        CommandKind::OpenDispute => Command::OpenDispute {
            by,
            at,
            reason: reason(),
        },
        CommandKind::ResolveDispute => Command::ResolveDispute {
            by,
            at,
            resolution: Resolution::Release,
            note: "checked the history".to_owned(),
        },
        CommandKind::LeaveReview => Command::LeaveReview {
            by,
            at,
            rating: 5,
            comment: Some("great".to_owned()),
        },
    }
}

/// The commands that lead a fresh order to `status` on the default clock; every step is
/// before `days(4)`, the instant the matrix acts at.
pub fn path_to(status: Option<Status>) -> Vec<Command> {
    use CommandKind::*;
    let step = |kind, by, at| sample(kind, by, at);
    let placed = vec![step(Place, buyer(), t0())];
    let in_progress = [placed.clone(), vec![step(Confirm, seller(), hours(1))]].concat();
    let delivered = [in_progress.clone(), vec![step(Deliver, seller(), days(2))]].concat();
    let revision_requested = [
        delivered.clone(),
        vec![step(RequestRevision, buyer(), days(3))],
    ]
    .concat();
    match status {
        None => vec![],
        Some(Status::Placed) => placed,
        Some(Status::InProgress) => in_progress,
        Some(Status::Delivered) => delivered,
        Some(Status::RevisionRequested) => revision_requested,
        Some(Status::RevisionRefused) => [
            revision_requested,
            vec![step(RefuseRevision, seller(), days(3) + Duration::hours(1))],
        ]
        .concat(),
        Some(Status::InDispute) => {
            [in_progress, vec![step(OpenDispute, buyer(), days(2))]].concat()
        }
        Some(Status::Closed) => [delivered, vec![step(Close, buyer(), days(3))]].concat(),
        Some(Status::Cancelled) => [placed, vec![step(Decline, seller(), hours(1))]].concat(),
    }
}

/// given / when / then over the pure aggregate.
pub struct OrderTest {
    state: OrderState,
    policy: Policy,
}

pub struct Outcome {
    pub state: OrderState,
    pub result: Result<Vec<Event>, Rejection>,
}

impl OrderTest {
    pub fn given(events: Vec<Event>) -> OrderTest {
        OrderTest {
            state: OrderState::from_events(&events),
            policy: Policy::default(),
        }
    }

    /// Given the events these commands produce; each must be accepted.
    pub fn given_commands(commands: Vec<Command>) -> OrderTest {
        OrderTest::given_commands_with(commands, Policy::default())
    }

    pub fn given_commands_with(commands: Vec<Command>, policy: Policy) -> OrderTest {
        let mut state = OrderState::new();
        for command in commands {
            let events = decide(&state, &command, &policy)
                .unwrap_or_else(|r| panic!("given step {:?} refused: {r}", command.kind()));
            state = events.iter().fold(state, evolve);
        }
        OrderTest { state, policy }
    }

    pub fn with_policy(mut self, policy: Policy) -> OrderTest {
        self.policy = policy;
        self
    }

    pub fn state(&self) -> &OrderState {
        &self.state
    }

    pub fn when(self, command: Command) -> Outcome {
        let result = decide(&self.state, &command, &self.policy);
        Outcome {
            state: self.state,
            result,
        }
    }
}

impl Outcome {
    pub fn then_expect_events(self, expected: Vec<Event>) -> OrderState {
        let events = self.result.unwrap_or_else(|r| panic!("refused: {r}"));
        assert_eq!(events, expected);
        events.iter().fold(self.state, evolve)
    }

    /// Accepted; returns the events and the state after them for further assertions.
    pub fn then_accepted(self) -> (Vec<Event>, OrderState) {
        let events = self.result.unwrap_or_else(|r| panic!("refused: {r}"));
        let after = events.iter().fold(self.state, evolve);
        (events, after)
    }

    pub fn then_expect_rejection(self, expected: Rejection) {
        match self.result {
            Ok(events) => panic!("expected {expected:?}, got events {events:?}"),
            Err(rejection) => assert_eq!(rejection, expected),
        }
    }

    pub fn then_rejected_with(self, code: &str) -> Rejection {
        match self.result {
            Ok(events) => panic!("expected {code}, got events {events:?}"),
            Err(rejection) => {
                assert_eq!(rejection.code(), code, "{rejection}");
                rejection
            }
        }
    }
}

pub fn only<T: std::fmt::Debug>(mut items: Vec<T>) -> T {
    assert_eq!(items.len(), 1, "expected exactly one item: {items:?}");
    items.remove(0)
}
