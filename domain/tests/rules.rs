//! One test per rule of DOMAIN.md, named after the rule, given/when/then.

mod support;

use chrono::Duration;
use ledger_domain::*;
use rust_decimal::Decimal;
use support::*;
use CommandKind::*;

fn in_progress() -> OrderTest {
    OrderTest::given_commands(path_to(Some(Status::InProgress)))
}
fn delivered() -> OrderTest {
    OrderTest::given_commands(path_to(Some(Status::Delivered)))
}
fn revision_refused() -> OrderTest {
    OrderTest::given_commands(path_to(Some(Status::RevisionRefused)))
}
fn in_dispute() -> OrderTest {
    OrderTest::given_commands(path_to(Some(Status::InDispute)))
}
fn closed() -> OrderTest {
    OrderTest::given_commands(path_to(Some(Status::Closed)))
}
fn escrow(state: &OrderState) -> Money {
    state.order().expect("order exists").escrow_held
}
fn cancelled_event(events: Vec<Event>) -> OrderCancelled {
    match events.into_iter().last() {
        Some(Event::OrderCancelled(e)) => e,
        other => panic!("expected OrderCancelled, got {other:?}"),
    }
}
fn closed_event(events: Vec<Event>) -> OrderClosed {
    match events.into_iter().last() {
        Some(Event::OrderClosed(e)) => e,
        other => panic!("expected OrderClosed, got {other:?}"),
    }
}

#[test]
fn place_holds_the_price_in_escrow_and_writes_the_commission_rate() {
    let policy = Policy {
        commission_rate: Decimal::new(15, 2),
        ..Policy::default()
    };
    OrderTest::given(vec![])
        .with_policy(policy)
        .when(sample(Place, buyer(), t0()))
        .then_expect_events(vec![Event::OrderPlaced(OrderPlaced {
            order_id: ORDER,
            buyer: BUYER,
            seller: SELLER,
            title: "A logo".into(),
            price: eur("120.00"),
            delivery_days: 5,
            commission_rate: Decimal::new(15, 2),
            confirm_by: days(3),
            escrow_after: eur("120.00"),
            by: buyer(),
            at: t0(),
        })]);
}

#[test]
fn place_refuses_a_buyer_ordering_from_themselves() {
    let command = Command::Place {
        by: Actor::new(Role::Buyer, SELLER),
        at: t0(),
        order_id: ORDER,
        seller: SELLER,
        title: "self".into(),
        price: eur("1.00"),
        delivery_days: 1,
    };
    OrderTest::given(vec![])
        .when(command)
        .then_expect_rejection(Rejection::BuyerIsSeller);
}

#[test]
fn place_refuses_a_zero_price_an_empty_title_and_impossible_delivery_times() {
    let place = |title: &str, price: Money, delivery_days| Command::Place {
        by: buyer(),
        at: t0(),
        order_id: ORDER,
        seller: SELLER,
        title: title.into(),
        price,
        delivery_days,
    };
    let cases = [
        (place("x", eur("0"), 3), "amount_not_positive"),
        (place("  ", eur("1"), 3), "text_empty"),
        (
            place(&"x".repeat(TITLE_CHARS_MAX + 1), eur("1"), 3),
            "text_too_long",
        ),
        (place("a\u{0}logo", eur("1"), 3), "text_control_character"),
        (
            place("a logo\nfor us", eur("1"), 3),
            "text_control_character",
        ),
        (place("x", eur("1"), 0), "days_out_of_range"),
        (
            place("x", eur("1"), DELIVERY_DAYS_MAX + 1),
            "days_out_of_range",
        ),
        (place("x", money("10.00", "HRK"), 3), "currency_not_payable"),
        (
            place("x", money("10.0000", "CLF"), 3),
            "currency_not_payable",
        ),
        (place("x", money("10.00", "BGN"), 3), "currency_not_payable"),
    ];
    for (command, code) in cases {
        OrderTest::given(vec![])
            .when(command)
            .then_rejected_with(code);
    }
}

/// The nil id is the timers'; a person under it would read as the system in an order's history.
#[test]
fn nobody_but_the_system_acts_or_sells_under_the_system_id() {
    let place = |by: Actor, seller: UserId| Command::Place {
        by,
        at: t0(),
        order_id: ORDER,
        seller,
        title: "A logo".into(),
        price: eur("10.00"),
        delivery_days: 3,
    };
    OrderTest::given(vec![])
        .when(place(buyer(), UserId::SYSTEM))
        .then_expect_rejection(Rejection::SystemUserId { party: "seller" });
    OrderTest::given(vec![])
        .when(place(Actor::new(Role::Buyer, UserId::SYSTEM), SELLER))
        .then_expect_rejection(Rejection::SystemUserId { party: "caller" });
    OrderTest::given_commands(path_to(Some(Status::Placed)))
        .when(sample(
            Confirm,
            Actor::new(Role::Seller, UserId::SYSTEM),
            hours(1),
        ))
        .then_rejected_with("system_user_id");
    OrderTest::given_commands(path_to(Some(Status::Placed)))
        .when(sample(Expire, system(), days(4)))
        .then_accepted();
}

#[test]
fn confirm_fixes_the_deadline_from_the_confirmation() {
    OrderTest::given_commands(path_to(Some(Status::Placed)))
        .when(sample(Confirm, seller(), hours(30)))
        .then_expect_events(vec![Event::OrderConfirmed(OrderConfirmed {
            due_at: hours(30) + Duration::days(5),
            by: seller(),
            at: hours(30),
        })]);
}

#[test]
fn decline_cancels_with_a_full_refund_not_counted_against_the_seller() {
    let (events, state) = OrderTest::given_commands(path_to(Some(Status::Placed)))
        .when(sample(Decline, seller(), hours(2)))
        .then_accepted();
    let cancelled = cancelled_event(events);
    assert_eq!(cancelled.cause, CancellationCause::DeclinedBySeller);
    assert_eq!(cancelled.refund, eur(PRICE));
    assert!(!cancelled.counts_against_seller);
    assert_eq!(state.status(), Some(Status::Cancelled));
    assert!(escrow(&state).is_zero());
}

#[test]
fn expire_cancels_an_unconfirmed_order_after_the_confirmation_window_and_counts_it() {
    let (events, _) = OrderTest::given_commands(path_to(Some(Status::Placed)))
        .when(sample(Expire, system(), days(3)))
        .then_accepted();
    let cancelled = cancelled_event(events);
    assert_eq!(cancelled.cause, CancellationCause::ExpiredUnconfirmed);
    assert!(cancelled.counts_against_seller);
    assert_eq!(cancelled.refund, eur(PRICE));
}

#[test]
fn expire_is_refused_before_the_confirmation_window_runs_out() {
    OrderTest::given_commands(path_to(Some(Status::Placed)))
        .when(sample(Expire, system(), days(3) - Duration::seconds(1)))
        .then_expect_rejection(Rejection::DeadlineNotReached {
            command: Expire,
            deadline: days(3),
        });
}

#[test]
fn deliver_after_the_deadline_is_recorded_late() {
    // Confirmed at hours(1): due at days(5) + 1h.
    let late_at = days(5) + Duration::hours(2);
    let (events, state) = in_progress()
        .when(sample(Deliver, seller(), late_at))
        .then_accepted();
    match only(events) {
        Event::OrderDelivered(e) => {
            assert!(e.late);
            assert_eq!(e.delivery_number, 1);
            assert!(!e.redelivery);
            assert_eq!(e.auto_close_at, late_at + Duration::days(3));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(state.status(), Some(Status::Delivered));
}

#[test]
fn deliver_on_the_deadline_is_on_time() {
    let (events, _) = in_progress()
        .when(sample(Deliver, seller(), days(5) + Duration::hours(1)))
        .then_accepted();
    assert!(matches!(only(events), Event::OrderDelivered(e) if !e.late));
}

#[test]
fn a_delivery_after_an_accepted_revision_is_a_numbered_redelivery() {
    let mut steps = path_to(Some(Status::RevisionRequested));
    steps.push(sample(
        AcceptRevision,
        seller(),
        days(3) + Duration::hours(1),
    ));
    let (events, _) = OrderTest::given_commands(steps)
        .when(sample(Deliver, seller(), days(4)))
        .then_accepted();
    assert!(
        matches!(only(events), Event::OrderDelivered(e) if e.redelivery && e.delivery_number == 2)
    );
}

#[test]
fn request_revision_needs_a_reason() {
    let command = Command::RequestRevision {
        by: buyer(),
        at: days(2) + Duration::hours(1),
        reason: " ".into(),
    };
    delivered()
        .when(command)
        .then_expect_rejection(Rejection::TextEmpty { field: "reason" });
}

/// Free text keeps its lines and tabs; any other control character is refused and named.
#[test]
fn a_reason_may_span_lines_but_holds_no_other_control_character() {
    let request = |reason: &str| Command::RequestRevision {
        by: buyer(),
        at: days(2) + Duration::hours(1),
        reason: reason.into(),
    };
    delivered()
        .when(request("The colours are off:\r\n\t- the red\n\t- the blue"))
        .then_accepted();
    let refusal = Rejection::TextControlCharacter {
        field: "reason",
        character: '\u{1b}',
        single_line: false,
    };
    assert_eq!(
        refusal.to_string(),
        "reason contains a control character (U+001B): only line breaks and tabs are allowed"
    );
    delivered()
        .when(request("see \u{1b}[31mhere"))
        .then_expect_rejection(refusal);
    // A title is one line: its refusal says so, whichever control character it holds.
    let place = |title: &str| Command::Place {
        by: buyer(),
        at: t0(),
        order_id: ORDER,
        seller: SELLER,
        title: title.into(),
        price: eur("1"),
        delivery_days: 3,
    };
    for (title, character) in [("a\u{0}logo", '\u{0}'), ("a logo\nfor us", '\n')] {
        OrderTest::given(vec![])
            .when(place(title))
            .then_expect_rejection(Rejection::TextControlCharacter {
                field: "title",
                character,
                single_line: true,
            });
    }
}

#[test]
fn accept_revision_returns_to_in_progress_with_a_new_deadline() {
    let at = days(3) + Duration::hours(1);
    OrderTest::given_commands(path_to(Some(Status::RevisionRequested)))
        .when(sample(AcceptRevision, seller(), at))
        .then_expect_events(vec![Event::RevisionAccepted(RevisionAccepted {
            due_at: at + Duration::days(2),
            by: seller(),
            at,
        })]);
}

#[test]
fn refuse_revision_gives_the_buyer_seven_days_to_decide() {
    let at = days(3) + Duration::hours(1);
    let (events, state) = OrderTest::given_commands(path_to(Some(Status::RevisionRequested)))
        .when(sample(RefuseRevision, seller(), at))
        .then_accepted();
    assert!(
        matches!(only(events), Event::RevisionRefused(e) if e.decision_deadline == at + Duration::days(7))
    );
    assert_eq!(state.status(), Some(Status::RevisionRefused));
}

#[test]
fn close_releases_escrow_to_the_seller_less_commission_and_opens_the_review_window() {
    let at = days(3);
    let (events, state) = delivered().when(sample(Close, buyer(), at)).then_accepted();
    let closed = closed_event(events);
    assert_eq!(closed.cause, CloseCause::ClosedByBuyer);
    assert_eq!(closed.released, eur("120.00"));
    assert_eq!(closed.commission, eur("24.00"));
    assert_eq!(closed.seller_credit, eur("96.00"));
    assert!(closed.escrow_after.is_zero());
    assert_eq!(
        closed.review_closes_at,
        review_window_end(at, 6).expect("in range")
    );
    assert!(escrow(&state).is_zero());
}

#[test]
fn auto_close_after_the_acceptance_window_when_the_buyer_did_nothing() {
    // Delivered at days(2): the acceptance window ends at days(5).
    delivered()
        .when(sample(AutoClose, system(), days(5) - Duration::seconds(1)))
        .then_rejected_with("deadline_not_reached");
    let (events, _) = delivered()
        .when(sample(AutoClose, system(), days(5)))
        .then_accepted();
    assert_eq!(
        closed_event(events).cause,
        CloseCause::AutoClosedAfterDelivery
    );
}

#[test]
fn auto_close_seven_days_after_a_refused_revision() {
    let deadline = days(10) + Duration::hours(1);
    revision_refused()
        .when(sample(AutoClose, system(), deadline - Duration::seconds(1)))
        .then_rejected_with("deadline_not_reached");
    let (events, _) = revision_refused()
        .when(sample(AutoClose, system(), deadline))
        .then_accepted();
    let closed = closed_event(events);
    assert_eq!(closed.cause, CloseCause::AutoClosedAfterRefusedRevision);
    assert_eq!(closed.seller_credit, eur("96.00"));
}

#[test]
fn after_a_refused_revision_the_buyer_may_close_or_dispute_within_seven_days() {
    revision_refused()
        .when(sample(Close, buyer(), days(9)))
        .then_accepted();
    revision_refused()
        .when(sample(OpenDispute, buyer(), days(9)))
        .then_accepted();
    revision_refused()
        .when(sample(OpenDispute, buyer(), days(10) + Duration::hours(1)))
        .then_expect_rejection(Rejection::DecisionWindowClosed {
            deadline: days(10) + Duration::hours(1),
        });
}

#[test]
fn buy_extra_adds_its_price_to_escrow_and_its_days_to_the_deadline() {
    let (events, state) = in_progress()
        .when(sample(BuyExtra, buyer(), days(1)))
        .then_accepted();
    match only(events) {
        Event::ExtraPurchased(e) => {
            assert_eq!(e.escrow_after, eur("150.00"));
            assert_eq!(e.due_at, days(5) + Duration::hours(1) + Duration::days(2));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(escrow(&state), eur("150.00"));
}

#[test]
fn buy_extra_in_another_currency_is_refused() {
    let command = Command::BuyExtra {
        by: buyer(),
        at: days(1),
        kind: ExtraKind::CustomOffer,
        description: "more".into(),
        price: money("30.00", "USD"),
        extra_days: 0,
    };
    in_progress()
        .when(command)
        .then_expect_rejection(Rejection::CurrencyMismatch {
            expected: currency("EUR"),
            got: currency("USD"),
        });
}

#[test]
fn extend_deadline_fixes_a_later_maximum_delivery_date() {
    let current = days(5) + Duration::hours(1);
    let extend = |due_at| Command::ExtendDeadline {
        by: buyer(),
        at: days(1),
        due_at,
    };
    in_progress()
        .when(extend(current))
        .then_expect_rejection(Rejection::DeadlineNotLater {
            current,
            requested: current,
        });
    let later = current + Duration::days(4);
    let (_, state) = in_progress().when(extend(later)).then_accepted();
    assert_eq!(state.order().and_then(|o| o.due_at), Some(later));

    // A year ahead at most: 9999 for 2026 is a typo, not a deadline.
    let latest = days(1) + Duration::days(365);
    in_progress().when(extend(latest)).then_accepted();
    in_progress()
        .when(extend(latest + Duration::seconds(1)))
        .then_expect_rejection(Rejection::DeadlineTooFar {
            requested: latest + Duration::seconds(1),
            latest,
        });
}

#[test]
fn seller_cancel_refunds_all_escrow_and_counts_against_the_seller() {
    let mut steps = path_to(Some(Status::InProgress));
    steps.push(sample(BuyExtra, buyer(), days(1)));
    let (events, state) = OrderTest::given_commands(steps)
        .when(sample(Cancel, seller(), days(2)))
        .then_accepted();
    let cancelled = cancelled_event(events);
    assert_eq!(cancelled.cause, CancellationCause::CancelledBySeller);
    assert_eq!(cancelled.refund, eur("150.00"));
    assert!(cancelled.counts_against_seller);
    assert!(escrow(&state).is_zero());
}

#[test]
fn buyer_cancel_before_confirmation_is_free_and_not_counted() {
    let (events, _) = OrderTest::given_commands(path_to(Some(Status::Placed)))
        .when(sample(Cancel, buyer(), hours(1)))
        .then_accepted();
    let cancelled = cancelled_event(events);
    assert_eq!(
        cancelled.cause,
        CancellationCause::CancelledByBuyerBeforeConfirmation
    );
    assert!(!cancelled.counts_against_seller);
    assert_eq!(cancelled.refund, eur(PRICE));
}

#[test]
fn buyer_cannot_cancel_an_order_in_progress_until_it_is_late() {
    let due_at = days(5) + Duration::hours(1);
    in_progress()
        .when(sample(Cancel, buyer(), due_at))
        .then_expect_rejection(Rejection::NotLateYet { due_at });
}

#[test]
fn buyer_may_cancel_a_late_order_which_counts_against_the_seller() {
    let (events, _) = in_progress()
        .when(sample(
            Cancel,
            buyer(),
            days(5) + Duration::hours(1) + Duration::seconds(1),
        ))
        .then_accepted();
    let cancelled = cancelled_event(events);
    assert_eq!(cancelled.cause, CancellationCause::CancelledByBuyerWhenLate);
    assert!(cancelled.counts_against_seller);
}

#[test]
fn mutual_cancellation_is_a_full_refund_not_counted_against_the_seller() {
    let mut steps = path_to(Some(Status::Delivered));
    steps.push(sample(
        RequestCancellation,
        seller(),
        days(2) + Duration::hours(1),
    ));
    let (events, _) = OrderTest::given_commands(steps)
        .when(sample(
            AgreeCancellation,
            buyer(),
            days(2) + Duration::hours(2),
        ))
        .then_accepted();
    let cancelled = cancelled_event(events);
    assert_eq!(cancelled.cause, CancellationCause::Mutual);
    assert!(!cancelled.counts_against_seller);
    assert_eq!(cancelled.refund, eur(PRICE));
}

#[test]
fn mutual_cancellation_needs_the_other_party_to_agree() {
    let mut steps = path_to(Some(Status::InProgress));
    steps.push(sample(RequestCancellation, buyer(), days(1)));
    OrderTest::given_commands(steps.clone())
        .when(sample(AgreeCancellation, buyer(), days(2)))
        .then_expect_rejection(Rejection::CannotAgreeToOwnRequest);
    OrderTest::given_commands(steps)
        .when(sample(RequestCancellation, seller(), days(2)))
        .then_expect_rejection(Rejection::CancellationAlreadyRequested {
            requested_by: Party::Buyer,
        });
    in_progress()
        .when(sample(AgreeCancellation, seller(), days(2)))
        .then_expect_rejection(Rejection::NoCancellationRequested);
}

#[test]
fn only_the_party_who_asked_may_withdraw_a_cancellation_request() {
    let mut steps = path_to(Some(Status::InProgress));
    steps.push(sample(RequestCancellation, buyer(), days(1)));
    OrderTest::given_commands(steps.clone())
        .when(sample(WithdrawCancellation, seller(), days(2)))
        .then_expect_rejection(Rejection::NotTheRequester {
            requested_by: Party::Buyer,
        });
    let (_, state) = OrderTest::given_commands(steps)
        .when(sample(WithdrawCancellation, buyer(), days(2)))
        .then_accepted();
    assert!(state
        .order()
        .is_some_and(|o| o.pending_cancellation.is_none()));
}

#[test]
fn a_cancellation_request_lapses_when_the_order_changes_state() {
    let mut steps = path_to(Some(Status::InProgress));
    steps.push(sample(RequestCancellation, buyer(), days(1)));
    steps.push(sample(Deliver, seller(), days(2)));
    OrderTest::given_commands(steps)
        .when(sample(AgreeCancellation, seller(), days(2)))
        .then_expect_rejection(Rejection::NoCancellationRequested);
}

#[test]
fn partial_refund_is_more_than_zero_and_less_than_escrow() {
    let refund = |amount| Command::PartialRefund {
        by: seller(),
        at: days(1),
        amount,
        reason: "agreed with the buyer".into(),
    };
    in_progress()
        .when(refund(eur("0")))
        .then_rejected_with("amount_not_positive");
    in_progress()
        .when(refund(eur("120.00")))
        .then_expect_rejection(Rejection::RefundWouldEmptyEscrow {
            escrow_held: eur("120.00"),
        });
    in_progress()
        .when(refund(eur("120.01")))
        .then_expect_rejection(Rejection::AmountExceedsEscrow {
            amount: eur("120.01"),
            escrow_held: eur("120.00"),
        });
    let (events, state) = in_progress().when(refund(eur("119.99"))).then_accepted();
    assert!(matches!(only(events), Event::PartialRefundIssued(e) if e.escrow_after == eur("0.01")));
    assert_eq!(escrow(&state), eur("0.01"));
}

#[test]
fn partial_refund_is_refused_before_confirmation_in_dispute_and_after_close() {
    OrderTest::given_commands(path_to(Some(Status::Placed)))
        .when(sample(PartialRefund, seller(), hours(1)))
        .then_rejected_with("wrong_state");
    in_dispute()
        .when(sample(PartialRefund, seller(), days(3)))
        .then_rejected_with("order_in_dispute");
    closed()
        .when(sample(PartialRefund, seller(), days(4)))
        .then_expect_rejection(Rejection::OrderFinished {
            status: Status::Closed,
        });
}

#[test]
fn in_dispute_only_a_mediator_can_act() {
    for (kind, by) in [
        (Close, buyer()),
        (Deliver, seller()),
        (Cancel, seller()),
        (BuyExtra, buyer()),
        (RequestCancellation, buyer()),
    ] {
        in_dispute()
            .when(sample(kind, by, days(3)))
            .then_expect_rejection(Rejection::OrderInDispute);
    }
    in_dispute()
        .when(sample(ResolveDispute, mediator(), days(3)))
        .then_accepted();
}

#[test]
fn a_dispute_released_closes_the_order_and_pays_the_seller() {
    let (events, state) = in_dispute()
        .when(sample(ResolveDispute, mediator(), days(3)))
        .then_accepted();
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[0], Event::DisputeResolved(e) if e.resolution == Resolution::Release));
    let closed = closed_event(events);
    assert_eq!(closed.cause, CloseCause::DisputeReleased);
    assert_eq!(closed.seller_credit, eur("96.00"));
    assert_eq!(state.status(), Some(Status::Closed));
}

#[test]
fn a_dispute_refunded_in_full_cancels_the_order_against_the_seller() {
    let command = Command::ResolveDispute {
        by: mediator(),
        at: days(3),
        resolution: Resolution::Refund,
        note: "not delivered".into(),
    };
    let (events, state) = in_dispute().when(command).then_accepted();
    let cancelled = cancelled_event(events);
    assert_eq!(cancelled.cause, CancellationCause::DisputeRefunded);
    assert!(cancelled.counts_against_seller);
    assert_eq!(cancelled.refund, eur(PRICE));
    assert_eq!(state.status(), Some(Status::Cancelled));
}

#[test]
fn a_dispute_split_refunds_part_and_releases_the_rest() {
    let split = |refund| Command::ResolveDispute {
        by: mediator(),
        at: days(3),
        resolution: Resolution::Split { refund },
        note: "half done".into(),
    };
    let everything = in_dispute()
        .when(split(eur("120.00")))
        .then_rejected_with("refund_would_empty_escrow");
    // The mediator is told which outcome does that.
    assert!(
        everything.to_string().contains("the outcome `refund`"),
        "{everything}"
    );
    let (events, state) = in_dispute().when(split(eur("50.00"))).then_accepted();
    assert_eq!(events.len(), 3);
    assert!(
        matches!(&events[1], Event::PartialRefundIssued(e) if e.amount == eur("50.00") && e.by == mediator())
    );
    let closed = closed_event(events);
    assert_eq!(closed.cause, CloseCause::DisputeSplit);
    assert_eq!(closed.released, eur("70.00"));
    assert_eq!(closed.commission, eur("14.00"));
    assert_eq!(closed.seller_credit, eur("56.00"));
    assert!(escrow(&state).is_zero());
}

#[test]
fn a_review_is_left_once_with_a_rating_from_one_to_five() {
    let review = |rating| Command::LeaveReview {
        by: buyer(),
        at: days(30),
        rating,
        comment: None,
    };
    closed()
        .when(review(0))
        .then_expect_rejection(Rejection::RatingOutOfRange { rating: 0 });
    closed()
        .when(review(6))
        .then_expect_rejection(Rejection::RatingOutOfRange { rating: 6 });
    let mut steps = path_to(Some(Status::Closed));
    steps.push(review(4));
    OrderTest::given_commands(steps)
        .when(review(5))
        .then_expect_rejection(Rejection::ReviewAlreadyLeft);
}

#[test]
fn a_cancelled_order_cannot_be_reviewed() {
    OrderTest::given_commands(path_to(Some(Status::Cancelled)))
        .when(sample(LeaveReview, buyer(), days(1)))
        .then_expect_rejection(Rejection::OrderFinished {
            status: Status::Cancelled,
        });
}

#[test]
fn nothing_changes_a_closed_order_but_the_buyers_review() {
    for kind in CommandKind::ALL {
        if matches!(kind, Place | LeaveReview) {
            continue;
        }
        for by in [buyer(), seller(), mediator(), system()] {
            let result = closed().when(sample(kind, by, days(4))).result;
            assert!(result.is_err(), "{kind:?} by {by} changed a closed order");
        }
    }
}

#[test]
fn a_command_dated_before_the_orders_last_event_is_refused() {
    delivered()
        .when(sample(Close, buyer(), days(1)))
        .then_expect_rejection(Rejection::ClockWentBackwards {
            at: days(1),
            last_event_at: days(2),
        });
}

#[test]
fn a_buyer_or_seller_acts_only_on_their_own_orders() {
    delivered()
        .when(sample(Close, Actor::new(Role::Buyer, OTHER_BUYER), days(3)))
        .then_expect_rejection(Rejection::NotAParty {
            party: Party::Buyer,
        });
    in_progress()
        .when(sample(
            Deliver,
            Actor::new(Role::Seller, OTHER_SELLER),
            days(3),
        ))
        .then_expect_rejection(Rejection::NotAParty {
            party: Party::Seller,
        });
}

#[test]
fn finance_sends_no_commands() {
    for kind in CommandKind::ALL {
        let rejection = in_progress()
            .when(sample(kind, finance(), days(1)))
            .then_rejected_with("role_not_allowed");
        assert!(
            rejection.to_string().starts_with("a finance cannot"),
            "{rejection}"
        );
    }
}

#[test]
fn replay_keeps_the_commission_rate_written_when_the_order_was_placed() {
    let placed_at_20 = path_to(Some(Status::Delivered));
    let today = Policy {
        commission_rate: Decimal::new(30, 2),
        ..Policy::default()
    };
    let (events, _) = OrderTest::given_commands(placed_at_20)
        .with_policy(today)
        .when(sample(Close, buyer(), days(3)))
        .then_accepted();
    assert_eq!(closed_event(events).commission, eur("24.00"));
}

#[test]
fn an_invalid_policy_is_refused_rather_than_applied() {
    let policy = Policy {
        commission_rate: Decimal::ONE,
        ..Policy::default()
    };
    OrderTest::given(vec![])
        .with_policy(policy)
        .when(sample(Place, buyer(), t0()))
        .then_rejected_with("invalid_policy");
}

#[test]
fn every_rejection_message_reads_as_a_sentence() {
    let rejection = closed()
        .when(sample(Deliver, seller(), days(4)))
        .then_rejected_with("order_finished");
    assert_eq!(
        rejection.to_string(),
        "the order is closed: it can no longer be modified"
    );
    let rejection = in_progress()
        .when(sample(Close, buyer(), days(1)))
        .then_rejected_with("wrong_state");
    assert_eq!(
        rejection.to_string(),
        "cannot close an order that is in progress"
    );
}
