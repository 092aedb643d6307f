//! The crate's single error type.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A cardinality limit was outside the range this crate accepts.
    #[error(
        "cardinality limit `{field}` = {value} is out of range: use a value from {min} to {max}"
    )]
    InvalidLimit {
        /// Which limit was wrong.
        field: &'static str,
        /// The value given.
        value: usize,
        /// Smallest accepted value.
        min: usize,
        /// Largest accepted value.
        max: usize,
    },
    /// A metric or collector failed while writing the exposition.
    #[error(
        "encoding the metrics registry failed: a metric or collector returned a formatting error"
    )]
    Encode(#[from] std::fmt::Error),
    /// Exposition text did not parse.
    #[error("exposition text line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What was wrong with it.
        reason: String,
    },
}
