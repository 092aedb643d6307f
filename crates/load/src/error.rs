//! The one error type of the load generator: a bad plan, an unreadable trace, or a server that cannot be used.

use std::path::PathBuf;

use mcpulse_scaler::sim::SimError;

/// Why a load run could not start. Failures of individual calls are not errors: they are counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A setting of the plan is out of range; `field` names it as the command line spells it.
    #[error("invalid --{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// The trace file could not be read. The cause is in the message, not a `source`, so a `{:#}` error chain
    /// does not print it twice.
    #[error("cannot read --trace {}: {cause}", path.display())]
    TraceRead {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The trace file was read but is not a usable trace.
    #[error("--trace {}: {cause}", path.display())]
    Trace { path: PathBuf, cause: SimError },
    /// Not one of the sessions could be opened, so no call could be sent.
    #[error(
        "could not open any of {sessions} MCP sessions to {url}: {cause}; check that the server is up and \
         that the URL includes the MCP path (e.g. http://127.0.0.1:8080/mcp)"
    )]
    NoSession {
        url: String,
        sessions: usize,
        cause: String,
    },
    /// The server does not list the tool the plan calls.
    #[error("{url} has no tool `{tool}`; it lists: {}; pick one with --tool", available.join(", "))]
    UnknownTool {
        url: String,
        tool: String,
        available: Vec<String>,
    },
}

impl LoadError {
    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            problem: problem.into(),
        }
    }
}
