//! Wall-clock instants as integer milliseconds, so replays compare exactly and never meet a NaN.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ScalerError;

/// Milliseconds since the Unix epoch. Integer so that window cut-offs compare exactly, as Go's
/// `time.Time` does, and so that a replay of the same inputs gives the same decision bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// An instant `secs` whole seconds after the epoch (test and simulator convenience).
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Converts fractional seconds, rejecting NaN and infinities so no window ever compares against them.
    pub fn from_secs_f64(secs: f64) -> Result<Self, ScalerError> {
        if !secs.is_finite() || secs.abs() > (i64::MAX / 1000) as f64 {
            return Err(ScalerError::observation(
                "now",
                format!(
                    "timestamp {secs} s is not a finite time; pass seconds since the Unix epoch"
                ),
            ));
        }
        Ok(Self((secs * 1000.0).round() as i64))
    }

    /// Converts a system time; instants before the epoch map to negative milliseconds.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => Self(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating instead of overflowing on absurd inputs.
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// `self - d`, saturating instead of overflowing on absurd inputs.
    pub fn minus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    pub(crate) fn minus_secs(self, secs: i32) -> Self {
        Self(self.0.saturating_sub(i64::from(secs).saturating_mul(1000)))
    }
}
