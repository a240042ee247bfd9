//! Prices and quantities as fixed-point integers (NautilusTrader's scheme):
//! a raw integer of billionths, with the precision the instrument states.
//! Arithmetic on them is exact; a float never decides a fill or a balance.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Decimal places every raw value carries.
pub const FIXED_PRECISION: u8 = 9;
/// `10^FIXED_PRECISION`.
pub const FIXED_SCALAR: i64 = 1_000_000_000;

/// Why a decimal string is not a price or a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} {reason}")]
pub struct FixedError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

/// Parses `s` (`"101.25"`, `"-3"`) into billionths, refusing more than
/// `precision` decimal places (at most 9) and values past ±9.2e9.
fn parse_raw(field: &'static str, s: &str, precision: u8) -> Result<i64, FixedError> {
    let err = |reason: String| FixedError {
        field,
        value: s.to_owned(),
        reason,
    };
    if precision > FIXED_PRECISION {
        return Err(err(format!(
            "asks for {precision} decimals; at most {FIXED_PRECISION}"
        )));
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || !all_digits(int)
        || !all_digits(frac)
        || (digits.contains('.') && frac.is_empty())
    {
        return Err(err("is not a decimal number".into()));
    }
    if frac.len() > usize::from(precision) {
        return Err(err(format!(
            "has {} decimal places; the limit is {precision}",
            frac.len()
        )));
    }
    let int: i64 = int
        .parse()
        .ok()
        .filter(|n: &i64| *n <= i64::MAX / FIXED_SCALAR)
        .ok_or_else(|| err(format!("is larger than {}", i64::MAX / FIXED_SCALAR)))?;
    let mut frac_raw: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        frac_raw += i64::from(b - b'0') * 10i64.pow(u32::from(FIXED_PRECISION) - 1 - i as u32);
    }
    let raw = int * FIXED_SCALAR + frac_raw;
    Ok(if negative { -raw } else { raw })
}

/// Writes `raw` billionths with `precision` decimals.
fn write_raw(f: &mut fmt::Formatter<'_>, raw: i64, precision: u8) -> fmt::Result {
    let sign = if raw < 0 { "-" } else { "" };
    let abs = raw.unsigned_abs();
    let scalar = FIXED_SCALAR as u64;
    let (int, frac) = (abs / scalar, abs % scalar);
    if precision == 0 {
        return write!(f, "{sign}{int}");
    }
    let frac = frac / 10u64.pow(u32::from(FIXED_PRECISION - precision));
    write!(
        f,
        "{sign}{int}.{frac:0width$}",
        width = usize::from(precision)
    )
}

/// A price: may be negative (spreads, some futures), `precision` decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Price {
    pub raw: i64,
    pub precision: u8,
}

impl Price {
    pub fn parse(field: &'static str, s: &str, precision: u8) -> Result<Price, FixedError> {
        Ok(Price {
            raw: parse_raw(field, s, precision)?,
            precision,
        })
    }

    /// `raw` billionths at `precision` (the raw value is kept as given).
    pub const fn from_raw(raw: i64, precision: u8) -> Price {
        Price { raw, precision }
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_raw(f, self.raw, self.precision)
    }
}

/// A quantity: never negative, `precision` decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Quantity {
    pub raw: u64,
    pub precision: u8,
}

impl Quantity {
    pub fn parse(field: &'static str, s: &str, precision: u8) -> Result<Quantity, FixedError> {
        let raw = parse_raw(field, s, precision)?;
        let raw = u64::try_from(raw).map_err(|_| FixedError {
            field,
            value: s.to_owned(),
            reason: "is negative; a quantity is not".into(),
        })?;
        Ok(Quantity { raw, precision })
    }

    pub const fn from_raw(raw: u64, precision: u8) -> Quantity {
        Quantity { raw, precision }
    }

    pub const fn zero(precision: u8) -> Quantity {
        Quantity { raw: 0, precision }
    }

    pub const fn is_zero(&self) -> bool {
        self.raw == 0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Quantities stay below 9.2e9 units, so the raw value fits an i64.
        write_raw(f, self.raw as i64, self.precision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals_parse_exactly_and_print_at_their_precision() {
        let p = Price::parse("price", "101.25", 2).unwrap();
        assert_eq!(p.raw, 101_250_000_000);
        assert_eq!(p.to_string(), "101.25");
        assert_eq!(
            Price::parse("price", "-0.5", 3).unwrap().to_string(),
            "-0.500"
        );
        assert_eq!(
            Quantity::parse("quantity", "7", 0).unwrap().to_string(),
            "7"
        );
    }

    #[test]
    fn a_bad_decimal_is_refused_naming_its_field_and_limit() {
        let e = Price::parse("price", "101.255", 2).unwrap_err();
        assert_eq!(e.field, "price");
        assert!(e.reason.contains("the limit is 2"), "{e}");
        for bad in ["", "1.", ".5", "1e3", "1,5", "--1", "abc"] {
            assert!(Price::parse("price", bad, 4).is_err(), "{bad:?}");
        }
        let e = Quantity::parse("quantity", "-1", 0).unwrap_err();
        assert!(e.reason.contains("negative"), "{e}");
        assert!(Price::parse("price", "99999999999", 0).is_err());
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_value(int in -9_000_000i64..9_000_000, frac in 0u32..10_000, precision in 4u8..=9) {
            let s = format!("{int}.{frac:04}");
            let p = Price::parse("price", &s, precision).unwrap();
            let again = Price::parse("price", &p.to_string(), precision).unwrap();
            prop_assert_eq!(p, again);
        }
    }
}
