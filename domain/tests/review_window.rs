//! The review window: six calendar months from close, inclusive of the last calendar day.
//! [seed 002: "they can do so for six months after the order is closed"]

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_domain::*;
use support::*;

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid")
}

/// An order closed by its buyer at `closed_at`, and a review attempted at `review_at`.
fn review_after_close(
    closed_at: DateTime<Utc>,
    review_at: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let start = closed_at - Duration::days(4);
    let steps = vec![
        Command::Place {
            by: buyer(),
            at: start,
            order_id: ORDER,
            seller: SELLER,
            title: "A logo".into(),
            price: eur("100.00"),
            delivery_days: 2,
        },
        sample(CommandKind::Confirm, seller(), start + Duration::hours(1)),
        sample(CommandKind::Deliver, seller(), start + Duration::days(1)),
        sample(CommandKind::Close, buyer(), closed_at),
    ];
    OrderTest::given_commands(steps)
        .when(sample(CommandKind::LeaveReview, buyer(), review_at))
        .result
}

#[test]
fn closed_on_31_august_the_last_day_to_review_is_the_end_of_february() {
    let closed = utc(2026, 8, 31, 15);
    assert_eq!(review_window_end(closed, 6), Ok(utc(2027, 3, 1, 0)));
    assert!(review_after_close(closed, utc(2027, 2, 28, 23)).is_ok());
    assert_eq!(
        review_after_close(closed, utc(2027, 3, 1, 0)),
        Err(Rejection::ReviewWindowClosed {
            closed_at: utc(2027, 3, 1, 0)
        })
    );
}

#[test]
fn in_a_leap_year_the_window_ends_on_29_february() {
    let closed = utc(2027, 8, 31, 10);
    assert_eq!(review_window_end(closed, 6), Ok(utc(2028, 3, 1, 0)));
    assert!(review_after_close(closed, utc(2028, 2, 29, 12)).is_ok());
}

#[test]
fn a_review_five_months_after_close_is_accepted() {
    let closed = utc(2026, 4, 10, 9);
    assert!(review_after_close(closed, utc(2026, 9, 10, 9)).is_ok());
}

#[test]
fn a_review_six_months_and_a_day_after_close_is_refused() {
    let closed = utc(2026, 4, 10, 9);
    // The same calendar day six months on is still inside the window…
    assert!(review_after_close(closed, utc(2026, 10, 10, 23)).is_ok());
    // …the next day is not.
    assert!(matches!(
        review_after_close(closed, utc(2026, 10, 11, 9)),
        Err(Rejection::ReviewWindowClosed { .. })
    ));
}

#[test]
fn the_window_follows_the_configured_number_of_months() {
    assert_eq!(
        review_window_end(utc(2026, 1, 31, 8), 1),
        Ok(utc(2026, 3, 1, 0))
    );
    assert_eq!(
        review_window_end(utc(2026, 1, 15, 8), 12),
        Ok(utc(2027, 1, 16, 0))
    );
}

/// Every instant an event carries must be writable as RFC 3339, whose years have four digits.
#[test]
fn no_deadline_or_window_is_set_past_the_year_9999() {
    assert_eq!(
        review_window_end(utc(9999, 6, 30, 8), 6),
        Ok(utc(9999, 12, 31, 0))
    );
    assert_eq!(
        review_window_end(utc(9999, 7, 1, 8), 6),
        Err(Rejection::InstantOutOfRange)
    );
    let place = |at| Command::Place {
        by: buyer(),
        at,
        order_id: ORDER,
        seller: SELLER,
        title: "A logo".into(),
        price: eur("100.00"),
        delivery_days: 2,
    };
    assert!(OrderTest::given(vec![])
        .when(place(utc(9999, 12, 28, 8)))
        .result
        .is_ok());
    OrderTest::given(vec![])
        .when(place(utc(9999, 12, 29, 8)))
        .then_expect_rejection(Rejection::InstantOutOfRange);
    assert!(review_after_close(utc(9999, 6, 30, 8), utc(9999, 12, 30, 8)).is_ok());
    let delivered = vec![
        place(utc(9999, 6, 27, 8)),
        sample(CommandKind::Confirm, seller(), utc(9999, 6, 27, 9)),
        sample(CommandKind::Deliver, seller(), utc(9999, 6, 28, 9)),
    ];
    OrderTest::given_commands(delivered)
        .when(sample(CommandKind::Close, buyer(), utc(9999, 7, 1, 8)))
        .then_expect_rejection(Rejection::InstantOutOfRange);
}
