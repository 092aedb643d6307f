//! Pure model of MCP traffic: JSON-RPC 2.0 message classification and incremental SSE framing, with no IO.
