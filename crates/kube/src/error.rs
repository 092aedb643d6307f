//! The crate's single error type.

/// Everything that can stop a reconcile, the Prometheus client or the controller's start-up.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A Kubernetes API call failed; the controller retries with backoff.
    #[error("Kubernetes API call `{action}` failed: {error}")]
    Api { action: String, error: kube::Error },
    /// The McpAutoscaler breaks a rule the schema cannot express; fix the named field.
    #[error("invalid McpAutoscaler spec at `spec.{field}`: {problem}")]
    InvalidSpec { field: String, problem: String },
    /// The scale target or its pods look wrong (no selector, unreadable requests, ...).
    #[error("scale target {target}: {problem}")]
    Target { target: String, problem: String },
    /// Prometheus could not be queried or answered something unusable.
    #[error("Prometheus {query:?}: {problem}")]
    Prometheus { query: String, problem: String },
    /// A flag or file given to the controller is unusable.
    #[error("configuration `{setting}`: {problem}")]
    Config { setting: String, problem: String },
    /// The engine rejected an observation built from the cluster (a bug or an out-of-bounds fleet).
    #[error("scaling engine: {0}")]
    Engine(#[from] mcpulse_scaler::ScalerError),
    /// This replica lost the Lease during the reconcile; it stops before writing.
    #[error("this replica is no longer the leader; the new leader takes over")]
    NotLeader,
    /// Serving the metrics listener failed.
    #[error("metrics listener: {0}")]
    Io(#[from] std::io::Error),
}

impl KubeError {
    pub(crate) fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Api {
            action: action.into(),
            error: source,
        }
    }

    pub(crate) fn spec(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidSpec {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn prometheus(query: &str, problem: impl Into<String>) -> Self {
        Self::Prometheus {
            query: query.chars().take(200).collect(),
            problem: problem.into(),
        }
    }

    /// A write conflict (HTTP 409): someone else changed the object; retry soon rather than back off long.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Api { error: kube::Error::Api(status), .. } if status.code == 409)
    }
}
