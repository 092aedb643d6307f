//! Bounded text helpers shared by the JSON-RPC and SSE models: capping kept strings and JSON escaping.

/// Longest string (in bytes) kept from a message or event field: method, tool name, client name and
/// version, protocol version, request id, SSE `event` and `id`. These end up in labels, logs and the
/// in-flight request map, so each must have a bounded size whatever a peer sends.
pub const MAX_TEXT_BYTES: usize = 256;

/// `s` truncated to at most [`MAX_TEXT_BYTES`], on a char boundary so the result stays valid UTF-8.
pub(crate) fn capped(s: &str) -> String {
    s.get(..s.floor_char_boundary(MAX_TEXT_BYTES))
        .unwrap_or_default()
        .to_owned()
}

/// Append `s` to `out` as a quoted JSON string.
pub(crate) fn escape_json_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // JSON forbids raw control characters inside strings.
            c if u32::from(c) < 0x20 => {
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_cuts_on_char_boundary() {
        // 255 ASCII bytes then a 2-byte char straddling the 256-byte cap: the char must go whole.
        let s = format!("{}é", "a".repeat(255));
        assert_eq!(capped(&s), "a".repeat(255));
        assert_eq!(capped("short"), "short");
        let exact = "b".repeat(MAX_TEXT_BYTES);
        assert_eq!(capped(&exact), exact);
    }

    #[test]
    fn escaped_strings_parse_back() {
        for s in [
            "plain",
            "quote \" and \\ back",
            "line\nbreak\r\ttab",
            "\u{0}\u{1f}ctl",
            "ünï €",
        ] {
            let mut out = String::new();
            escape_json_into(s, &mut out);
            let back: String = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert_eq!(back, s, "round trip of {s:?} through {out}");
        }
    }
}
