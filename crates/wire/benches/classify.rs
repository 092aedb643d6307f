//! Hot-path costs for the meter proxy: classifying typical and large MCP bodies (the scanner beside the serde classifier it replaced), and SSE framing throughput.

#[path = "../tests/oracle/mod.rs"]
mod oracle;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcpulse_wire::{SseParser, classify};
use serde_json::json;

fn tools_call_request() -> Vec<u8> {
    json!({
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "search_issues",
            "arguments": {"query": "label:bug state:open", "limit": 20, "repo": "mcpulse/mcpulse"},
            "_meta": {"progressToken": "tok-42"}
        }
    })
    .to_string()
    .into_bytes()
}

/// A small tool result, the typical answer to the request above.
fn tools_call_result() -> Vec<u8> {
    json!({
        "jsonrpc": "2.0",
        "id": 42,
        "result": {"content": [{"type": "text", "text": "3 open issues: #3, #7, #9"}], "isError": false}
    })
    .to_string()
    .into_bytes()
}

/// A 64 KiB tool result: the text has quotes and newlines so the parser has escapes to skip.
fn large_tools_result() -> Vec<u8> {
    let line = "row 12345: {\"status\": \"ok\", \"value\": 3.25}\n";
    let text = line.repeat(64 * 1024 / line.len());
    json!({
        "jsonrpc": "2.0",
        "id": 42,
        "result": {"content": [{"type": "text", "text": text}], "isError": false}
    })
    .to_string()
    .into_bytes()
}

/// 1 KiB events as a Streamable HTTP server would send them, read in 16 KiB chunks.
fn sse_stream() -> Vec<u8> {
    let mut stream = Vec::new();
    for i in 0..1024 {
        let head = format!("id: {i}\nevent: message\ndata: ");
        let body = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"n\":{i},\"pad\":\""
        );
        stream.extend_from_slice(head.as_bytes());
        stream.extend_from_slice(body.as_bytes());
        let pad = 1024 - head.len() - body.len() - 5;
        stream.extend(std::iter::repeat_n(b'x', pad));
        stream.extend_from_slice(b"\"}}\n\n");
    }
    stream
}

fn benches(c: &mut Criterion) {
    let bodies = [
        ("tools_call_request", tools_call_request()),
        ("tools_call_result", tools_call_result()),
        ("tools_call_result_64KiB", large_tools_result()),
    ];
    let mut group = c.benchmark_group("classify");
    for (name, body) in &bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("{name}/scanner"), |b| {
            b.iter(|| classify(black_box(body)))
        });
        group.bench_function(format!("{name}/serde_before"), |b| {
            b.iter(|| oracle::classify(black_box(body)))
        });
    }
    group.finish();

    let stream = sse_stream();
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("1KiB_events", |b| {
        let mut events = Vec::with_capacity(1024);
        b.iter(|| {
            let mut parser = SseParser::new(1 << 20);
            events.clear();
            for chunk in black_box(&stream).chunks(16 * 1024) {
                parser.feed(chunk, &mut events);
            }
            parser.finish();
            assert_eq!(events.len(), 1024);
        });
    });
    group.finish();
}

criterion_group!(wire, benches);
criterion_main!(wire);
