//! Metric families for MCP traffic, a cardinality guard for client-supplied label values, and a process collector.
//!
//! Everything is built on `prometheus-client`: register with [`McpMetrics::new`] and
//! [`ProcessCollector`], serve with [`negotiate`] and [`encode`].

mod cache;
mod error;
mod guard;

pub mod docs;
pub mod exposition;
pub mod mcp;
pub mod process;

pub use error::TelemetryError;
pub use exposition::{Exposition, Format, Scrape, encode, negotiate, register_build_info, scrape};
pub use guard::{CardinalityLimits, OVERFLOW_VALUE};
pub use mcp::{
    Direction, GaugeGuard, McpMetrics, MessageKind, RejectionReason, SessionGuard, SseStream,
    UpstreamErrorKind, UpstreamMetrics,
};
pub use process::ProcessCollector;
pub use prometheus_client::registry::Registry;
