//! Property tests of the public API: no panics on any input, chunking-invariant SSE, bounded memory, round trips.

use mcpulse_wire::{MessageKind, RequestId, SseEvent, SseParser, classify};
use proptest::prelude::*;
use serde_json::json;

/// JSON-ish fragments, so random bodies reach past the first syntax check into the visitors.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just(":"),
        Just(","),
        Just("\"jsonrpc\""),
        Just("\"2.0\""),
        Just("\"id\""),
        Just("\"method\""),
        Just("\"params\""),
        Just("\"result\""),
        Just("\"error\""),
        Just("\"code\""),
        Just("\"name\""),
        Just("\"clientInfo\""),
        Just("\"isError\""),
        Just("\"protocolVersion\""),
        Just("\"tools/call\""),
        Just("\"initialize\""),
        Just("1"),
        Just("-1.5e3"),
        Just("null"),
        Just("true"),
        Just("\"\\u00e9\""),
        Just(" "),
    ];
    prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat().into_bytes())
}

/// SSE-ish fragments: field names, separators, every line ending, BOMs and stray bytes.
fn sseish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"data".to_vec()),
        Just(b"event".to_vec()),
        Just(b"id".to_vec()),
        Just(b"retry".to_vec()),
        Just(b"dat".to_vec()),
        Just(b":".to_vec()),
        Just(b": ".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xEF".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"123".to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
        "[a-z0-9 ]{0,40}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(token, 0..80).prop_map(|tokens| tokens.concat())
}

/// Feed `stream` cut at `cuts` (positions taken modulo its length), checking the memory bound after each chunk.
fn parse_in_chunks(max: usize, stream: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    let mut parser = SseParser::new(max);
    let mut out = Vec::new();
    let mut from = 0;
    for to in points.into_iter().chain([stream.len()]) {
        parser.feed(&stream[from..to], &mut out);
        assert!(
            parser.buffered_bytes() <= parser.buffer_bound(),
            "buffered {} > bound {}",
            parser.buffered_bytes(),
            parser.buffer_bound()
        );
        from = to;
    }
    parser.finish();
    out
}

fn id_strategy() -> impl Strategy<Value = RequestId> {
    prop_oneof![
        any::<i64>().prop_map(RequestId::Number),
        ".{0,40}".prop_map(RequestId::String)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn classify_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = classify(&body);
    }

    #[test]
    fn classify_never_panics_on_jsonish(body in jsonish()) {
        if let Ok(messages) = classify(&body) {
            prop_assert!(!messages.is_empty());
        }
    }

    #[test]
    fn sse_never_panics(stream in prop::collection::vec(any::<u8>(), 0..512), cuts in prop::collection::vec(any::<usize>(), 0..8), max in 0usize..64) {
        let _ = parse_in_chunks(max, &stream, &cuts);
    }

    #[test]
    fn sse_is_chunking_invariant(stream in sseish(), cuts in prop::collection::vec(any::<usize>(), 0..12), max in 0usize..48) {
        let whole = parse_in_chunks(max, &stream, &[]);
        prop_assert_eq!(parse_in_chunks(max, &stream, &cuts), whole);
    }

    #[test]
    fn sse_byte_at_a_time_matches_whole(stream in sseish(), max in 0usize..48) {
        let every: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(parse_in_chunks(max, &stream, &every), parse_in_chunks(max, &stream, &[]));
    }

    #[test]
    fn sse_limit_only_cuts_oversized_events(stream in sseish(), max in 0usize..48) {
        let unbounded = parse_in_chunks(usize::MAX, &stream, &[]);
        let bounded = parse_in_chunks(max, &stream, &[]);
        prop_assert_eq!(bounded.len(), unbounded.len(), "the limit never drops or merges events");
        for (cut, full) in bounded.iter().zip(&unbounded) {
            // Lossy decoding may turn each kept byte into a 3-byte U+FFFD, hence 3 * max.
            prop_assert!(cut.data.len() <= 3 * max, "{} bytes of data for max {}", cut.data.len(), max);
            prop_assert_eq!((&cut.id, &cut.event, cut.retry), (&full.id, &full.event, full.retry));
            if cut.oversized {
                prop_assert!(full.data.len() > max || full.oversized, "flagged oversized but the data fits");
            } else {
                prop_assert_eq!(&cut.data, &full.data);
            }
        }
    }

    #[test]
    fn classify_round_trips(
        kind in 0u8..4,
        id in id_strategy(),
        method in "[a-z/_]{1,30}",
        code in any::<i64>(),
        batch in 1usize..4,
    ) {
        let id_json = match &id {
            RequestId::Number(n) => json!(n),
            RequestId::String(s) => json!(s),
        };
        let value = match kind {
            0 => json!({"jsonrpc": "2.0", "id": id_json, "method": method, "params": {"x": [1, 2]}}),
            1 => json!({"jsonrpc": "2.0", "method": method}),
            2 => json!({"result": {"content": [{"type": "text", "text": "hi"}]}, "id": id_json, "jsonrpc": "2.0"}),
            _ => json!({"jsonrpc": "2.0", "id": id_json, "error": {"code": code, "message": "m"}}),
        };
        let body = if batch == 1 { value.to_string() } else { json!(vec![value; batch]).to_string() };
        let messages = classify(body.as_bytes()).map_err(|e| TestCaseError::fail(format!("{body}: {e}")))?;
        prop_assert_eq!(messages.len(), batch);
        let want_kind = [MessageKind::Request, MessageKind::Notification, MessageKind::Response, MessageKind::Error][usize::from(kind)];
        let want_id = (kind != 1).then(|| id.clone());
        let want_method = (kind < 2).then(|| method.clone());
        for m in messages {
            prop_assert_eq!(m.kind, want_kind);
            prop_assert_eq!(&m.id, &want_id);
            prop_assert_eq!(&m.method, &want_method);
            prop_assert_eq!(m.error_code, (kind == 3).then_some(code));
        }
    }
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    for open in ["[", "{\"a\":"] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"x","params":{}}}"#,
            open.repeat(100_000)
        );
        assert!(
            classify(body.as_bytes()).is_err(),
            "unterminated nesting is a parse error"
        );
        let closed = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // serde_json refuses nesting past its recursion limit instead of overflowing; either way no crash.
        let _ = classify(closed.as_bytes());
    }
}
