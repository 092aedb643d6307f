//! Exposition: content negotiation, encoding in either text format, and a parser for tests and docs.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::TelemetryError;

/// A text exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// Prometheus text 0.0.4, which every scraper understands.
    PrometheusText,
}

impl Format {
    /// The `Content-Type` header value for a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Picks the format for a scrape from its `Accept` header: OpenMetrics when the scraper ranks it
/// at least as high as plain text, otherwise (and when the header is absent or unreadable)
/// Prometheus text, which every scraper accepts.
pub fn negotiate(accept_header: Option<&str>) -> Format {
    let Some(accept) = accept_header else {
        return Format::PrometheusText;
    };
    let mut best_openmetrics: f32 = 0.0;
    let mut best_text: f32 = 0.0;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut quality: f32 = 1.0;
        for param in parts {
            if let Some((key, value)) = param.split_once('=')
                && key.trim().eq_ignore_ascii_case("q")
            {
                // An unreadable weight ranks the range last rather than failing the scrape.
                quality = value.trim().parse().unwrap_or(0.0);
            }
        }
        match media.as_str() {
            "application/openmetrics-text" => best_openmetrics = best_openmetrics.max(quality),
            "text/plain" | "text/*" | "*/*" => best_text = best_text.max(quality),
            _ => {}
        }
    }
    if best_openmetrics > 0.0 && best_openmetrics >= best_text {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

/// Encodes every metric in `registry` in `format`.
///
/// prometheus-client 0.26 writes both formats itself: its Prometheus text encoder names counter
/// families after their `_total` series, omits `# UNIT` and `# EOF`, and writes no `_created`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, TelemetryError> {
    let mut body = String::with_capacity(16 * 1024);
    match format {
        Format::OpenMetrics => text::encode(&mut body, registry)?,
        Format::PrometheusText => prometheus_text::encode(&mut body, registry)?,
    }
    Ok(body)
}

/// The answer to one scrape, whatever HTTP stack serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// 200, or 500 when a collector failed to encode.
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Answers a scrape: the format the `Accept` header prefers, the registry encoded in it.
pub fn scrape(registry: &Registry, accept_header: Option<&str>) -> Scrape {
    let format = negotiate(accept_header);
    match encode(registry, format) {
        Ok(body) => Scrape {
            status: 200,
            content_type: format.content_type(),
            body,
        },
        Err(error) => Scrape {
            status: 500,
            content_type: "text/plain; charset=utf-8",
            body: format!("cannot encode metrics: {error}\n"),
        },
    }
}

/// Registers `mcpulse_build_info{version}` = 1, so dashboards can tell which build is running.
pub fn register_build_info(registry: &mut Registry, version: &str) {
    let info = Family::<[(&'static str, String); 1], Gauge>::default();
    info.get_or_create(&[("version", version.to_owned())])
        .set(1);
    registry.register(
        "mcpulse_build_info",
        "Always 1; the version label names the running mcpulse build",
        info,
    );
}

/// One sample line of an exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Series name, with any `_total`, `_bucket`, `_sum` or `_count` suffix.
    pub name: String,
    /// Labels in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// One metric family: its metadata lines and the samples under them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ParsedFamily {
    /// Family name as written on its `# TYPE` line.
    pub name: String,
    /// `counter`, `gauge`, `histogram`, ...
    pub kind: String,
    /// Help text, unescaped.
    pub help: String,
    /// Unit from a `# UNIT` line (OpenMetrics only).
    pub unit: Option<String>,
    /// Samples in order.
    pub samples: Vec<Sample>,
}

/// A parsed exposition, in either text format.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Exposition {
    /// Families in the order written.
    pub families: Vec<ParsedFamily>,
    /// Whether the text ended with `# EOF`.
    pub eof: bool,
}

impl Exposition {
    /// Parses exposition text strictly enough that a malformed line (bad escape, unterminated
    /// quote, unparsable value, anything after `# EOF`) is an error.
    pub fn parse(body: &str) -> Result<Self, TelemetryError> {
        let mut exposition = Exposition::default();
        for (index, line) in body.lines().enumerate() {
            let error = |reason: &str| TelemetryError::Parse {
                line: index + 1,
                reason: reason.to_owned(),
            };
            if exposition.eof {
                return Err(error("text after `# EOF`"));
            }
            if line == "# EOF" {
                exposition.eof = true;
            } else if let Some(meta) = line.strip_prefix("# ") {
                let (keyword, rest) = meta
                    .split_once(' ')
                    .ok_or_else(|| error("metadata line without a name"))?;
                let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                if exposition
                    .families
                    .last()
                    .is_none_or(|family| family.name != name)
                {
                    exposition.families.push(ParsedFamily {
                        name: name.to_owned(),
                        ..ParsedFamily::default()
                    });
                }
                let family = exposition
                    .families
                    .last_mut()
                    .ok_or_else(|| error("no family"))?;
                match keyword {
                    "HELP" => {
                        family.help =
                            unescape(value, false).ok_or_else(|| error("bad escape in HELP"))?
                    }
                    "TYPE" => family.kind = value.to_owned(),
                    "UNIT" => family.unit = Some(value.to_owned()),
                    _ => return Err(error("unknown metadata keyword")),
                }
            } else if !line.is_empty() {
                let sample = parse_sample(line).ok_or_else(|| error("malformed sample line"))?;
                let family = exposition
                    .families
                    .last_mut()
                    .ok_or_else(|| error("sample before any `# TYPE`"))?;
                if !sample.name.starts_with(&family.name) {
                    return Err(error("sample name does not belong to the family above it"));
                }
                family.samples.push(sample);
            }
        }
        Ok(exposition)
    }

    /// The family named exactly `name` (as on its `# TYPE` line).
    pub fn family(&self, name: &str) -> Option<&ParsedFamily> {
        self.families.iter().find(|family| family.name == name)
    }

    /// The value of the series `name` whose labels are exactly `labels`, in any order.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families
            .iter()
            .flat_map(|family| &family.samples)
            .find(|sample| {
                sample.name == name
                    && sample.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| sample.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|sample| sample.value)
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        rest = body;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = rest.split_once("=\"")?;
            let key = key.strip_prefix(',').unwrap_or(key);
            let end = closing_quote(after_key)?;
            labels.push((key.to_owned(), unescape(&after_key[..end], true)?));
            rest = &after_key[end + 1..];
        }
    }
    let mut fields = rest.strip_prefix(' ')?.split(' ');
    let value = parse_value(fields.next()?)?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Byte index of the first unescaped `"`.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, byte) in text.bytes().enumerate() {
        match (escaped, byte) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return Some(index),
            (false, b'\n') => return None,
            _ => {}
        }
    }
    None
}

fn unescape(text: &str, quotes: bool) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            '"' if quotes => out.push('"'),
            _ => return None,
        }
    }
    Some(out)
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_picks_by_quality() {
        let prometheus_3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        let cases = [
            (
                None,
                Format::PrometheusText,
                "no header: the format every scraper reads",
            ),
            (
                Some(prometheus_3),
                Format::OpenMetrics,
                "Prometheus 3 ranks OpenMetrics first",
            ),
            (
                Some("application/openmetrics-text; version=1.0.0"),
                Format::OpenMetrics,
                "only OpenMetrics offered",
            ),
            (
                Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
                Format::PrometheusText,
                "text ranked higher",
            ),
            (Some("*/*"), Format::PrometheusText, "curl's default"),
            (
                Some("application/openmetrics-text;q=0"),
                Format::PrometheusText,
                "q=0 means not acceptable",
            ),
            (
                Some("application/openmetrics-text;q=abc"),
                Format::PrometheusText,
                "unreadable weight ranks last",
            ),
            (
                Some("APPLICATION/OPENMETRICS-TEXT"),
                Format::OpenMetrics,
                "media types are case-insensitive",
            ),
            (Some(""), Format::PrometheusText, "empty header"),
        ];
        for (header, want, why) in cases {
            assert_eq!(negotiate(header), want, "{why}");
        }
    }

    #[test]
    fn parse_reads_labels_and_escapes() {
        let body = "# HELP a_total Some \\\\ help.\n# TYPE a_total counter\na_total{k=\"x\\\"y\\\\z\\n\",e=\"\"} 3\n";
        let exposition = Exposition::parse(body).unwrap();
        let family = exposition.family("a_total").unwrap();
        assert_eq!(family.help, "Some \\ help.");
        assert_eq!(
            family.samples[0].labels,
            vec![
                ("k".into(), "x\"y\\z\n".into()),
                ("e".into(), String::new())
            ]
        );
        assert_eq!(
            exposition.value("a_total", &[("e", ""), ("k", "x\"y\\z\n")]),
            Some(3.0)
        );
    }

    #[test]
    fn parse_rejects_malformed_lines() {
        let cases = [
            ("# TYPE a counter\na{k=\"v} 1\n", "unterminated quote"),
            ("# TYPE a counter\na{k=\"\\q\"} 1\n", "unknown escape"),
            ("# TYPE a counter\na 1x\n", "bad value"),
            ("a 1\n", "sample without a family"),
            ("# TYPE a counter\nb 1\n", "sample under the wrong family"),
            ("# EOF\n# TYPE a counter\n", "text after EOF"),
        ];
        for (body, why) in cases {
            assert!(Exposition::parse(body).is_err(), "{why}");
        }
    }
}
