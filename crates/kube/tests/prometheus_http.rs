//! The Prometheus HTTP client against a local stand-in server: paths, parameters, bearer token, errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use mcpulse_kube::prometheus::{MetricsSource, PrometheusConfig, PrometheusHttp};

type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>, Option<String>)>>>;

async fn serve() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = |path: &'static str| {
        move |State(seen): State<Seen>,
              Query(q): Query<HashMap<String, String>>,
              headers: HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let query = q.get("query").cloned().unwrap_or_default();
            if let Ok(mut s) = seen.lock() {
                s.push((path.to_owned(), q, auth));
            }
            if query == "broken(" {
                return (
                    axum::http::StatusCode::BAD_REQUEST,
                    r#"{"status":"error","errorType":"bad_data","error":"unexpected end of input"}"#.to_owned(),
                );
            }
            let body = if path == "range" {
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[301,"2"]]}]}}"#
            } else {
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"web-0"},"value":[1,"4"]}]}}"#
            };
            (axum::http::StatusCode::OK, body.to_owned())
        }
    };
    let app = Router::new()
        .route("/api/v1/query", get(record("instant")))
        .route("/api/v1/query_range", get(record("range")))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), seen)
}

fn config(url: String, token_file: Option<std::path::PathBuf>) -> PrometheusConfig {
    PrometheusConfig {
        url,
        token_file,
        ca_file: None,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn queries_carry_parameters_and_a_fresh_bearer_token() {
    let (url, seen) = serve().await;
    let dir = std::env::temp_dir().join(format!("mcpulse-kube-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let token = dir.join("token");
    std::fs::write(&token, "first\n").expect("token");
    let prom = PrometheusHttp::new(&config(url, Some(token.clone()))).expect("client");

    let s = prom
        .instant(r#"sum by (pod) (mcp_queue_depth{namespace="a"})"#)
        .await
        .expect("answer");
    assert_eq!(s[0].value, 4.0);
    std::fs::write(&token, "rotated").expect("token");
    let r = prom
        .range("sum(x)", 0.0, 600.0, Duration::from_secs(300))
        .await
        .expect("answer");
    assert_eq!(r[0].points, vec![(1.0, 1.0), (301.0, 2.0)]);

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen[0].0, "instant");
    assert_eq!(
        seen[0].1.get("query").map(String::as_str),
        Some(r#"sum by (pod) (mcp_queue_depth{namespace="a"})"#)
    );
    assert_eq!(
        seen[0].2.as_deref(),
        Some("Bearer first"),
        "token read from the file, trimmed"
    );
    assert_eq!(seen[1].0, "range");
    assert_eq!(seen[1].1.get("step").map(String::as_str), Some("300"));
    assert_eq!(seen[1].1.get("end").map(String::as_str), Some("600.000"));
    assert_eq!(
        seen[1].2.as_deref(),
        Some("Bearer rotated"),
        "a rotated token is picked up"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn errors_say_what_went_wrong() {
    let (url, _) = serve().await;
    let prom = PrometheusHttp::new(&config(url, None)).expect("client");
    let err = prom.instant("broken(").await.expect_err("bad query");
    assert!(
        err.to_string()
            .contains("bad_data: unexpected end of input"),
        "{err}"
    );

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let prom = PrometheusHttp::new(&config(format!("http://{addr}"), None)).expect("client");
    let err = prom.instant("up").await.expect_err("nothing listens");
    assert!(err.to_string().contains("unreachable"), "{err}");

    for bad in ["prometheus:9090", "ftp://x"] {
        let err = PrometheusHttp::new(&config(bad.into(), None)).expect_err("not http");
        assert!(err.to_string().contains("--prometheus-url"), "{bad}: {err}");
    }
    let not_pem = std::env::temp_dir().join(format!("mcpulse-kube-ca-{}.pem", std::process::id()));
    std::fs::write(&not_pem, "just text").expect("temp file");
    let with_ca = PrometheusConfig {
        ca_file: Some(not_pem.clone()),
        ..config("https://p:9090".into(), None)
    };
    let err = PrometheusHttp::new(&with_ca).expect_err("no certificate in the CA file");
    assert!(
        err.to_string().contains("--prometheus-ca-file")
            && err.to_string().contains("no PEM certificate"),
        "{err}"
    );
    let _ = std::fs::remove_file(not_pem);

    let missing = config("http://x".into(), Some("/nonexistent/token".into()));
    let prom = PrometheusHttp::new(&missing).expect("the token is read per query");
    let err = prom.instant("up").await.expect_err("no token file");
    assert!(err.to_string().contains("--prometheus-token-file"), "{err}");
}
