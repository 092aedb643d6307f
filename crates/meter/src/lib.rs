//! The metering proxy: a transparent reverse proxy for MCP streamable HTTP and stdio that records MCP metrics.
