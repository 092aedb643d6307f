//! CPU and memory amounts as the recommender holds them (millicores, bytes) and as Kubernetes prints them.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

use crate::quantity::Quantity;

/// Upstream caps every amount at 1e14 (millicores or bytes) so that "infinite" upper bounds stay finite.
pub const MAX_RESOURCE_AMOUNT: i64 = 100_000_000_000_000;

/// CPU in millicores, printed like `resource.NewScaledQuantity(m, -3)`: `250m`, `2`, `1k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CpuAmount(pub i64);

/// Memory in bytes, printed like a binary-SI quantity: `512Mi`, `1Gi`, or plain bytes when not a
/// multiple of 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MemoryAmount(pub i64);

impl CpuAmount {
    /// Whole-millicore amount from cores, truncating and clamping to `0..=MAX_RESOURCE_AMOUNT` like
    /// upstream `CPUAmountFromCores`; NaN maps to 0.
    pub fn from_cores(cores: f64) -> Self {
        Self(amount_from_float(cores * 1000.0))
    }

    /// The amount in cores.
    pub fn cores(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl MemoryAmount {
    /// Whole bytes, truncating and clamping like upstream `MemoryAmountFromBytes`; NaN maps to 0.
    pub fn from_bytes(bytes: f64) -> Self {
        Self(amount_from_float(bytes))
    }
}

/// Truncates toward zero and clamps into `0..=MAX_RESOURCE_AMOUNT`. Upstream leaves NaN undefined
/// (0 × ∞ happens for an empty history); 0 is the only safe reading.
pub(crate) fn amount_from_float(amount: f64) -> i64 {
    if amount.is_nan() || amount < 0.0 {
        0
    } else if amount > MAX_RESOURCE_AMOUNT as f64 {
        MAX_RESOURCE_AMOUNT
    } else {
        amount as i64
    }
}

/// `amount × factor` with the same truncation and clamping.
pub(crate) fn scale(amount: i64, factor: f64) -> i64 {
    amount_from_float(amount as f64 * factor)
}

/// Decimal-SI canonical form of `value × 10^exponent` (exponent a multiple of 3).
fn decimal_si(mut value: i64, mut exponent: i32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if value == 0 {
        return f.write_str("0");
    }
    while value % 1000 == 0 && exponent < 18 {
        value /= 1000;
        exponent += 3;
    }
    let suffix = match exponent {
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        _ => "E",
    };
    write!(f, "{value}{suffix}")
}

impl fmt::Display for CpuAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        decimal_si(self.0, -3, f)
    }
}

impl fmt::Display for MemoryAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Kubernetes prints binary quantities below 1Ki in decimal form.
        if self.0.abs() < 1024 {
            return decimal_si(self.0, 0, f);
        }
        let mut value = self.0;
        let mut power = 0;
        while value % 1024 == 0 && power < 6 {
            value /= 1024;
            power += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
        write!(f, "{value}{suffix}")
    }
}

impl Serialize for CpuAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Serialize for MemoryAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn non_negative<E: de::Error>(q: Quantity, what: &str) -> Result<i64, E> {
    if q.milli() < 0 {
        return Err(E::custom(format!(
            "{what} quantity {q} is negative; resource amounts must be ≥ 0"
        )));
    }
    Ok(q.milli())
}

impl<'de> Deserialize<'de> for CpuAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let q = Quantity::deserialize(deserializer)?;
        Ok(Self(non_negative(q, "cpu")?))
    }
}

impl<'de> Deserialize<'de> for MemoryAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let q = Quantity::deserialize(deserializer)?;
        let milli = non_negative(q, "memory")?;
        // Bytes are whole; a fractional byte rounds up like `Quantity.Value()`.
        Ok(Self(
            milli.div_euclid(1000) + i64::from(milli.rem_euclid(1000) != 0),
        ))
    }
}

/// A `corev1.ResourceList` restricted to the two resources the recommender knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryAmount>,
}

impl ResourceList {
    /// Both resources set.
    pub fn new(cpu: CpuAmount, memory: MemoryAmount) -> Self {
        Self {
            cpu: Some(cpu),
            memory: Some(memory),
        }
    }

    /// True when neither resource is set.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_prints_like_kubernetes() {
        for (milli, text, why) in [
            (0, "0", "zero has no suffix"),
            (250, "250m", "sub-core stays in millicores"),
            (1000, "1", "whole cores drop the suffix"),
            (1500, "1500m", "not a whole core"),
            (2_000_000, "2k", "thousands of cores use k"),
            (MAX_RESOURCE_AMOUNT, "100G", "the cap"),
        ] {
            assert_eq!(CpuAmount(milli).to_string(), text, "{why}");
        }
    }

    #[test]
    fn memory_prints_like_kubernetes() {
        for (bytes, text, why) in [
            (0, "0", "zero"),
            (1000, "1k", "below 1Ki prints in decimal SI"),
            (262_144_000, "250Mi", "the pod minimum"),
            (536_870_912, "512Mi", "a power of two"),
            (1_073_741_824, "1Gi", "one gibibyte"),
            (
                123_456_789,
                "123456789",
                "not a multiple of 1024 stays in bytes",
            ),
            (1536, "1536", "1.5Ki is no whole number of Ki, so bytes"),
        ] {
            assert_eq!(MemoryAmount(bytes).to_string(), text, "{why}");
        }
    }

    #[test]
    fn floats_truncate_and_clamp() {
        assert_eq!(CpuAmount::from_cores(0.0125).0, 12);
        assert_eq!(CpuAmount::from_cores(f64::INFINITY).0, MAX_RESOURCE_AMOUNT);
        assert_eq!(CpuAmount::from_cores(f64::NAN).0, 0);
        assert_eq!(MemoryAmount::from_bytes(-1.0).0, 0);
        assert_eq!(scale(100, 1.15), 114, "100 × 1.15 is 114.999… in binary");
    }
}
