//! Incremental `text/event-stream` parser (WHATWG EventSource interpretation) with a hard memory bound.
//!
//! Bytes are fed as they arrive, split anywhere. `data` values are streamed straight into the event's
//! data buffer, and every other field value is capped at [`MAX_TEXT_BYTES`], so no line is ever buffered
//! whole: comments and unknown fields (often long keep-alives) cost nothing, and an event whose data is
//! larger than the limit is cut and flagged instead of growing the buffer.

use std::mem;

use memchr::{memchr, memchr2};

use crate::text::MAX_TEXT_BYTES;

/// The UTF-8 byte order mark, which the spec's decoder strips once at the start of a stream.
const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// Longest field name the spec defines (`event`, `retry`); a longer name is an unknown field.
const NAME_CAP: usize = 5;

/// A data buffer whose capacity grew beyond this is released after its event, so one large event
/// does not pin memory for the rest of a long-lived stream.
const RETAIN_CAPACITY: usize = 64 * 1024;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field; `None` means the default type, `message`.
    pub event: Option<String>,
    /// The last event id in force when this event was dispatched (per the spec it carries over to
    /// later events until an `id` field changes it); `None` when it is empty.
    pub id: Option<String>,
    /// The `data` lines joined with `\n`, cut at `max_event_bytes` when `oversized`.
    pub data: String,
    /// A valid `retry` field seen since the previous dispatched event.
    pub retry: Option<u64>,
    /// Something in this event exceeded its bound and was dropped: data beyond `max_event_bytes`, or
    /// an `event`/`id` value beyond [`MAX_TEXT_BYTES`] (kept truncated).
    pub oversized: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    Id,
    Retry,
}

/// Where the parser is inside the current line.
#[derive(Clone, Copy, Debug)]
enum Line {
    /// Nothing of the line seen yet.
    Start,
    /// Reading the field name into `name`.
    Name,
    /// Just after the colon: one space here is not part of the value.
    AfterColon(Field),
    Value(Field),
    /// A comment or an unknown field: skip to the end of the line.
    Ignore,
}

/// Progress in stripping a leading BOM that may arrive split over chunks.
#[derive(Clone, Copy, Debug)]
enum Bom {
    /// This many leading bytes of the stream matched the BOM so far.
    Pending(usize),
    Done,
}

/// Incremental SSE parser; one per stream.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    bom: Bom,
    /// The previous chunk ended in CR: an LF starting this one belongs to that line ending.
    after_cr: bool,
    line: Line,
    name: [u8; NAME_CAP],
    name_len: usize,
    /// The value of the current `event`, `id` or `retry` line, capped at [`MAX_TEXT_BYTES`].
    value: Vec<u8>,
    /// Facts about the whole value, including any bytes dropped by the cap.
    value_truncated: bool,
    value_has_nul: bool,
    value_all_digits: bool,
    data: Vec<u8>,
    /// A `data` field was seen: distinguishes an empty data line (dispatched) from no data (not).
    has_data: bool,
    event_type: Vec<u8>,
    last_event_id: Vec<u8>,
    retry: Option<u64>,
    oversized: bool,
}

impl SseParser {
    /// Extra bytes the parser may hold beyond `max_event_bytes`: the event type, the last event id,
    /// the value being read and a field name.
    pub const BUFFER_OVERHEAD: usize = 3 * MAX_TEXT_BYTES + NAME_CAP;

    /// A parser keeping at most `max_event_bytes` of data per event.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            bom: Bom::Pending(0),
            after_cr: false,
            line: Line::Start,
            name: [0; NAME_CAP],
            name_len: 0,
            value: Vec::new(),
            value_truncated: false,
            value_has_nul: false,
            value_all_digits: true,
            data: Vec::new(),
            has_data: false,
            event_type: Vec::new(),
            last_event_id: Vec::new(),
            retry: None,
            oversized: false,
        }
    }

    /// Feed a chunk as it arrives; complete events are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        let mut chunk = chunk;
        if let Bom::Pending(mut matched) = self.bom {
            let mut taken = 0;
            while let (Some(&want), Some(&got)) = (BOM.get(matched), chunk.get(taken)) {
                if want != got {
                    break;
                }
                matched += 1;
                taken += 1;
            }
            if matched == BOM.len() {
                self.bom = Bom::Done;
                chunk = &chunk[taken..];
            } else if taken == chunk.len() {
                // Still a BOM prefix: wait for more bytes before deciding.
                self.bom = Bom::Pending(matched);
                return;
            } else {
                // Not a BOM after all: the bytes held back so far are ordinary stream content.
                self.bom = Bom::Done;
                self.lines(&BOM[..matched], out);
                chunk = &chunk[taken..];
            }
        }
        self.lines(chunk, out);
    }

    /// End of stream: per the spec an unterminated event is discarded; return nothing for it.
    ///
    /// The parser is then ready for a new stream (a reconnection); like EventSource it keeps the last
    /// event id across it.
    pub fn finish(&mut self) {
        self.bom = Bom::Pending(0);
        self.after_cr = false;
        self.line = Line::Start;
        self.name_len = 0;
        self.value.clear();
        self.retry = None;
        self.reset_event();
    }

    /// Bytes currently held; never more than [`SseParser::buffer_bound`].
    pub fn buffered_bytes(&self) -> usize {
        self.data.len()
            + self.value.len()
            + self.event_type.len()
            + self.last_event_id.len()
            + self.name_len
    }

    /// The most this parser ever holds: `max_event_bytes` plus [`SseParser::BUFFER_OVERHEAD`].
    pub fn buffer_bound(&self) -> usize {
        self.max_event_bytes.saturating_add(Self::BUFFER_OVERHEAD)
    }

    /// Split `bytes` into lines on CR, LF or CRLF.
    fn lines(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) {
        while !bytes.is_empty() {
            if mem::take(&mut self.after_cr) && bytes.first() == Some(&b'\n') {
                bytes = &bytes[1..];
                continue;
            }
            match memchr2(b'\n', b'\r', bytes) {
                Some(end) => {
                    self.consume(&bytes[..end]);
                    self.end_line(out);
                    self.after_cr = bytes.get(end) == Some(&b'\r');
                    bytes = bytes.get(end + 1..).unwrap_or_default();
                }
                None => {
                    self.consume(bytes);
                    return;
                }
            }
        }
    }

    /// Take in part of a line (no line terminator in `bytes`).
    fn consume(&mut self, mut bytes: &[u8]) {
        while let Some(&first) = bytes.first() {
            match self.line {
                Line::Start if first == b':' => {
                    self.line = Line::Ignore;
                    return;
                }
                Line::Start => self.line = Line::Name,
                Line::Name => {
                    let colon = memchr(b':', bytes);
                    let part = &bytes[..colon.unwrap_or(bytes.len())];
                    let len = self.name_len + part.len();
                    let Some(slot) = self.name.get_mut(self.name_len..len) else {
                        self.line = Line::Ignore;
                        return;
                    };
                    slot.copy_from_slice(part);
                    self.name_len = len;
                    let Some(colon) = colon else { return };
                    self.line = match self.field() {
                        Some(field) => {
                            self.begin_value(field);
                            Line::AfterColon(field)
                        }
                        None => Line::Ignore,
                    };
                    bytes = &bytes[colon + 1..];
                }
                Line::AfterColon(field) => {
                    if first == b' ' {
                        bytes = &bytes[1..];
                    }
                    self.line = Line::Value(field);
                }
                Line::Value(Field::Data) => {
                    self.push_data(bytes);
                    return;
                }
                Line::Value(_) => {
                    self.push_value(bytes);
                    return;
                }
                Line::Ignore => return,
            }
        }
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        match self.line {
            Line::Start => self.dispatch(out),
            // A field name alone on its line is that field with an empty value.
            Line::Name => {
                if let Some(field) = self.field() {
                    self.begin_value(field);
                    self.commit(field);
                }
            }
            Line::AfterColon(field) | Line::Value(field) => self.commit(field),
            Line::Ignore => {}
        }
        self.line = Line::Start;
        self.name_len = 0;
    }

    fn field(&self) -> Option<Field> {
        match &self.name[..self.name_len] {
            b"data" => Some(Field::Data),
            b"event" => Some(Field::Event),
            b"id" => Some(Field::Id),
            b"retry" => Some(Field::Retry),
            _ => None,
        }
    }

    fn begin_value(&mut self, field: Field) {
        if field == Field::Data {
            // Data lines are joined with LF; writing it before each line but the first is the spec's
            // "append LF to every line, strip the final one" without ever holding the extra byte.
            if self.has_data {
                self.push_data(b"\n");
            }
            self.has_data = true;
        } else {
            self.value.clear();
            self.value_truncated = false;
            self.value_has_nul = false;
            self.value_all_digits = true;
        }
    }

    fn push_data(&mut self, bytes: &[u8]) {
        let room = self.max_event_bytes.saturating_sub(self.data.len());
        let keep = bytes.len().min(room);
        self.oversized |= keep < bytes.len();
        self.data.extend_from_slice(&bytes[..keep]);
    }

    fn push_value(&mut self, bytes: &[u8]) {
        self.value_has_nul |= memchr(0, bytes).is_some();
        self.value_all_digits &= bytes.iter().all(u8::is_ascii_digit);
        let keep = bytes
            .len()
            .min(MAX_TEXT_BYTES.saturating_sub(self.value.len()));
        self.value_truncated |= keep < bytes.len();
        self.value.extend_from_slice(&bytes[..keep]);
    }

    /// Apply a complete `event`, `id` or `retry` line (data was applied as it streamed in).
    fn commit(&mut self, field: Field) {
        match field {
            Field::Data => {}
            Field::Event => {
                self.event_type.clear();
                self.event_type.extend_from_slice(&self.value);
                self.oversized |= self.value_truncated;
            }
            // The spec ignores an id containing NUL (it could not be sent back in Last-Event-ID).
            Field::Id if !self.value_has_nul => {
                self.last_event_id.clear();
                self.last_event_id.extend_from_slice(&self.value);
                self.oversized |= self.value_truncated;
            }
            Field::Id => {}
            Field::Retry => {
                if !self.value.is_empty() && self.value_all_digits && !self.value_truncated {
                    // Digits only, so this is ASCII; a value too large for u64 is ignored like any invalid one.
                    if let Some(ms) = std::str::from_utf8(&self.value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                    {
                        self.retry = Some(ms);
                    }
                }
            }
        }
        self.value.clear();
    }

    /// Blank line: emit the pending event if it has data, then start a new one.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            out.push(SseEvent {
                event: (!self.event_type.is_empty()).then(|| text(&self.event_type)),
                id: (!self.last_event_id.is_empty()).then(|| text(&self.last_event_id)),
                data: text(&self.data),
                retry: self.retry.take(),
                oversized: self.oversized,
            });
        }
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.data.clear();
        if self.data.capacity() > RETAIN_CAPACITY {
            self.data = Vec::new();
        }
        self.has_data = false;
        self.event_type.clear();
        self.oversized = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(max: usize, stream: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::new(max);
        let mut out = Vec::new();
        parser.feed(stream, &mut out);
        parser.finish();
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn framing() {
        let table: &[(&[u8], &[&str], &str)] = &[
            (
                b"data: YHOO\ndata: +2\ndata: 10\n\n",
                &["YHOO\n+2\n10"],
                "multi-line data joined with LF",
            ),
            (
                b"data:test\n\ndata: test\n\n",
                &["test", "test"],
                "one optional space after the colon",
            ),
            (
                b"data:  two\n\n",
                &[" two"],
                "only the first space is dropped",
            ),
            (
                b"data\n\ndata\ndata\n\ndata:",
                &["", "\n"],
                "field without colon; unterminated last event dropped",
            ),
            (
                b"data: a\r\rdata: b\r\n\r\ndata: c\n\n",
                &["a", "b", "c"],
                "CR, CRLF and LF line endings",
            ),
            (b"data: a\n\r\n", &["a"], "LF then CRLF is one blank line"),
            (b"data: a\r\n\n", &["a"], "CRLF then LF is one blank line"),
            (
                b"\xEF\xBB\xBFdata: bom\n\n",
                &["bom"],
                "leading BOM stripped",
            ),
            (
                b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n",
                &["y"],
                "a second BOM is part of a field name",
            ),
            (
                b"\xEF\xBBdata: x\n\ndata: y\n\n",
                &["y"],
                "a partial BOM is content, not stripped",
            ),
            (
                b": comment\n\n:\ndata: x\n: mid-event comment\n\n",
                &["x"],
                "comments ignored",
            ),
            (b"event: only\n\nid: 3\n\n", &[], "no data, no dispatch"),
            (
                b"data: x\nunknown: y\ndataa: z\n\n",
                &["x"],
                "unknown fields ignored",
            ),
            (
                b"data: \xFF\xFEok\n\n",
                &["\u{FFFD}\u{FFFD}ok"],
                "invalid UTF-8 decoded lossily",
            ),
            (b"data: x", &[], "end of stream without blank line"),
            (
                b"data: a:b: c\n\n",
                &["a:b: c"],
                "only the first colon splits",
            ),
        ];
        for (stream, want, why) in table {
            assert_eq!(data(&parse(1024, stream)), *want, "{why}");
        }
    }

    #[test]
    fn fields() {
        // The spec's own example, plus event types and retry.
        let events = parse(
            1024,
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n\
              event: add\nretry: 1500\ndata: x\n\ndata: y\n\nretry: 12a\ndata: z\n\nretry\nretry: 99999999999999999999999\ndata: w\n\n",
        );
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.data.as_str(),
                    e.id.as_deref(),
                    e.event.as_deref(),
                    e.retry,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("first event", Some("1"), None, None),
                ("second event", None, None, None),
                (" third event", None, None, None),
                ("x", None, Some("add"), Some(1500)),
                ("y", None, None, None),
                ("z", None, None, None),
                ("w", None, None, None),
            ],
            "id resets on an empty id line; event type is per event; retry must be digits and fit u64"
        );
    }

    #[test]
    fn id_persists_and_nul_is_ignored() {
        let events = parse(
            1024,
            b"id: 5\ndata: a\n\ndata: b\n\nid: bad\0id\ndata: c\n\n",
        );
        let ids: Vec<_> = events.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(
            ids,
            [Some("5"), Some("5"), Some("5")],
            "last event id carries over; one with NUL is ignored"
        );
    }

    #[test]
    fn retry_without_data_waits_for_next_event() {
        let events = parse(1024, b"retry: 30\n\ndata: a\n\n");
        assert_eq!(events.first().and_then(|e| e.retry), Some(30));
    }

    #[test]
    fn oversized_event_is_cut_and_parsing_continues() {
        let events = parse(
            8,
            b"id: 7\nevent: big\ndata: 0123456789abc\ndata: more\n\ndata: ok\n\n",
        );
        assert_eq!(events.len(), 2);
        assert_eq!(
            (
                events[0].data.as_str(),
                events[0].id.as_deref(),
                events[0].event.as_deref(),
                events[0].oversized
            ),
            ("01234567", Some("7"), Some("big"), true)
        );
        assert_eq!(
            (
                events[1].data.as_str(),
                events[1].id.as_deref(),
                events[1].oversized
            ),
            ("ok", Some("7"), false)
        );

        let exact = parse(4, b"data: ab\ndata: c\n\n");
        assert_eq!(
            (exact[0].data.as_str(), exact[0].oversized),
            ("ab\nc", false),
            "exactly at the limit is not oversized"
        );

        let long_event = parse(
            64,
            format!("event: {}\ndata: x\n\n", "e".repeat(1000)).as_bytes(),
        );
        assert_eq!(
            long_event[0].event.as_ref().map(String::len),
            Some(MAX_TEXT_BYTES),
            "event type capped"
        );
        assert!(long_event[0].oversized);
    }

    #[test]
    fn split_line_endings_and_bom() {
        let mut parser = SseParser::new(64);
        let mut out = Vec::new();
        for chunk in [
            &b"\xEF"[..],
            b"\xBB",
            b"\xBF",
            b"data: a\r",
            b"\n",
            b"\r",
            b"\ndata: b\r",
            b"",
            b"\r",
        ] {
            parser.feed(chunk, &mut out);
        }
        assert_eq!(data(&out), ["a", "b"], "BOM and CRLF split across chunks");
    }

    #[test]
    fn long_comments_and_unknown_lines_are_not_buffered() {
        let mut parser = SseParser::new(16);
        let mut out = Vec::new();
        parser.feed(b":", &mut out);
        let filler = vec![b'k'; 1 << 16];
        parser.feed(&filler, &mut out);
        assert_eq!(parser.buffered_bytes(), 0, "a comment is skipped, not held");
        parser.feed(b"\nunknownfield", &mut out);
        parser.feed(&filler, &mut out);
        assert!(
            parser.buffered_bytes() <= NAME_CAP,
            "an unknown field holds at most a name prefix"
        );
        parser.feed(b"\ndata: x\n\n", &mut out);
        assert_eq!(data(&out), ["x"]);
    }

    #[test]
    fn finish_drops_pending_event_and_resets() {
        let mut parser = SseParser::new(64);
        let mut out = Vec::new();
        parser.feed(b"id: 1\n\ndata: lost\r", &mut out);
        parser.finish();
        assert_eq!(
            parser.buffered_bytes(),
            1,
            "only the last event id survives"
        );
        parser.feed(b"\xEF\xBB\xBFdata: new\n\n", &mut out);
        assert_eq!(
            data(&out),
            ["new"],
            "a new stream: the unterminated line is gone and a BOM is stripped again"
        );
        assert_eq!(out[0].id.as_deref(), Some("1"));
    }
}
