//! Money: a non-negative `Decimal` in one ISO 4217 currency, never a float.
//!
//! Amounts are kept at exactly their currency's minor unit (`"120.00"` EUR, `"500"` JPY), so that
//! equal amounts serialise equally and a replay rebuilds the same bytes.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The largest amount a single price, extra or refund may carry, in major units.
/// Escrow sums stay far below `Decimal`'s range, so checked arithmetic never overflows in practice.
pub const AMOUNT_MAJOR_UNITS_MAX: i64 = 1_000_000_000;

/// Longest amount string accepted on the wire; anything longer is not an amount we could hold.
pub const AMOUNT_TEXT_CHARS_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    #[error("`{0}` is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("{0} has no minor unit (a metal, fund or testing code) and cannot be used for orders")]
    CurrencyWithoutMinorUnit(&'static str),
    #[error("`{0}` is not a decimal amount (digits with an optional decimal point, as a string)")]
    Malformed(String),
    #[error("{amount} has more decimal places than {currency}'s minor unit ({minor_unit})")]
    TooManyDecimals {
        amount: Decimal,
        currency: Currency,
        minor_unit: u32,
    },
    // Written from its magnitude: `-0.00` is a `Decimal` that prints as `0.00`.
    #[error("an amount cannot be negative (got -{})", .0.abs())]
    Negative(Decimal),
    #[error("{0} exceeds the largest allowed amount ({AMOUNT_MAJOR_UNITS_MAX})")]
    TooLarge(Decimal),
    /// Digits past what a `Decimal` holds, so past any amount: said so, not "malformed".
    #[error("`{0}` has more digits than any amount: at most {AMOUNT_MAJOR_UNITS_MAX}, to the currency's minor unit")]
    TooManyDigits(String),
    #[error("cannot combine {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("{minuend} minus {subtrahend} would be negative")]
    WouldGoNegative {
        minuend: Decimal,
        subtrahend: Decimal,
    },
    #[error("arithmetic overflow")]
    Overflow,
}

/// An ISO 4217 currency that has a minor unit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        let iso = iso_by_code(code)
            .or_else(|| iso_currency::Currency::from_code(code))
            .ok_or_else(|| MoneyError::UnknownCurrency(code.chars().take(8).collect()))?;
        match iso.exponent() {
            Some(_) => Ok(Currency(iso)),
            None => Err(MoneyError::CurrencyWithoutMinorUnit(iso.code())),
        }
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Why no buyer can pay in this currency today, if that is so. ISO 4217 keeps funds (units
    /// of account such as CLF) and currencies that were replaced (HRK by EUR) beside money;
    /// events in them stay readable, new orders are refused.
    pub fn not_payable(self) -> Option<NotPayable> {
        if let Some(successor) = self.0.is_superseded() {
            Some(NotPayable::ReplacedBy(successor.code()))
        } else if self.0.is_fund() || self.0.is_special() {
            Some(NotPayable::UnitOfAccount)
        } else {
            None
        }
    }

    /// Decimal places of the minor unit: 2 for EUR, 0 for JPY, 3 for BHD.
    pub fn minor_unit(self) -> u32 {
        // Invariant: construction refused every currency without an exponent.
        u32::from(self.0.exponent().unwrap_or(0))
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Every ISO 4217 currency by its code, sorted once. `iso_currency`'s `from_code` compares
/// a code with each of its ~180 in turn: ~325 instructions, 2% of a rebuild, where a search
/// here takes eight comparisons of integers. Every currency has a numeric code, so those
/// find them all.
fn iso_by_code(code: &str) -> Option<iso_currency::Currency> {
    static BY_CODE: OnceLock<Vec<(u32, iso_currency::Currency)>> = OnceLock::new();
    let by_code = BY_CODE.get_or_init(|| {
        let mut by_code: Vec<_> = (0..=999)
            .filter_map(iso_currency::Currency::from_numeric)
            .filter_map(|iso| Some((code_key(iso.code())?, iso)))
            .collect();
        by_code.sort_unstable_by_key(|(key, _)| *key);
        by_code
    });
    let key = code_key(code)?;
    let found = by_code.binary_search_by_key(&key, |(key, _)| *key).ok()?;
    by_code.get(found).map(|(_, iso)| *iso)
}

/// A code of three bytes as one integer, in the same order as the codes.
fn code_key(code: &str) -> Option<u32> {
    match *code.as_bytes() {
        [a, b, c] => Some(u32::from_be_bytes([0, a, b, c])),
        _ => None,
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CodeVisitor)
    }
}

/// Reads the code where it lies: a `Cow<str>` read without `#[serde(borrow)]` is always a
/// new `String`, an allocation for every amount in every event a rebuild reads.
struct CodeVisitor;

impl serde::de::Visitor<'_> for CodeVisitor {
    type Value = Currency;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an ISO 4217 currency code")
    }

    fn visit_str<E: serde::de::Error>(self, code: &str) -> Result<Currency, E> {
        Currency::from_code(code).map_err(E::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotPayable {
    #[error("is a unit of account, not money a buyer can pay in")]
    UnitOfAccount,
    #[error("is no longer in circulation: it was replaced by {0}")]
    ReplacedBy(&'static str),
}

/// A non-negative amount of one currency, at exactly the currency's minor unit.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    // Invariant: never negative; scale == currency.minor_unit().
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// An amount someone enters (a price, a refund): checks sign, size and scale; pads the
    /// scale to the minor unit (`120` EUR is `120.00`).
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        if amount > Decimal::from(AMOUNT_MAJOR_UNITS_MAX) {
            return Err(MoneyError::TooLarge(amount));
        }
        Money::recorded(amount, currency)
    }

    /// An amount read back: sign and scale only. Sums of entered amounts (an order's escrow
    /// with its extras, a seller's wallet) may pass `AMOUNT_MAJOR_UNITS_MAX`, and what was
    /// written must read back: refused on reading, such an event stopped the views for good
    /// and such a stored wallet kept the service from starting.
    fn recorded(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(MoneyError::Negative(amount));
        }
        Money::at_minor_unit(amount.abs(), currency)
    }

    /// Parses the wire form: plain digits with an optional point, no sign, exponent or separator.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let amount = parse_plain_decimal(text)?;
        Money::new(amount, currency)
    }

    pub fn zero(currency: Currency) -> Money {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.minor_unit());
        Money { amount, currency }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Money::at_minor_unit(sum, self.currency)
    }

    /// Subtraction that refuses to go below zero: escrow can never be overdrawn.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        if other.amount > self.amount {
            return Err(MoneyError::WouldGoNegative {
                minuend: self.amount,
                subtrahend: other.amount,
            });
        }
        Money::at_minor_unit(self.amount - other.amount, self.currency)
    }

    /// `self × rate`, rounded half-even to the minor unit: the platform's cut of a release.
    /// Rounding half-even keeps the sum of many commissions unbiased.
    pub fn commission_at(self, rate: Decimal) -> Result<Money, MoneyError> {
        let product = self.amount.checked_mul(rate).ok_or(MoneyError::Overflow)?;
        let rounded = product.round_dp_with_strategy(
            self.currency.minor_unit(),
            RoundingStrategy::MidpointNearestEven,
        );
        Money::at_minor_unit(rounded, self.currency)
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    fn at_minor_unit(mut amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let minor_unit = currency.minor_unit();
        if amount.normalize().scale() > minor_unit {
            return Err(MoneyError::TooManyDecimals {
                amount,
                currency,
                minor_unit,
            });
        }
        amount.rescale(minor_unit);
        Ok(Money { amount, currency })
    }
}

fn parse_plain_decimal(text: &str) -> Result<Decimal, MoneyError> {
    let malformed = || MoneyError::Malformed(text.chars().take(AMOUNT_TEXT_CHARS_MAX).collect());
    let too_many_digits = || MoneyError::TooManyDigits(text.to_owned());
    if text.is_empty() || text.len() > AMOUNT_TEXT_CHARS_MAX {
        return Err(malformed());
    }
    if text.starts_with('-') && plain_digits(&text[1..]) {
        // Say "negative", not "malformed": the caller's mistake is the sign.
        let value = Decimal::from_str_exact(text).map_err(|_| too_many_digits())?;
        return Err(MoneyError::Negative(value));
    }
    if !plain_digits(text) {
        return Err(malformed());
    }
    Decimal::from_str_exact(text).map_err(|_| too_many_digits())
}

fn plain_digits(text: &str) -> bool {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// The wire shape: `{"amount": "120.00", "currency": "EUR"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyWire<'a> {
    #[serde(borrow)]
    amount: std::borrow::Cow<'a, str>,
    currency: Currency,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return (
                self.currency,
                MinorUnits(self.amount.mantissa().unsigned_abs()),
            )
                .serialize(serializer);
        }
        let mut text = [0u8; AMOUNT_TEXT_BYTES];
        MoneyWire {
            amount: amount_text(self.amount, &mut text),
            currency: self.currency,
        }
        .serialize(serializer)
    }
}

/// The binary form of an amount (formats whose `is_human_readable` is false: the views'
/// MessagePack rows): its count of minor units, an integer, as a `u64` where it fits (every
/// amount entered and most sums) and as 16 big-endian bytes past that. Writing an amount as
/// text and reading it back were 3% of a rebuild.
struct MinorUnits(u128);

impl Serialize for MinorUnits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match u64::try_from(self.0) {
            Ok(units) => serializer.serialize_u64(units),
            Err(_) => serializer.serialize_bytes(&self.0.to_be_bytes()),
        }
    }
}

impl<'de> Deserialize<'de> for MinorUnits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MinorUnitsVisitor)
    }
}

struct MinorUnitsVisitor;

impl serde::de::Visitor<'_> for MinorUnitsVisitor {
    type Value = MinorUnits;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a count of minor units: an unsigned integer, or 16 bytes")
    }

    fn visit_u64<E: serde::de::Error>(self, units: u64) -> Result<MinorUnits, E> {
        Ok(MinorUnits(u128::from(units)))
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<MinorUnits, E> {
        <[u8; 16]>::try_from(bytes)
            .map(|bytes| MinorUnits(u128::from_be_bytes(bytes)))
            .map_err(|_| E::invalid_length(bytes.len(), &self))
    }
}

/// Room for any `Decimal` written plainly: 29 digits, a leading `0`, a point.
const AMOUNT_TEXT_BYTES: usize = 32;

/// The amount as `Decimal`'s `Display` writes it (digits, the scale's places after a point),
/// written into `text` without an allocation: amounts are in every event, row and answer.
fn amount_text(amount: Decimal, text: &mut [u8; AMOUNT_TEXT_BYTES]) -> std::borrow::Cow<'_, str> {
    let scale = amount.scale() as usize;
    if amount.is_sign_negative() || scale >= AMOUNT_TEXT_BYTES - 2 {
        return amount.to_string().into();
    }
    let mut mantissa = amount.mantissa().unsigned_abs();
    // Digits from the right; at least one before the point.
    let mut start = AMOUNT_TEXT_BYTES;
    let mut written = 0;
    while mantissa > 0 || written <= scale {
        if written == scale && scale > 0 {
            start -= 1;
            text[start] = b'.';
        }
        start -= 1;
        // In u64 where it fits (every price does): dividing a u128 is a library call a digit.
        let digit = match u64::try_from(mantissa) {
            Ok(small) => {
                mantissa = u128::from(small / 10);
                small % 10
            }
            Err(_) => {
                let digit = mantissa % 10;
                mantissa /= 10;
                digit as u64
            }
        };
        // A digit: the remainder is below ten.
        text[start] = b'0' + digit as u8;
        written += 1;
    }
    match std::str::from_utf8(&text[start..]) {
        Ok(digits) => digits.into(),
        Err(_) => amount.to_string().into(),
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            let (currency, MinorUnits(units)) =
                <(Currency, MinorUnits)>::deserialize(deserializer)?;
            return i128::try_from(units)
                .ok()
                .and_then(|units| {
                    Decimal::try_from_i128_with_scale(units, currency.minor_unit()).ok()
                })
                .ok_or_else(|| MoneyError::TooManyDigits(units.to_string()))
                .and_then(|amount| Money::recorded(amount, currency))
                .map_err(serde::de::Error::custom);
        }
        // A JSON number in `amount` fails here: the wire type is a string, floats never pass.
        let wire = MoneyWire::deserialize(deserializer)?;
        parse_plain_decimal(&wire.amount)
            .and_then(|amount| Money::recorded(amount, wire.currency))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Amounts are in the log and in every answer: written directly, they must read
        /// exactly as `Decimal` writes them, whatever the digits and the scale.
        #[test]
        fn an_amount_is_written_as_decimal_writes_it(
            mantissa in prop_oneof![0u128..100_000, 0u128..(1 << 96)],
            scale in 0u32..=28,
            negative in any::<bool>(),
        ) {
            let signed = i128::try_from(mantissa).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let amount = Decimal::from_i128_with_scale(if negative { -signed } else { signed }, scale);
            let mut text = [0u8; AMOUNT_TEXT_BYTES];
            let direct = amount_text(amount, &mut text).into_owned();
            prop_assert_eq!(direct, amount.to_string());
        }
    }

    /// Every code of three capital letters (and a few that are not codes at all) finds,
    /// by the sorted search alone, the currency `iso_currency` finds, or none where it
    /// finds none.
    #[test]
    fn the_sorted_codes_find_every_currency_iso_currency_knows() {
        let letters = || b'A'..=b'Z';
        let mut codes: Vec<String> = letters()
            .flat_map(|a| letters().flat_map(move |b| letters().map(move |c| [a, b, c])))
            .map(|code| String::from_utf8_lossy(&code).into_owned())
            .collect();
        codes.extend(["", "EU", "EURO", "eur", "€"].map(str::to_owned));
        let mut known = 0;
        for code in &codes {
            let expected = iso_currency::Currency::from_code(code);
            assert_eq!(iso_by_code(code), expected, "{code}");
            known += usize::from(expected.is_some());
        }
        assert!(known > 150, "only {known} currencies known");
    }

    /// A code reads the same whether serde_json lends it from the input or unescapes it into
    /// a buffer, and what is not a code, or not text, is refused with what was wrong.
    #[test]
    fn a_currency_reads_from_json_lent_or_unescaped() -> Result<(), serde_json::Error> {
        let lent: Money = serde_json::from_str(r#"{"amount":"120.00","currency":"EUR"}"#)?;
        let unescaped: Money =
            serde_json::from_str(r#"{"amount":"120.00","currency":"\u0045UR"}"#)?;
        let from_bytes: Money = serde_json::from_slice(br#"{"amount":"1","currency":"JPY"}"#)?;
        assert_eq!(lent.to_string(), "120.00 EUR");
        assert_eq!(unescaped, lent);
        assert_eq!(from_bytes.currency().code(), "JPY");
        let refused = |json: &str| {
            serde_json::from_str::<Money>(json)
                .map(|money| money.to_string())
                .unwrap_or_else(|e| e.to_string())
        };
        assert!(refused(r#"{"amount":"1","currency":"XYZ"}"#)
            .starts_with("`XYZ` is not an ISO 4217 currency code"));
        assert!(refused(r#"{"amount":"1","currency":978}"#)
            .starts_with("invalid type: integer `978`, expected an ISO 4217 currency code"));
        Ok(())
    }
}
