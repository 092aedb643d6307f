//! Pure model of MCP traffic: JSON-RPC 2.0 message classification and incremental SSE framing, with no IO.
//!
//! The meter proxy forwards bytes unchanged and only observes them through this crate, so everything
//! here is allocation-light, bounded in memory whatever a peer sends, and never panics on input.
#![forbid(unsafe_code)]

mod error;
mod jsonrpc;
mod scan;
mod sse;
mod text;

pub use error::{Violation, WireError};
pub use jsonrpc::{
    ClientInfo, MAX_BATCH, Message, MessageKind, RequestId, classify, error_response, error_type,
};
pub use sse::{SseEvent, SseParser};
pub use text::MAX_TEXT_BYTES;
