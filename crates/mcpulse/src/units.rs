//! Human-friendly values on the command line and in config files: durations (`10s`, `1m30s`) and sizes (`4MiB`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 500ms, 10s, 1m30s"))
}

/// Parses a byte size: a plain number of bytes, or a number with KiB/MiB/GiB (or KB/MB/GB, powers of 1000).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?}; write e.g. 65536, 512KiB, 4MiB"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 65536, 512KiB, 4MiB"))?;
    number
        .checked_mul(multiplier)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(|| format!("{text:?} is too large"))
}

pub fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}

pub fn deserialize_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(usize),
        Text(String),
    }
    Ok(match Option::<Size>::deserialize(deserializer)? {
        None => None,
        Some(Size::Bytes(bytes)) => Some(bytes),
        Some(Size::Text(text)) => Some(parse_size(&text).map_err(serde::de::Error::custom)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        // (input, expected, reason)
        let cases = [
            ("4MiB", Some(4 << 20), "binary unit"),
            ("4 MiB", Some(4 << 20), "space before the unit"),
            ("1000", Some(1000), "plain bytes"),
            ("2KB", Some(2000), "decimal unit"),
            ("4XB", None, "unknown unit"),
            ("MiB", None, "no number"),
            ("99999999999999GiB", None, "overflow"),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(parse_size(input).ok(), expected, "{input}: {reason}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("ten seconds").unwrap_err().contains("e.g."));
    }
}
