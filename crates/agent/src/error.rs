//! The crate's single error type.

use std::net::SocketAddr;

/// Everything that can stop the agent from starting or make it fail while running.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A configuration value was out of range or malformed.
    #[error("invalid agent configuration: {field} {problem}")]
    Config {
        /// The flag or field at fault, e.g. `--workers`.
        field: &'static str,
        /// What was wrong and how to fix it.
        problem: String,
    },
    /// A listener could not be bound.
    #[error(
        "cannot listen on {addr} for {what}: {source}; pick a free address with --listen / --metrics-listen"
    )]
    Bind {
        /// Which listener: MCP or metrics.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A server stopped with an I/O error.
    #[error("the {what} server failed: {source}")]
    Serve {
        /// Which server: MCP or metrics.
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The metrics registry could not be set up.
    #[error("metrics setup failed: {0}")]
    Telemetry(#[from] mcpulse_telemetry::TelemetryError),
    /// A call to the registry failed; the agent keeps serving and retries.
    #[error("registry {action} failed: {problem}")]
    Registry {
        /// register, heartbeat or deregister.
        action: &'static str,
        /// What the registry or the network said.
        problem: String,
    },
}

impl AgentError {
    pub(crate) fn config(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Config {
            field,
            problem: problem.into(),
        }
    }
}
