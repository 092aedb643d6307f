//! The simulator's error type: what was wrong with a trace or a setting, where, and how to fix it.

use crate::error::ScalerError;

/// Everything that can stop a simulation before it produces a report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The trace text could not be used; `line` is 1-based (0 when the problem is the whole file).
    #[error("trace line {line}: {problem}")]
    Trace { line: usize, problem: String },
    /// A simulator or generator setting is out of range.
    #[error("invalid simulator setting `{field}`: {problem}")]
    Config { field: String, problem: String },
    /// The HPA engine refused a spec or an observation the simulator built (a simulator bug or a bad setting).
    #[error("scaling engine: {0}")]
    Engine(#[from] ScalerError),
    /// The SVG plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}

impl SimError {
    pub(crate) fn trace(line: usize, problem: impl Into<String>) -> Self {
        Self::Trace {
            line,
            problem: problem.into(),
        }
    }

    pub(crate) fn config(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
