//! `check_event` on histories built by hand: what `decide` would never produce must be
//! reported, naming the rule it breaks.

mod support;

use chrono::Duration;
use ledger_domain::*;
use support::*;

/// Events of a delivered-then-closed order, produced by the real rules.
fn closed_history() -> Vec<Event> {
    let mut state = OrderState::new();
    let mut events = Vec::new();
    for command in path_to(Some(Status::Closed)) {
        for event in decide(&state, &command, &Policy::default()).expect("legal step") {
            state = evolve(state, &event);
            events.push(event);
        }
    }
    events
}

fn first_illegal(events: &[Event]) -> Option<(usize, IllegalEvent)> {
    let mut state = OrderState::new();
    for (index, event) in events.iter().enumerate() {
        if let Err(illegal) = check_event(&state, event) {
            return Some((index, illegal));
        }
        state = evolve(state, event);
    }
    None
}

#[test]
fn a_history_the_rules_produced_is_legal() {
    assert_eq!(first_illegal(&closed_history()), None);
}

#[test]
fn a_refund_after_close_is_illegal() {
    let mut events = closed_history();
    events.push(Event::PartialRefundIssued(PartialRefundIssued {
        amount: eur("10.00"),
        reason: "after close".into(),
        escrow_after: eur("0.00"),
        by: seller(),
        at: days(5),
    }));
    let (index, illegal) = first_illegal(&events).expect("illegal");
    assert_eq!(index, events.len() - 1);
    assert!(
        matches!(
            illegal,
            IllegalEvent::WrongState {
                status: Status::Closed,
                ..
            }
        ),
        "{illegal}"
    );
}

#[test]
fn a_release_that_leaks_money_is_illegal() {
    let mut events = closed_history();
    if let Some(Event::OrderClosed(closed)) = events.last_mut() {
        closed.seller_credit = eur("97.00");
    }
    let (_, illegal) = first_illegal(&events).expect("illegal");
    assert!(
        matches!(illegal, IllegalEvent::ReleaseUnbalanced { .. }),
        "{illegal}"
    );
}

#[test]
fn escrow_that_does_not_follow_the_movements_is_illegal() {
    let mut events = closed_history();
    events.truncate(2);
    events.push(Event::ExtraPurchased(ExtraPurchased {
        kind: ExtraKind::Option,
        description: "x".into(),
        price: eur("30.00"),
        extra_days: 0,
        due_at: days(6),
        escrow_after: eur("160.00"),
        by: buyer(),
        at: days(1),
    }));
    let (_, illegal) = first_illegal(&events).expect("illegal");
    assert!(
        matches!(illegal, IllegalEvent::EscrowMismatch { .. }),
        "{illegal}"
    );
}

#[test]
fn a_refund_larger_than_escrow_is_illegal() {
    let mut events = closed_history();
    events.truncate(2);
    events.push(Event::PartialRefundIssued(PartialRefundIssued {
        amount: eur("200.00"),
        reason: "too much".into(),
        escrow_after: eur("0.00"),
        by: seller(),
        at: days(1),
    }));
    let (_, illegal) = first_illegal(&events).expect("illegal");
    assert!(
        matches!(illegal, IllegalEvent::RefundNotPartial { .. }),
        "{illegal}"
    );
}

#[test]
fn an_event_before_the_placement_or_back_in_time_is_illegal() {
    let events = closed_history();
    let (index, illegal) = first_illegal(&events[1..]).expect("illegal");
    assert_eq!(index, 0);
    assert!(
        matches!(illegal, IllegalEvent::BeforePlacement { .. }),
        "{illegal}"
    );

    let mut events = closed_history();
    if let Some(Event::OrderClosed(closed)) = events.last_mut() {
        closed.at = t0() - Duration::days(1);
    }
    let (_, illegal) = first_illegal(&events).expect("illegal");
    assert!(
        matches!(illegal, IllegalEvent::TimeWentBackwards { .. }),
        "{illegal}"
    );
}

#[test]
fn evolve_ignores_an_event_before_placement_instead_of_panicking() {
    let events = closed_history();
    let state = OrderState::from_events(&events[1..]);
    assert_eq!(state, OrderState::new());
}
