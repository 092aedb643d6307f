//! Kubernetes resource quantities ("500m", "1.5", "2Ki") held as exact integer milli-values.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::error::ScalerError;

/// Longest quantity string accepted; real quantities are a handful of characters.
const MAX_QUANTITY_LEN: usize = 64;

/// A quantity as an integer number of thousandths, like `resource.Quantity.MilliValue()`.
///
/// The HPA does all its arithmetic on milli-values (integer sums and truncating divisions), so holding
/// them exactly is what lets this engine reproduce upstream decisions bit for bit. Parsing rounds any
/// sub-milli remainder up, as `MilliValue` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(i64);

impl Quantity {
    /// A quantity of `milli` thousandths.
    pub const fn from_milli(milli: i64) -> Self {
        Self(milli)
    }

    /// A quantity of `units` whole units.
    pub const fn from_units(units: i64) -> Self {
        Self(units.saturating_mul(1000))
    }

    /// Converts a float, rounding to the nearest milli (floats such as 0.1 are not exact, so rounding
    /// up would turn 0.1 into 101m). Rejects NaN, infinities and values beyond the milli range.
    pub fn from_f64(value: f64) -> Result<Self, ScalerError> {
        let milli = (value * 1000.0).round();
        if !milli.is_finite() || milli.abs() >= i64::MAX as f64 {
            return Err(ScalerError::InvalidQuantity {
                input: value.to_string(),
                problem: "not a finite number within ±9.2e15; report a finite sample".into(),
            });
        }
        Ok(Self(milli as i64))
    }

    /// The value in thousandths.
    pub const fn milli(self) -> i64 {
        self.0
    }

    /// The value as a float (`AsApproximateFloat64`).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

fn invalid(input: &str, problem: &str) -> ScalerError {
    ScalerError::InvalidQuantity {
        input: input.chars().take(MAX_QUANTITY_LEN).collect(),
        problem: problem.into(),
    }
}

/// Ceil division for a positive divisor, so negative quantities round toward +inf like `MilliValue`.
fn div_ceil(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d > 0 { q + 1 } else { q }
}

impl FromStr for Quantity {
    type Err = ScalerError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() || s.len() > MAX_QUANTITY_LEN {
            return Err(invalid(
                input,
                "expected a Kubernetes quantity of 1..=64 characters such as \"500m\", \"2\" or \"1Ki\"",
            ));
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() || frac.contains('.') {
            return Err(invalid(
                input,
                "expected digits with at most one decimal point",
            ));
        }
        let digits: String = whole.chars().chain(frac.chars()).collect();
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(invalid(input, "too many significant digits (at most 30)"));
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits
                .parse()
                .map_err(|_| invalid(input, "expected decimal digits"))?
        };
        // Signed before scaling so the ceil below rounds toward +inf for negative values too.
        let mantissa = if negative { -mantissa } else { mantissa };
        let frac_digits = frac.len() as i32;
        // (base, exponent): value = mantissa / 10^frac_digits * base^exponent.
        let (base, exponent): (i128, i32) = match suffix {
            "" => (10, 0),
            "n" => (10, -9),
            "u" => (10, -6),
            "m" => (10, -3),
            "k" => (10, 3),
            "M" => (10, 6),
            "G" => (10, 9),
            "T" => (10, 12),
            "P" => (10, 15),
            "E" => (10, 18),
            "Ki" => (2, 10),
            "Mi" => (2, 20),
            "Gi" => (2, 30),
            "Ti" => (2, 40),
            "Pi" => (2, 50),
            "Ei" => (2, 60),
            other => {
                let exp = other
                    .strip_prefix(['e', 'E'])
                    .and_then(|e| e.parse::<i32>().ok())
                    .filter(|e| e.abs() <= 40)
                    .ok_or_else(|| {
                        invalid(
                            input,
                            "unknown suffix; use one of n u m k M G T P E Ki Mi Gi Ti Pi Ei or e<exponent>",
                        )
                    })?;
                (10, exp)
            }
        };
        let out_of_range = || invalid(input, "out of range for a milli-value (about ±9.2e15)");
        let milli: i128 = if base == 10 {
            let shift = exponent + 3 - frac_digits;
            if shift >= 0 {
                let factor = 10i128.checked_pow(shift as u32).ok_or_else(out_of_range)?;
                mantissa.checked_mul(factor).ok_or_else(out_of_range)?
            } else {
                match 10i128.checked_pow((-shift) as u32) {
                    Some(divisor) => div_ceil(mantissa, divisor),
                    None => i128::from(mantissa > 0), // |value| below 1e-38 milli
                }
            }
        } else {
            let scaled = mantissa
                .checked_mul(1i128 << exponent)
                .and_then(|v| v.checked_mul(1000))
                .ok_or_else(out_of_range)?;
            let divisor = 10i128
                .checked_pow(frac_digits as u32)
                .ok_or_else(out_of_range)?;
            div_ceil(scaled, divisor)
        };
        let milli = i64::try_from(milli).map_err(|_| out_of_range())?;
        Ok(Self(milli))
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes quantity string such as \"500m\" or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        v.checked_mul(1000)
            .map(Quantity)
            .ok_or_else(|| E::custom(format!("quantity {v} is out of range")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        i64::try_from(v)
            .map_err(|_| E::custom(format!("quantity {v} is out of range")))
            .and_then(|v| self.visit_i64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        Quantity::from_f64(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        let cases: &[(&str, i64, &str)] = &[
            ("500m", 500, "milli suffix is taken as is"),
            ("2", 2000, "plain integer is whole units"),
            ("1.5", 1500, "decimal point"),
            ("0.1", 100, "tolerance-style fraction"),
            ("0.0005", 1, "sub-milli remainder rounds up like MilliValue"),
            ("-0.0005", 0, "negative remainder rounds toward +inf"),
            ("1k", 1_000_000, "decimal SI suffix"),
            ("1Ki", 1_024_000, "binary suffix"),
            ("1.5Mi", 1_572_864_000, "fractional binary"),
            ("100n", 1, "nano rounds up to one milli"),
            ("1e3", 1_000_000, "decimal exponent"),
            ("+3", 3000, "explicit plus sign"),
            ("-2", -2000, "negative value"),
        ];
        for (input, want, why) in cases {
            let got: Quantity = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.milli(), *want, "{input}: {why}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for (input, why) in [
            ("", "empty"),
            ("abc", "no digits"),
            ("1.2.3", "two decimal points"),
            ("5Q", "unknown suffix"),
            ("1e999", "exponent out of range"),
            ("9999999999999999999999", "too large"),
            (
                "12E",
                "12 exa-units is beyond the milli range and must not wrap",
            ),
            (".", "lone dot"),
        ] {
            assert!(
                input.parse::<Quantity>().is_err(),
                "{input:?} accepted: {why}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for milli in [0, 1, 999, 1000, 1500, -250, 42_000] {
            let q = Quantity::from_milli(milli);
            let back: Quantity = q.to_string().parse().expect("display output parses");
            assert_eq!(back, q);
        }
    }

    #[test]
    fn serde_accepts_strings_and_numbers() {
        let q: Quantity = serde_json::from_str("\"250m\"").expect("string");
        assert_eq!(q.milli(), 250);
        let q: Quantity = serde_json::from_str("3").expect("integer");
        assert_eq!(q.milli(), 3000);
        let q: Quantity = serde_json::from_str("0.05").expect("float");
        assert_eq!(q.milli(), 50);
        assert_eq!(
            serde_json::to_string(&Quantity::from_milli(1500)).expect("ser"),
            "\"1500m\""
        );
        assert!(Quantity::from_f64(f64::NAN).is_err());
        assert!(Quantity::from_f64(f64::INFINITY).is_err());
    }
}
