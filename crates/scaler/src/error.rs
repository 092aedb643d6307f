//! The crate's single error type.

/// Everything that can go wrong when building or driving a [`crate::Scaler`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ScalerError {
    /// The autoscaler spec breaks an autoscaling/v2 validation rule.
    #[error("invalid autoscaler spec at `{field}`: {problem}")]
    InvalidSpec { field: String, problem: String },
    /// A quantity string or number could not be turned into a milli-value.
    #[error("invalid quantity {input:?}: {problem}")]
    InvalidQuantity { input: String, problem: String },
    /// The observation handed to `decide` does not fit the spec or is out of bounds.
    #[error("invalid observation at `{field}`: {problem}")]
    InvalidObservation { field: String, problem: String },
    /// Some or all metrics could not be turned into a replica proposal (upstream wording).
    #[error("invalid metrics ({invalid} invalid out of {total}), first error is: {first}")]
    InvalidMetrics {
        invalid: usize,
        total: usize,
        first: String,
    },
}

impl ScalerError {
    pub(crate) fn spec(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidSpec {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn observation(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidObservation {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
