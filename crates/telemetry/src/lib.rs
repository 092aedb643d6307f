//! Metric families for MCP traffic, a cardinality guard for client-supplied label values, and a process collector.
