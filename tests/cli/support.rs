//! Fixtures of the CLI tests: a sound order history, raw appends for broken ones, and the
//! binary itself.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_commands::{encode, stream_for, CommandHandler, CommandRequest};
use ledger_domain::*;
use ledger_store::{EventStore, ExpectedRevision, SqliteStore};
use std::process::{Command as Process, Output, Stdio};
use std::sync::Arc;
use uuid::Uuid;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("instant")
}
pub fn eur(a: &str) -> Money {
    Money::parse(a, Currency::from_code("EUR").expect("EUR")).expect("amount")
}
pub fn buyer() -> Actor {
    Actor::new(Role::Buyer, UserId(Uuid::from_u128(1)))
}
pub fn seller() -> Actor {
    Actor::new(Role::Seller, UserId(Uuid::from_u128(2)))
}

pub const ORDER: OrderId = OrderId(Uuid::from_u128(0xa));

/// Place, confirm, deliver, close: one order's sound life.
pub fn closed_order_commands() -> Vec<Command> {
    vec![
        Command::Place {
            by: buyer(),
            at: t0(),
            order_id: ORDER,
            seller: seller().user_id,
            title: "logo".into(),
            price: eur("100.00"),
            delivery_days: 3,
        },
        Command::Confirm {
            by: seller(),
            at: t0() + Duration::hours(1),
        },
        Command::Deliver {
            by: seller(),
            at: t0() + Duration::days(1),
            message: String::new(),
        },
        Command::Close {
            by: buyer(),
            at: t0() + Duration::days(2),
        },
    ]
}

/// A sound history: one order placed, confirmed, delivered and closed, through the pipeline.
pub async fn closed_order(dir: &std::path::Path) -> Vec<Event> {
    let store = Arc::new(SqliteStore::open(dir).expect("store"));
    let handler = CommandHandler::new(store.clone(), Policy::default());
    let commands = closed_order_commands();
    let mut events = Vec::new();
    for command in commands {
        let outcome = handler
            .handle(CommandRequest::new(Uuid::new_v4(), ORDER, command))
            .await
            .expect("accepted");
        events.extend(outcome.events);
    }
    store.close();
    events
}

/// The events of `closed_order`, decided by the rules without a store (fresh ids each time).
pub fn closed_order_events() -> Vec<Event> {
    let mut state = OrderState::new();
    let mut events = Vec::new();
    let commands = closed_order_commands()[..2].to_vec();
    for command in commands {
        for event in decide(&state, &command, &Policy::default()).expect("accepted") {
            state = evolve(state, &event);
            events.push(event);
        }
    }
    events
}

/// The seller's refund of 10.00 EUR leaving nothing in escrow, at `at`: illegal wherever the
/// tests append it raw (after the close, or on an order never placed).
pub fn refund_of_ten(reason: &str, at: DateTime<Utc>) -> Event {
    Event::PartialRefundIssued(PartialRefundIssued {
        amount: eur("10.00"),
        reason: reason.into(),
        escrow_after: eur("0.00"),
        by: seller(),
        at,
    })
}

/// Appends events as they are, without the rules: how a broken history gets in.
pub async fn append_raw(dir: &std::path::Path, events: &[Event]) {
    let store = SqliteStore::open(dir).expect("store");
    let metadata = EventMetadata {
        schema_version: EVENT_SCHEMA_VERSION,
        command_id: Uuid::new_v4(),
        command_digest: String::new(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        actor: seller(),
    };
    let data = events.iter().map(|e| encode(e, &metadata)).collect();
    store
        .append(&stream_for(ORDER), ExpectedRevision::Any, data)
        .await
        .expect("append");
    store.close();
}

/// `ledger simulate` of `orders` orders with `seed` into `dir`, which must succeed; what it
/// printed.
pub fn simulated(dir: &std::path::Path, orders: &str, seed: &str) -> String {
    let (output, text) = ledger(&[
        "simulate",
        "--orders",
        orders,
        "--seed",
        seed,
        "--quiet",
        "--data-dir",
        &dir.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{text}");
    text
}

/// Runs `ledger` with `args`, without the caller's LEDGER_* configuration; returns its
/// output and its stdout and stderr together.
pub fn ledger(args: &[&str]) -> (Output, String) {
    ledger_fed(args, None)
}

/// `ledger` as above, with `input` on its standard input if given.
pub fn ledger_fed(args: &[&str], input: Option<&[u8]>) -> (Output, String) {
    let mut command = Process::new(env!("CARGO_BIN_EXE_ledger"));
    command
        .args(args)
        .env_remove("LEDGER_STORE")
        .env_remove("LEDGER_DATA_DIR");
    let output = match input {
        None => command.output().expect("run ledger"),
        Some(input) => {
            use std::io::Write;
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run ledger");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input).expect("feed ledger");
            drop(stdin);
            child.wait_with_output().expect("ledger ends")
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}
