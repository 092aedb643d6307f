//! A single-pass JSON scanner that reads a JSON-RPC envelope and skips every other value without allocating.
//!
//! It replaces serde visitors on the proxy's hot path and keeps their exact acceptance rules (the
//! differential tests in `tests/differential.rs` hold it to the previous serde-based classifier):
//!
//! * Values the classifier looks at (`jsonrpc`, `method`, `id`, the members of `params`, `result`
//!   and `error` it reads, and every object key on the way there) are decoded strictly: strings
//!   must be valid UTF-8 with paired surrogate escapes, numbers must fit an `f64`.
//! * Values it skips are only checked for JSON syntax, as serde_json's `IgnoredAny` does: a skipped
//!   string may hold invalid UTF-8 or a lone surrogate escape, a skipped number may be `1e999`.
//!   Tool results are forwarded unchanged, so validating their text would cost time for nothing.
//! * A repeated envelope member (`id`, `method`, ...) is refused as ambiguous; inside `params`,
//!   `result` and `error` the last copy of a member wins.
//! * The first problem met in reading order decides the outcome. A shape problem (not an object,
//!   repeated member) is reported as such only if the whole body is still JSON; otherwise the body
//!   is a parse error, as JSON-RPC 2.0 prescribes.

use crate::text::capped;

/// Why scanning stopped.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Not JSON at `at` (a byte offset).
    Syntax { at: usize, what: &'static str },
    /// JSON, but a message has the wrong shape; the caller still checks the rest of the body.
    Shape(Shape),
}

#[derive(Debug)]
pub(crate) enum Shape {
    /// A message that is not an object; names what it is instead.
    NotObject(&'static str),
    /// An envelope member seen twice.
    Duplicate(&'static str),
}

impl Shape {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::NotObject(found) => {
                format!("expected a JSON-RPC 2.0 message object, found {found}")
            }
            Self::Duplicate(name) => format!(
                r#"member "{name}" appears more than once; send each member once (parsers disagree on which copy wins)"#
            ),
        }
    }
}

type Scanned<T> = Result<T, Fail>;

/// A decoded JSON string, known to be valid UTF-8. Kept as bytes so that keys and values that are
/// only compared never pay for a second UTF-8 check; only the strings kept in a `Message` do.
#[derive(Debug)]
pub(crate) enum Text<'a> {
    /// Straight from the body (no escapes), all ASCII.
    Ascii(&'a [u8]),
    /// Straight from the body (no escapes), with multi-byte characters.
    Utf8(&'a str),
    /// Decoded from escapes.
    Owned(String),
}

impl Text<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Ascii(bytes) => bytes,
            Self::Utf8(s) => s.as_bytes(),
            Self::Owned(s) => s.as_bytes(),
        }
    }

    /// The text cut to [`crate::MAX_TEXT_BYTES`], as kept in a `Message`.
    pub(crate) fn capped(&self) -> String {
        match self {
            // Checked when scanned, so the fallback never applies.
            Self::Ascii(bytes) => capped(std::str::from_utf8(bytes).unwrap_or_default()),
            Self::Utf8(s) => capped(s),
            Self::Owned(s) => capped(s),
        }
    }
}

/// A value the classifier may use: a string, a small integer or a boolean. Anything else is `Other`.
#[derive(Debug)]
pub(crate) enum Scalar<'a> {
    Str(Text<'a>),
    Bool(bool),
    Int(i64),
    Other,
}

impl<'a> Scalar<'a> {
    fn into_str(self) -> Option<Text<'a>> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The members read from `params`, `result` or `error`; each is only used where it means something
/// (e.g. `name` only for `tools/call`), and a member of the wrong type is treated as absent because
/// the server, not the proxy, is the one to reject it.
#[derive(Debug, Default)]
pub(crate) struct Peek<'a> {
    pub(crate) name: Option<Text<'a>>,
    pub(crate) client_name: Option<Text<'a>>,
    pub(crate) client_version: Option<Text<'a>>,
    pub(crate) protocol_version: Option<Text<'a>>,
    pub(crate) is_error: bool,
    pub(crate) code: Option<i64>,
}

/// The members of one message that classification reads; `None` = member absent.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    pub(crate) jsonrpc: Option<Scalar<'a>>,
    /// The id's JSON text, so a float keeps its spelling and null stays distinct from absent.
    pub(crate) id: Option<&'a [u8]>,
    pub(crate) method: Option<Scalar<'a>>,
    pub(crate) params: Option<Peek<'a>>,
    pub(crate) result: Option<Peek<'a>>,
    pub(crate) error: Option<Peek<'a>>,
}

/// A cursor over the body. Every read is bounds-checked (`get`), so no input can make it panic.
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Which containers enclose the value being skipped: a bit per level for the first 64 levels, a
/// byte per level beyond, so skipping never recurses (no stack overflow on `[[[[...`) and the
/// common shallow case never allocates.
#[derive(Default)]
struct Nesting {
    depth: usize,
    low: u64,
    deep: Vec<bool>,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.depth < 64 {
            let bit = 1u64 << self.depth;
            if object {
                self.low |= bit;
            } else {
                self.low &= !bit;
            }
        } else {
            self.deep.push(object);
        }
        self.depth += 1;
    }

    /// Whether the innermost container is an object; `None` at top level.
    fn top(&self) -> Option<bool> {
        let level = self.depth.checked_sub(1)?;
        if level < 64 {
            Some(self.low >> level & 1 == 1)
        } else {
            self.deep.last().copied()
        }
    }

    fn pop(&mut self) {
        if self.depth > 64 {
            self.deep.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }
}

/// Where a scanned string lies: the indexes of its quotes, whether it has escapes and whether it
/// is all ASCII (then it is valid UTF-8 without a further check).
struct Span {
    open: usize,
    close: usize,
    escaped: bool,
    ascii: bool,
}

/// A JSON integer's text as an `i64`, `None` if it has a fraction or exponent or does not fit.
/// Accumulates downwards so `i64::MIN` parses.
pub(crate) fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` that is below `n` (n <= 0x80). Bits above the lowest true
/// hit may be spurious (borrows), so only the lowest set bit is trusted.
fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
}

fn bytes_equal(word: u64, b: u8) -> u64 {
    bytes_below(word ^ (ONES * u64::from(b)), 1)
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn syntax<T>(&self, what: &'static str) -> Scanned<T> {
        Err(Fail::Syntax { at: self.pos, what })
    }

    /// The next byte after JSON whitespace, not consumed.
    #[inline(always)]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    #[inline(always)]
    fn expect(&mut self, want: u8, what: &'static str) -> Scanned<()> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            self.syntax(what)
        }
    }

    /// Only whitespace remains.
    pub(crate) fn end(&mut self) -> Scanned<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.syntax("trailing characters after the JSON value"),
        }
    }

    /// The whole input is one JSON value (syntax only): the check behind a shape error.
    pub(crate) fn validate(bytes: &'a [u8]) -> Scanned<()> {
        let mut scanner = Self::new(bytes);
        scanner.skip()?;
        scanner.end()
    }

    /// Consumes a string whose opening quote is at `self.pos`. Checks syntax only (escapes, no raw
    /// control bytes), noting on the way whether a UTF-8 check or unescaping will be needed.
    #[inline(always)]
    fn string(&mut self) -> Scanned<Span> {
        let open = self.pos;
        let mut i = open + 1;
        let mut escaped = false;
        let mut high = 0u64;
        loop {
            // Eight bytes at a time while none of them needs a look: strings are most of a body.
            while let Some(chunk) = self.bytes.get(i..i + 8) {
                let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
                    break;
                };
                let word = u64::from_le_bytes(chunk);
                let hits =
                    bytes_equal(word, b'"') | bytes_equal(word, b'\\') | bytes_below(word, 0x20);
                if hits != 0 {
                    let before = hits.trailing_zeros() / 8;
                    // High bits of the bytes before the hit (the hit itself is ASCII).
                    high |= word & HIGHS & (1u64 << (8 * before)).wrapping_sub(1);
                    i += before as usize;
                    break;
                }
                high |= word & HIGHS;
                i += 8;
            }
            match self.bytes.get(i) {
                None => {
                    self.pos = i;
                    return self.syntax("unterminated string");
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Span {
                        open,
                        close: i,
                        escaped,
                        ascii: high == 0,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex = self.bytes.get(i + 2..i + 6);
                            match hex {
                                Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => i += 6,
                                _ => {
                                    self.pos = i;
                                    return self.syntax(r"invalid \u escape in string");
                                }
                            }
                        }
                        _ => {
                            self.pos = i;
                            return self.syntax("invalid escape in string");
                        }
                    }
                }
                Some(&b) if b < 0x20 => {
                    self.pos = i;
                    return self.syntax("control character in string");
                }
                Some(&b) => {
                    high |= u64::from(b & 0x80);
                    i += 1;
                }
            }
        }
    }

    /// A string decoded strictly (valid UTF-8, paired surrogates), borrowed when it has no escapes.
    #[inline(always)]
    fn strict_str(&mut self) -> Scanned<Text<'a>> {
        let span = self.string()?;
        let bytes = self.bytes;
        let fail = Fail::Syntax {
            at: span.open,
            what: "string is not valid UTF-8 or has an unpaired surrogate escape",
        };
        if span.escaped {
            // Rare on the hot path (method and tool names have no escapes): let serde_json decode.
            let quoted = bytes.get(span.open..=span.close).unwrap_or_default();
            return serde_json::from_slice::<String>(quoted)
                .map(Text::Owned)
                .map_err(|_| fail);
        }
        let inner = bytes.get(span.open + 1..span.close).unwrap_or_default();
        if span.ascii {
            return Ok(Text::Ascii(inner));
        }
        std::str::from_utf8(inner).map(Text::Utf8).map_err(|_| fail)
    }

    /// Consumes a number (syntax only) and returns its text (ASCII).
    #[inline(always)]
    fn number(&mut self) -> Scanned<&'a [u8]> {
        let start = self.pos;
        let bytes = self.bytes;
        let digits = |mut i: usize| {
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut i = start;
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        i = match bytes.get(i) {
            Some(b'0') if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                self.pos = i + 1;
                return self.syntax("number with a leading zero");
            }
            Some(b'0') => i + 1,
            Some(b'1'..=b'9') => digits(i + 1),
            _ => {
                self.pos = i;
                return self.syntax("invalid number");
            }
        };
        if bytes.get(i) == Some(&b'.') {
            let after = digits(i + 1);
            if after == i + 1 {
                self.pos = after;
                return self.syntax("number has no digits after the decimal point");
            }
            i = after;
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let after = digits(i);
            if after == i {
                self.pos = i;
                return self.syntax("number has no digits in its exponent");
            }
            i = after;
        }
        self.pos = i;
        Ok(bytes.get(start..i).unwrap_or_default())
    }

    /// A number decoded strictly: an integer that fits `i64` (`-0` is a float, as in serde_json),
    /// else `Other` if it fits an `f64`, else an error.
    #[inline(always)]
    fn strict_number(&mut self) -> Scanned<Scalar<'a>> {
        let start = self.pos;
        let text = self.number()?;
        if let Some(n) = parse_i64(text)
            && !(n == 0 && text.first() == Some(&b'-'))
        {
            return Ok(Scalar::Int(n));
        }
        // Cold: out-of-range checks exactly as serde_json does them.
        match serde_json::from_slice::<f64>(text) {
            Ok(_) => Ok(Scalar::Other),
            Err(_) => Err(Fail::Syntax {
                at: start,
                what: "number out of range",
            }),
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &'static [u8]) -> Scanned<()> {
        match self.bytes.get(self.pos..self.pos + word.len()) {
            Some(found) if found == word => {
                self.pos += word.len();
                Ok(())
            }
            _ => self.syntax("invalid literal (expected true, false or null)"),
        }
    }

    /// Skips one value, checking only its syntax. Iterative, so nesting depth costs no stack.
    pub(crate) fn skip(&mut self) -> Scanned<()> {
        let mut nesting = Nesting::default();
        loop {
            // One value, or the opening of a container.
            match self.peek() {
                None => return self.syntax("unexpected end of input, expected a value"),
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'[') => {
                    self.pos += 1;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        nesting.push(false);
                        continue;
                    }
                }
                Some(b'{') => {
                    self.pos += 1;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        nesting.push(true);
                        self.skip_key()?;
                        continue;
                    }
                }
                Some(_) => return self.syntax("expected a value"),
            }
            // After a complete value: close containers until one continues with a comma.
            loop {
                let Some(object) = nesting.top() else {
                    return Ok(());
                };
                match (self.peek(), object) {
                    (Some(b','), _) => {
                        self.pos += 1;
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    (Some(b']'), false) | (Some(b'}'), true) => {
                        self.pos += 1;
                        nesting.pop();
                    }
                    (None, _) => return self.syntax("unexpected end of input inside a container"),
                    (Some(_), false) => return self.syntax("expected `,` or `]` in an array"),
                    (Some(_), true) => return self.syntax("expected `,` or `}` in an object"),
                }
            }
        }
    }

    /// A key inside a skipped object and its colon (syntax only).
    fn skip_key(&mut self) -> Scanned<()> {
        if self.peek() != Some(b'"') {
            return self.syntax("object key must be a string");
        }
        self.string()?;
        self.expect(b':', "expected `:` after an object key")
    }

    /// Walks an object whose `{` is next, decoding each key strictly and handing it to `member`,
    /// which must consume the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Scanned<()>) -> Scanned<()> {
        self.expect(b'{', "expected an object")?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return self.syntax("object key must be a string");
            }
            let key = self.strict_str()?;
            self.expect(b':', "expected `:` after an object key")?;
            member(self, key.as_bytes())?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return self.syntax("unexpected end of input inside an object"),
                Some(_) => return self.syntax("expected `,` or `}` in an object"),
            }
        }
    }

    /// Any value, keeping strings, integers and booleans. Scalars are decoded strictly; inside
    /// an array only syntax is checked, inside an object keys are decoded and values skipped.
    #[inline(always)]
    fn scalar(&mut self) -> Scanned<Scalar<'a>> {
        match self.peek() {
            Some(b'"') => self.strict_str().map(Scalar::Str),
            Some(b'-' | b'0'..=b'9') => self.strict_number(),
            Some(b't') => self.literal(b"true").map(|()| Scalar::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Scalar::Bool(false)),
            Some(b'{') => self.object(|s, _| s.skip()).map(|()| Scalar::Other),
            _ => self.skip().map(|()| Scalar::Other),
        }
    }

    /// `params`, `result` or `error`: an object whose few interesting members are read; `nested`
    /// is true inside `clientInfo`, where only `name` and `version` matter (and a `clientInfo`
    /// inside a `clientInfo` is not descended into).
    fn peek_members(&mut self, nested: bool) -> Scanned<Peek<'a>> {
        let mut peek = Peek::default();
        if self.peek() != Some(b'{') {
            self.scalar()?;
            return Ok(peek);
        }
        self.object(|s, key| {
            match (key, nested) {
                (b"name", _) => peek.name = s.scalar()?.into_str(),
                (b"version", true) => peek.client_version = s.scalar()?.into_str(),
                (b"clientInfo", false) => {
                    let client = s.peek_members(true)?;
                    peek.client_name = client.name;
                    peek.client_version = client.client_version;
                }
                (b"protocolVersion", false) => peek.protocol_version = s.scalar()?.into_str(),
                (b"isError", false) => peek.is_error = matches!(s.scalar()?, Scalar::Bool(true)),
                (b"code", false) => {
                    peek.code = match s.scalar()? {
                        Scalar::Int(code) => Some(code),
                        _ => None,
                    }
                }
                _ => s.skip()?,
            }
            Ok(())
        })?;
        Ok(peek)
    }

    /// The id's JSON text, checked for syntax and UTF-8 but not decoded (`parse_id` does that).
    fn raw(&mut self) -> Scanned<&'a [u8]> {
        let first = self.peek();
        let start = self.pos;
        let valid = match first {
            Some(b'"') => self.string()?.ascii,
            // Numbers are ASCII by construction.
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                true
            }
            _ => {
                self.skip()?;
                false
            }
        };
        let text = self.bytes.get(start..self.pos).unwrap_or_default();
        if valid || std::str::from_utf8(text).is_ok() {
            Ok(text)
        } else {
            Err(Fail::Syntax {
                at: start,
                what: "id is not valid UTF-8",
            })
        }
    }

    /// One message. A non-object is decoded strictly first (a malformed string or number there is
    /// a parse error), then reported as a shape problem.
    pub(crate) fn envelope(&mut self, env: &mut Envelope<'a>) -> Scanned<()> {
        let found = match self.peek() {
            Some(b'{') => None,
            Some(b'[') => Some("an array"),
            Some(b'"') => Some("a string"),
            Some(b'-' | b'0'..=b'9') => Some("a number"),
            Some(b't' | b'f') => Some("a boolean"),
            Some(b'n') => Some("null"),
            None => return self.syntax("unexpected end of input, expected a value"),
            Some(_) => return self.syntax("expected a value"),
        };
        if let Some(found) = found {
            if found != "an array" {
                self.scalar()?;
            }
            return Err(Fail::Shape(Shape::NotObject(found)));
        }
        self.object(|s, key| {
            /// A repeated member is ambiguous (parsers disagree on which copy wins), so refuse
            /// it; the value is read first, as a parse error in it takes precedence.
            fn once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Scanned<()> {
                if slot.is_some() {
                    return Err(Fail::Shape(Shape::Duplicate(name)));
                }
                *slot = Some(value);
                Ok(())
            }
            match key {
                b"jsonrpc" => once(&mut env.jsonrpc, s.scalar()?, "jsonrpc"),
                b"id" => once(&mut env.id, s.raw()?, "id"),
                b"method" => once(&mut env.method, s.scalar()?, "method"),
                b"params" => once(&mut env.params, s.peek_members(false)?, "params"),
                b"result" => once(&mut env.result, s.peek_members(false)?, "result"),
                b"error" => once(&mut env.error, s.peek_members(false)?, "error"),
                _ => s.skip(),
            }
        })
    }

    /// After `[` or an element: `true` if another element follows (its comma consumed), `false`
    /// at the closing `]` (consumed).
    pub(crate) fn next_element(&mut self, first: bool) -> Scanned<bool> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) if first => Ok(true),
            Some(b',') => {
                self.pos += 1;
                if self.peek() == Some(b']') {
                    return self.syntax("trailing comma in an array");
                }
                Ok(true)
            }
            None => self.syntax("unexpected end of input inside an array"),
            Some(_) => self.syntax("expected `,` or `]` in an array"),
        }
    }

    /// Consumes the `[` opening a batch.
    pub(crate) fn open_batch(&mut self) -> Scanned<()> {
        self.expect(b'[', "expected `[`")
    }

    /// Decodes an id's JSON string text strictly; `None` if it is not a valid string.
    pub(crate) fn decode_string(text: &'a [u8]) -> Option<Text<'a>> {
        let mut scanner = Scanner::new(text);
        let s = scanner.strict_str().ok()?;
        scanner.end().ok()?;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_finds_the_first_special_byte() {
        // Each row: a string body, and the offset of the byte the scanner must stop at.
        let table: &[(&[u8], usize, &str)] = &[
            (b"\"abcdefgh\"", 9, "quote after a full word"),
            (b"\"abcdefghijklmnop\"", 17, "quote after two words"),
            (b"\"ab\\\"cdefghij\"", 13, "escaped quote is not the end"),
            (
                b"\"\x80\x81\x82\x83\x84\x85\x86\x87\"",
                9,
                "high bytes are ordinary",
            ),
            (
                b"\"\x21\x23\x5b\x5d\x1f\x20\"",
                5,
                "0x1f is a control byte, neighbours of quote and backslash are not",
            ),
        ];
        for (input, want, why) in table {
            let mut s = Scanner::new(input);
            let got = match s.string() {
                Ok(span) => span.close,
                Err(Fail::Syntax { at, .. }) => at,
                Err(other) => panic!("{why}: {other:?}"),
            };
            assert_eq!(got, *want, "{why}");
        }
    }

    #[test]
    fn nesting_spills_past_64_levels() {
        let mut n = Nesting::default();
        for level in 0..200 {
            n.push(level % 3 == 0);
        }
        for level in (0..200).rev() {
            assert_eq!(n.top(), Some(level % 3 == 0), "level {level}");
            n.pop();
        }
        assert_eq!(n.top(), None);
    }

    #[test]
    fn strict_numbers_follow_serde_json() {
        let table: &[(&str, Option<i64>, bool, &str)] = &[
            ("7", Some(7), true, "small integer"),
            ("-0", None, true, "negative zero is a float in serde_json"),
            ("-9223372036854775808", Some(i64::MIN), true, "i64::MIN"),
            ("9223372036854775808", None, true, "beyond i64 but a u64"),
            ("1e400", None, false, "overflows f64"),
            (
                "123456789012345678901234567890",
                None,
                true,
                "long integer fits f64",
            ),
            ("1.5", None, true, "fraction"),
        ];
        for (text, int, ok, why) in table {
            let mut s = Scanner::new(text.as_bytes());
            match s.strict_number() {
                Ok(Scalar::Int(n)) => assert_eq!(Some(n), *int, "{why}"),
                Ok(_) => assert!(int.is_none() && *ok, "{why}"),
                Err(_) => assert!(!ok, "{why}"),
            }
        }
    }
}
