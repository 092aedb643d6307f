//! Prometheus HTTP API client (instant and range queries) behind a trait, so reconcile tests inject results.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use crate::error::KubeError;

/// Most series one answer may hold; a fleet is bounded by the engine's pod limit, a query beyond it is a mistake.
pub const MAX_SERIES: usize = mcpulse_scaler::MAX_PODS;
/// Most points one range answer may hold (Prometheus itself caps a range query at 11,000 points).
pub const MAX_POINTS: usize = 11_000;
/// Largest response body read; 50,000 series of short labels fit well within it.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest bearer-token file read (service-account tokens are about 1 KiB).
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// One series of an instant answer: its labels and value. A scalar answer is one series without labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One series of a range answer: `(unix seconds, value)` points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

/// The queries the controller makes. Implemented over HTTP by [`PrometheusHttp`] and by tables in tests.
pub trait MetricsSource: Send + Sync {
    /// Evaluates `query` now.
    fn instant<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Vec<Series>, KubeError>>;
    /// Evaluates `query` at every `step` from `start` to `end` (unix seconds).
    fn range<'a>(
        &'a self,
        query: &'a str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<RangeSeries>, KubeError>>;
}

/// How to reach Prometheus.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://kube-prometheus-stack-prometheus.monitoring:9090`.
    pub url: String,
    /// File holding a bearer token, re-read on every query so rotated tokens are picked up.
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed Prometheus's certificate.
    pub ca_file: Option<PathBuf>,
    /// Per-query timeout.
    pub timeout: Duration,
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

/// The Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`).
#[derive(Clone)]
pub struct PrometheusHttp {
    base: String,
    token_file: Option<PathBuf>,
    timeout: Duration,
    client: HttpsClient,
}

impl std::fmt::Debug for PrometheusHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusHttp")
            .field("base", &self.base)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// Trust roots: the given CA alone when one is set (a private Prometheus), else the system's store.
fn roots(ca_file: Option<&std::path::Path>) -> Result<rustls::RootCertStore, KubeError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let Some(ca) = ca_file else {
        // Unreadable system certificates are skipped: an http:// Prometheus needs none of them.
        let (added, _) =
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        tracing::debug!(added, "system trust roots loaded for https:// Prometheus");
        return Ok(roots);
    };
    let bad = |problem: String| KubeError::Config {
        setting: "--prometheus-ca-file".into(),
        problem,
    };
    let pem = std::fs::read(ca).map_err(|e| bad(format!("cannot read {}: {e}", ca.display())))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            bad(format!(
                "{} holds an unreadable PEM block: {e}",
                ca.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            bad(format!(
                "{} holds a certificate rustls refuses: {e}",
                ca.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(bad(format!("{} holds no PEM certificate", ca.display())));
    }
    Ok(roots)
}

impl PrometheusHttp {
    /// Checks the URL and builds the HTTP client (trusting the CA, when one is given).
    pub fn new(config: &PrometheusConfig) -> Result<Self, KubeError> {
        let bad = |problem: String| KubeError::Config {
            setting: "--prometheus-url".into(),
            problem,
        };
        let url = config.url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() > 2048
            || url.parse::<http::Uri>().is_err()
        {
            return Err(bad(format!(
                "{url:?} is not an http:// or https:// URL of at most 2048 characters, e.g. http://prometheus-operated.monitoring:9090"
            )));
        }
        // The provider is given explicitly, so nothing depends on a process-wide default.
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS set-up failed: {e}")))?
            .with_root_certificates(roots(config.ca_file.as_deref())?)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Self {
            base: url.to_owned(),
            token_file: config.token_file.clone(),
            timeout: config.timeout,
            client,
        })
    }

    fn token(&self) -> Result<Option<String>, KubeError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let problem = |p: String| KubeError::Config {
            setting: "--prometheus-token-file".into(),
            problem: p,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?
            .len();
        if len > MAX_TOKEN_BYTES {
            return Err(problem(format!(
                "{} holds {len} bytes; a bearer token is at most {MAX_TOKEN_BYTES}",
                path.display()
            )));
        }
        let token = std::fs::read_to_string(path)
            .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
        let token = token.trim();
        // A header value cannot hold control characters; say so rather than fail obscurely.
        if token.is_empty() || token.chars().any(char::is_control) {
            return Err(problem(format!(
                "{} must hold one bearer token without control characters",
                path.display()
            )));
        }
        Ok(Some(token.to_owned()))
    }

    async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
        query: &str,
    ) -> Result<Data, KubeError> {
        use http_body_util::BodyExt;
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let mut request = http::Request::get(format!("{}{path}?{encoded}", self.base));
        if let Some(token) = self.token()? {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(http_body_util::Empty::new())
            .map_err(|e| KubeError::prometheus(query, format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| KubeError::prometheus(query, format!("unreachable: {e}")))?;
            let status = response.status().as_u16();
            let body = http_body_util::Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    KubeError::prometheus(
                        query,
                        format!("reading the answer (at most 32 MiB): {e}"),
                    )
                })?
                .to_bytes();
            Ok::<_, KubeError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                KubeError::prometheus(
                    query,
                    format!("unreachable: no answer within {:?}", self.timeout),
                )
            })??;
        parse_response(query, status, &body)
    }
}

impl MetricsSource for PrometheusHttp {
    fn instant<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Vec<Series>, KubeError>> {
        Box::pin(async move {
            let data = self
                .get("/api/v1/query", &[("query", query.to_owned())], query)
                .await?;
            instant_series(query, data)
        })
    }

    fn range<'a>(
        &'a self,
        query: &'a str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<RangeSeries>, KubeError>> {
        Box::pin(async move {
            let params = [
                ("query", query.to_owned()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{}", step.as_secs().max(1))),
            ];
            let data = self.get("/api/v1/query_range", &params, query).await?;
            range_series(query, data)
        })
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub(crate) enum Data {
    Vector(Vec<VectorItem>),
    Matrix(Vec<MatrixItem>),
    Scalar((f64, String)),
    String(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
pub(crate) struct VectorItem {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Debug, Deserialize)]
pub(crate) struct MatrixItem {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Parses an API answer; errors carry Prometheus's own `errorType: error` text.
pub(crate) fn parse_response(query: &str, status: u16, body: &[u8]) -> Result<Data, KubeError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        KubeError::prometheus(
            query,
            format!("HTTP {status} with an answer that is not the Prometheus API's JSON: {e}; check --prometheus-url"),
        )
    })?;
    if envelope.status != "success" {
        return Err(KubeError::prometheus(
            query,
            format!(
                "HTTP {status}: {}: {}",
                envelope.error_type.unwrap_or_else(|| "error".into()),
                envelope.error.unwrap_or_default()
            ),
        ));
    }
    envelope
        .data
        .ok_or_else(|| KubeError::prometheus(query, "a success answer without data"))
}

/// Prometheus writes sample values as strings ("1.5", "NaN", "+Inf").
fn value(query: &str, s: &str) -> Result<f64, KubeError> {
    s.parse::<f64>()
        .map_err(|_| KubeError::prometheus(query, format!("sample value {s:?} is not a number")))
}

pub(crate) fn instant_series(query: &str, data: Data) -> Result<Vec<Series>, KubeError> {
    match data {
        Data::Vector(items) => {
            if items.len() > MAX_SERIES {
                return Err(KubeError::prometheus(
                    query,
                    format!(
                        "{} series, at most {MAX_SERIES}; aggregate the query",
                        items.len()
                    ),
                ));
            }
            items
                .into_iter()
                .map(|i| {
                    Ok(Series {
                        value: value(query, &i.value.1)?,
                        labels: i.metric,
                    })
                })
                .collect()
        }
        Data::Scalar((_, v)) => Ok(vec![Series {
            labels: BTreeMap::new(),
            value: value(query, &v)?,
        }]),
        Data::Matrix(_) | Data::String(_) => Err(KubeError::prometheus(
            query,
            "an instant query must give a vector or a scalar; drop the range selector",
        )),
    }
}

pub(crate) fn range_series(query: &str, data: Data) -> Result<Vec<RangeSeries>, KubeError> {
    let Data::Matrix(items) = data else {
        return Err(KubeError::prometheus(
            query,
            "a range query must give a matrix",
        ));
    };
    if items.len() > MAX_SERIES {
        return Err(KubeError::prometheus(
            query,
            format!(
                "{} series, at most {MAX_SERIES}; aggregate the query",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .map(|i| {
            if i.values.len() > MAX_POINTS {
                return Err(KubeError::prometheus(
                    query,
                    format!(
                        "{} points, at most {MAX_POINTS}; use a longer step",
                        i.values.len()
                    ),
                ));
            }
            let points = i
                .values
                .iter()
                .map(|(t, v)| Ok((*t, value(query, v)?)))
                .collect::<Result<Vec<_>, KubeError>>()?;
            Ok(RangeSeries {
                labels: i.metric,
                points,
            })
        })
        .collect()
}

/// Escapes a label value for a PromQL string literal.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_api_shapes() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1700000000.5,"2.5"]},
            {"metric":{"pod":"b"},"value":[1700000000.5,"NaN"]}]}}"#;
        let s =
            instant_series("q", parse_response("q", 200, vector).expect("parses")).expect("vector");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels.get("pod").map(String::as_str), Some("a"));
        assert_eq!(s[0].value, 2.5);
        assert!(
            s[1].value.is_nan(),
            "NaN survives parsing; the observation builder rejects it"
        );

        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"7"]}}"#;
        let s =
            instant_series("q", parse_response("q", 200, scalar).expect("parses")).expect("scalar");
        assert_eq!(
            s,
            vec![Series {
                labels: BTreeMap::new(),
                value: 7.0
            }]
        );

        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"1"],[2,"3"]]}]}}"#;
        let r =
            range_series("q", parse_response("q", 200, matrix).expect("parses")).expect("matrix");
        assert_eq!(r[0].points, vec![(1.0, 1.0), (2.0, 3.0)]);
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        let cases: &[(&[u8], u16, &str, &str)] = &[
            (
                br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
                400,
                "parse error",
                "Prometheus's own error is passed on",
            ),
            (
                b"<html>login</html>",
                200,
                "not the Prometheus API",
                "a proxy login page is not an answer",
            ),
            (
                br#"{"status":"success"}"#,
                200,
                "without data",
                "success needs data",
            ),
        ];
        for (body, status, needle, why) in cases {
            let err = parse_response("q", *status, body).expect_err(why);
            assert!(err.to_string().contains(needle), "{why}: {err}");
        }
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        let err = instant_series("q", parse_response("q", 200, matrix).expect("parses"))
            .expect_err("instant queries refuse matrices");
        assert!(err.to_string().contains("range selector"), "{err}");
        let bad = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#;
        assert!(
            instant_series("q", parse_response("q", 200, bad).expect("parses")).is_err(),
            "non-numeric sample"
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
