//! Cardinality guard: bounds the distinct label values that clients can create in one metric family.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;

use crate::TelemetryError;

/// The value that replaces a label value once its label has seen its limit of distinct values.
pub const OVERFLOW_VALUE: &str = "_other";

/// Bounds applied to every client-supplied label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardinalityLimits {
    max_values_per_label: usize,
    max_value_bytes: usize,
}

impl CardinalityLimits {
    /// Default number of distinct values a label keeps before it reports `_other`.
    pub const DEFAULT_MAX_VALUES_PER_LABEL: usize = 100;
    /// Default cap on the length of one label value, in bytes.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 128;

    // Past these bounds a single label can blow up a Prometheus server's memory; below them the
    // metric says nothing useful.
    const VALUES_RANGE: (usize, usize) = (1, 10_000);
    const BYTES_RANGE: (usize, usize) = (8, 1024);

    /// Limits with validation: `max_values_per_label` in 1..=10000, `max_value_bytes` in 8..=1024.
    pub fn new(
        max_values_per_label: usize,
        max_value_bytes: usize,
    ) -> Result<Self, TelemetryError> {
        check(
            "max_values_per_label",
            max_values_per_label,
            Self::VALUES_RANGE,
        )?;
        check("max_value_bytes", max_value_bytes, Self::BYTES_RANGE)?;
        Ok(Self {
            max_values_per_label,
            max_value_bytes,
        })
    }

    /// Distinct values one label of one family keeps before it reports `_other`.
    pub fn max_values_per_label(&self) -> usize {
        self.max_values_per_label
    }

    /// Longest label value kept, in bytes; longer values are cut at a character boundary.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }
}

impl Default for CardinalityLimits {
    fn default() -> Self {
        Self {
            max_values_per_label: Self::DEFAULT_MAX_VALUES_PER_LABEL,
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

fn check(
    field: &'static str,
    value: usize,
    (min, max): (usize, usize),
) -> Result<(), TelemetryError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(TelemetryError::InvalidLimit {
            field,
            value,
            min,
            max,
        })
    }
}

/// Admits client-supplied values for one label of one family.
///
/// Read-mostly: a value already seen costs one uncontended read lock and one hash lookup, and
/// hands back a shared `Arc<str>` so the caller builds its label set without allocating.
#[derive(Debug)]
pub(crate) struct LabelGuard {
    seen: RwLock<HashSet<Arc<str>>>,
    limits: CardinalityLimits,
    other: Arc<str>,
    // Pre-resolved `mcpulse_label_overflow_total{metric,label}` series.
    overflow: Counter,
}

impl LabelGuard {
    pub(crate) fn new(limits: CardinalityLimits, overflow: Counter) -> Self {
        Self {
            seen: RwLock::new(HashSet::new()),
            limits,
            other: Arc::from(OVERFLOW_VALUE),
            overflow,
        }
    }

    /// The value to record for `raw`: itself (cleaned) while the label has room, else `_other`.
    pub(crate) fn admit(&self, raw: &str) -> Arc<str> {
        self.admit_exact(raw).0
    }

    /// [`Self::admit`], and whether the value recorded is `raw` itself (not cleaned, not replaced
    /// by `_other`): only then may a caller remember the outcome for `raw`.
    pub(crate) fn admit_exact(&self, raw: &str) -> (Arc<str>, bool) {
        let value = clean(raw, self.limits.max_value_bytes);
        let exact = value.len() == raw.len() && matches!(value, Cow::Borrowed(_));
        if let Some(known) = self.seen.read().get(value.as_ref()) {
            return (Arc::clone(known), exact);
        }
        let mut seen = self.seen.write();
        // Another thread may have admitted it between the two locks.
        if let Some(known) = seen.get(value.as_ref()) {
            return (Arc::clone(known), exact);
        }
        if seen.len() >= self.limits.max_values_per_label {
            self.overflow.inc();
            return (Arc::clone(&self.other), false);
        }
        let admitted: Arc<str> = Arc::from(value.as_ref());
        seen.insert(Arc::clone(&admitted));
        (admitted, exact)
    }
}

/// Cuts `raw` to at most `max_bytes` (on a character boundary) and replaces control characters
/// with U+FFFD, so a hostile value can neither bloat a series nor smuggle line breaks or terminal
/// escapes into dashboards and logs. Borrows when nothing needs changing, which is the common case.
pub(crate) fn clean(raw: &str, max_bytes: usize) -> Cow<'_, str> {
    let cut = if raw.len() > max_bytes {
        &raw[..raw.floor_char_boundary(max_bytes)]
    } else {
        raw
    };
    if cut.chars().any(char::is_control) {
        Cow::Owned(
            cut.chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_reject_out_of_range_values() {
        let cases = [
            (
                0,
                128,
                false,
                "no values at all would make the label useless",
            ),
            (1, 128, true, "one value is the smallest useful limit"),
            (10_000, 1024, true, "upper bounds are inclusive"),
            (
                10_001,
                128,
                false,
                "more distinct values than a Prometheus server should hold per label",
            ),
            (100, 7, false, "too short to hold a method name"),
            (100, 1025, false, "longer than any sane label value"),
        ];
        for (values, bytes, ok, why) in cases {
            assert_eq!(CardinalityLimits::new(values, bytes).is_ok(), ok, "{why}");
        }
        let err = CardinalityLimits::new(0, 128).unwrap_err().to_string();
        assert!(
            err.contains("max_values_per_label") && err.contains("1 to 10000"),
            "{err}"
        );
    }

    #[test]
    fn clean_cuts_and_replaces() {
        let cases = [
            (
                "tools/call",
                128,
                "tools/call",
                "short ASCII passes unchanged",
            ),
            ("abcdefghij", 8, "abcdefgh", "cut at the byte limit"),
            (
                "aaaaaaaé",
                8,
                "aaaaaaa",
                "a two-byte char straddling the limit is dropped whole",
            ),
            (
                "a\nb\"c\\",
                128,
                "a\u{FFFD}b\"c\\",
                "newline replaced; quote and backslash kept for the encoder to escape",
            ),
            (
                "\u{1b}[31m",
                128,
                "\u{FFFD}[31m",
                "terminal escape neutralised",
            ),
        ];
        for (raw, max, want, why) in cases {
            assert_eq!(clean(raw, max), want, "{why}");
        }
        assert!(
            matches!(clean("plain", 128), Cow::Borrowed(_)),
            "common case must not allocate"
        );
    }

    #[test]
    fn guard_overflows_after_limit_and_counts() {
        let overflow = Counter::default();
        let guard = LabelGuard::new(CardinalityLimits::new(2, 128).unwrap(), overflow.clone());
        assert_eq!(&*guard.admit("a"), "a");
        assert_eq!(&*guard.admit("b"), "b");
        assert_eq!(&*guard.admit("c"), OVERFLOW_VALUE);
        assert_eq!(
            &*guard.admit("a"),
            "a",
            "known values keep passing after the limit"
        );
        assert_eq!(&*guard.admit("d"), OVERFLOW_VALUE);
        assert_eq!(overflow.get(), 2, "each replaced value is counted");
    }

    #[test]
    fn exact_only_when_the_value_is_kept_as_is() {
        let guard = LabelGuard::new(CardinalityLimits::new(2, 8).unwrap(), Counter::default());
        let table = [
            ("a", true, "admitted unchanged"),
            ("a", true, "known unchanged"),
            ("abcdefghij", false, "cut to 8 bytes"),
            ("x\ny", false, "limit reached: replaced by _other"),
            ("a\n", false, "cleaned (and over the limit)"),
        ];
        for (raw, want, why) in table {
            assert_eq!(guard.admit_exact(raw).1, want, "{why}");
        }
        let cleaned = LabelGuard::new(CardinalityLimits::default(), Counter::default());
        assert!(!cleaned.admit_exact("a\tb").1, "control character replaced");
    }

    #[test]
    fn guard_is_thread_safe_and_bounded() {
        let overflow = Counter::default();
        let guard = Arc::new(LabelGuard::new(
            CardinalityLimits::new(10, 128).unwrap(),
            overflow.clone(),
        ));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let guard = Arc::clone(&guard);
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|i| {
                            &*guard.admit(&format!("v{}", (i * 7 + t) % 25)) == OVERFLOW_VALUE
                        })
                        .count()
                })
            })
            .collect();
        let replaced: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(
            guard.seen.read().len(),
            10,
            "exactly the limit is admitted under contention"
        );
        assert!(
            replaced > 0,
            "25 distinct values through a limit of 10 must overflow"
        );
        assert_eq!(
            overflow.get(),
            replaced as u64,
            "the counter matches the values replaced"
        );
    }
}
