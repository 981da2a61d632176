//! Money on the wire and in arithmetic: strings not floats, scale by currency, commission
//! rounded half-even to the minor unit.

mod support;

use ledger_domain::*;
use rust_decimal::Decimal;
use support::*;

fn rate(text: &str) -> Decimal {
    text.parse().expect("rate")
}

#[test]
fn amounts_travel_as_strings_at_the_currencys_minor_unit() {
    let json = serde_json::to_string(&eur("120")).expect("serialises");
    assert_eq!(json, r#"{"amount":"120.00","currency":"EUR"}"#);
    let jpy = serde_json::to_string(&money("500", "JPY")).expect("serialises");
    assert_eq!(jpy, r#"{"amount":"500","currency":"JPY"}"#);
    let back: Money = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, eur("120.00"));
}

#[test]
fn a_float_amount_in_json_is_refused() {
    for json in [
        r#"{"amount":120.0,"currency":"EUR"}"#,
        r#"{"amount":120,"currency":"EUR"}"#,
    ] {
        let error = serde_json::from_str::<Money>(json).expect_err("numbers are refused");
        assert!(error.to_string().starts_with("invalid type"), "{error}");
    }
}

#[test]
fn malformed_negative_and_over_scale_amounts_are_refused() {
    let eur_code = currency("EUR");
    for text in [
        "", "1e3", "1_000", "+1", "1.", ".5", "1,00", " 1", "0x10", "NaN",
    ] {
        assert!(
            matches!(Money::parse(text, eur_code), Err(MoneyError::Malformed(_))),
            "{text:?} accepted"
        );
    }
    // The refusal names the amount as it was sent, sign included, also for a negative zero.
    for (text, said) in [("-1.00", "got -1.00"), ("-0.00", "got -0.00")] {
        let refusal = Money::parse(text, eur_code);
        assert!(matches!(refusal, Err(MoneyError::Negative(_))), "{text}");
        let message = refusal
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(message.contains(said), "{text}: {message}");
    }
    assert!(matches!(
        Money::parse("1.001", eur_code),
        Err(MoneyError::TooManyDecimals { .. })
    ));
    assert!(matches!(
        Money::parse("1.5", currency("JPY")),
        Err(MoneyError::TooManyDecimals { .. })
    ));
    assert!(Money::parse("1.001", currency("BHD")).is_ok());
    // Digits past what any amount can hold are called that, not malformed.
    for text in [
        "99999999999999999999999999999",
        "-99999999999999999999999999999",
        "0.000000000000000000000000000001",
    ] {
        let refusal = Money::parse(text, eur_code);
        assert!(
            matches!(&refusal, Err(MoneyError::TooManyDigits(sent)) if sent == text),
            "{text}: {refusal:?}"
        );
    }
    // Trailing zeros beyond the minor unit lose nothing and are accepted.
    assert_eq!(Money::parse("1.500", eur_code), Ok(eur("1.50")));
}

#[test]
fn unknown_currencies_and_currencies_without_minor_unit_are_refused() {
    assert!(matches!(
        Currency::from_code("EURO"),
        Err(MoneyError::UnknownCurrency(_))
    ));
    assert!(matches!(
        Currency::from_code("eur"),
        Err(MoneyError::UnknownCurrency(_))
    ));
    assert!(matches!(
        Currency::from_code("XAU"),
        Err(MoneyError::CurrencyWithoutMinorUnit(_))
    ));
    let error =
        serde_json::from_str::<Money>(r#"{"amount":"1","currency":"ABC"}"#).expect_err("unknown");
    assert!(error.to_string().contains("ISO 4217"), "{error}");
}

#[test]
fn the_largest_allowed_amount_is_accepted_and_one_minor_unit_more_is_not() {
    let max = Decimal::from(AMOUNT_MAJOR_UNITS_MAX);
    let largest = Money::new(max, currency("EUR")).expect("max accepted");
    assert!(matches!(
        Money::new(max + Decimal::new(1, 2), currency("EUR")),
        Err(MoneyError::TooLarge(_))
    ));
    // Its commission is exact and the seller's share balances it.
    let commission = largest.commission_at(rate("0.20")).expect("commission");
    assert_eq!(commission.amount(), Decimal::from(200_000_000));
    let credit = largest.checked_sub(commission).expect("credit");
    assert_eq!(credit.checked_add(commission), Ok(largest));
}

/// The limit is on amounts entered. A sum of them (an order's escrow with its extras, a
/// seller's wallet) may pass it, and must read back as it was written: events and stored
/// views hold such sums.
#[test]
fn a_sum_past_the_largest_allowed_amount_reads_back_as_written() {
    let eur = currency("EUR");
    let max = Money::new(Decimal::from(AMOUNT_MAJOR_UNITS_MAX), eur).expect("max");
    let sum = max.checked_add(max).expect("sum");
    let json = serde_json::to_string(&sum).expect("json");
    assert_eq!(json, r#"{"amount":"2000000000.00","currency":"EUR"}"#);
    assert_eq!(
        serde_json::from_str::<Money>(&json).expect("reads back"),
        sum
    );
    // Entered, it is still refused; read back, a negative or over-scale amount still is.
    assert!(matches!(
        Money::parse("2000000000.00", eur),
        Err(MoneyError::TooLarge(_))
    ));
    for bad in [
        r#"{"amount":"-1.00","currency":"EUR"}"#,
        r#"{"amount":"1.001","currency":"EUR"}"#,
        r#"{"amount":"1e3","currency":"EUR"}"#,
    ] {
        assert!(serde_json::from_str::<Money>(bad).is_err(), "{bad}");
    }
}

#[test]
fn commission_rounds_half_even_to_the_minor_unit() {
    // 0.125 → 0.12 (to even), 0.135 → 0.14 (to even), 0.1251 → 0.13.
    let cases = [
        ("0.25", "0.50", "0.12"),
        ("0.27", "0.50", "0.14"),
        ("0.25", "0.5004", "0.13"),
        ("10.05", "0.10", "1.00"),
        ("10.15", "0.10", "1.02"),
    ];
    for (amount, r, expected) in cases {
        let released = Money::parse(amount, currency("EUR")).expect("amount");
        assert_eq!(
            released.commission_at(rate(r)),
            Ok(eur(expected)),
            "{amount} × {r}"
        );
    }
}

#[test]
fn commission_in_a_zero_decimal_currency_is_whole_yen() {
    // 25 × 0.10 = 2.5 → 2 (to even); 35 × 0.10 = 3.5 → 4 (to even).
    let yen = |a: &str| money(a, "JPY");
    assert_eq!(yen("25").commission_at(rate("0.10")), Ok(yen("2")));
    assert_eq!(yen("35").commission_at(rate("0.10")), Ok(yen("4")));
    assert_eq!(yen("999").commission_at(rate("0.20")), Ok(yen("200")));
}

#[test]
fn arithmetic_refuses_to_mix_currencies_or_go_negative() {
    assert!(matches!(
        eur("1").checked_add(money("1", "USD")),
        Err(MoneyError::CurrencyMismatch { .. })
    ));
    assert!(matches!(
        eur("1.00").checked_sub(eur("1.01")),
        Err(MoneyError::WouldGoNegative { .. })
    ));
}

#[test]
fn a_zero_decimal_order_closes_with_whole_commission() {
    let place = Command::Place {
        by: buyer(),
        at: t0(),
        order_id: ORDER,
        seller: SELLER,
        title: "yen".into(),
        price: money("1005", "JPY"),
        delivery_days: 1,
    };
    let mut steps = vec![place];
    steps.push(support::sample(CommandKind::Confirm, seller(), hours(1)));
    steps.push(support::sample(CommandKind::Deliver, seller(), hours(2)));
    let (events, _) = OrderTest::given_commands(steps)
        .when(support::sample(CommandKind::Close, buyer(), hours(3)))
        .then_accepted();
    match only(events) {
        // 1005 × 0.20 = 201 exactly.
        Event::OrderClosed(e) => {
            assert_eq!(e.commission, money("201", "JPY"));
            assert_eq!(e.seller_credit, money("804", "JPY"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn buyers_pay_in_money_in_circulation_and_old_amounts_stay_readable() {
    assert_eq!(
        currency("HRK").not_payable(),
        Some(NotPayable::ReplacedBy("EUR"))
    );
    assert_eq!(
        currency("CLF").not_payable(),
        Some(NotPayable::UnitOfAccount)
    );
    for code in ["EUR", "JPY", "BHD", "USD", "VED"] {
        assert_eq!(currency(code).not_payable(), None, "{code}");
    }
    let recorded: Money =
        serde_json::from_str(r#"{"amount":"10.00","currency":"HRK"}"#).expect("readable");
    assert_eq!(recorded, money("10.00", "HRK"));
}
