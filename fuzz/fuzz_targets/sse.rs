//! Fuzz the SSE parser: the first byte picks the event limit and a chunk size; chunked and whole parses must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpulse_wire::SseParser;

fuzz_target!(|input: &[u8]| {
    let Some((&knob, stream)) = input.split_first() else {
        return;
    };
    let max = usize::from(knob & 0x3f);
    let chunk = usize::from(knob >> 6) * 7 + 1;

    let mut whole = Vec::new();
    let mut parser = SseParser::new(max);
    parser.feed(stream, &mut whole);
    parser.finish();

    let mut pieces = Vec::new();
    let mut parser = SseParser::new(max);
    for part in stream.chunks(chunk) {
        parser.feed(part, &mut pieces);
        assert!(parser.buffered_bytes() <= parser.buffer_bound());
    }
    parser.finish();
    assert_eq!(whole, pieces);
});
