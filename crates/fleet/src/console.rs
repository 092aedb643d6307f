//! The console: one page that shows the fleet live (charts refreshed every few seconds, the decision log), and
//! the same data as JSON for scripts and `mcpulse status`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

use crate::chart::{Line, line_chart};
use crate::state::{FleetFile, History};

/// One agent as the console shows it.
#[derive(Clone, Debug, Serialize)]
pub struct AgentView {
    pub id: u32,
    pub endpoint: String,
    pub metrics: String,
    pub pid: u32,
    /// `running`, `draining`, `stopping` or `crash-backoff`.
    pub phase: String,
    pub sessions: u64,
    pub in_flight: f64,
}

#[derive(Default)]
pub struct Live {
    pub history: History,
    pub agents: Vec<AgentView>,
    pub desired: u32,
    /// Firing alerts from Alertmanager; `None` when the fleet runs without it.
    pub alerts: Option<Vec<crate::FiringAlert>>,
    pub prediction: crate::predict::Prediction,
}

#[derive(Clone)]
pub struct Console {
    pub live: Arc<Mutex<Live>>,
    pub addresses: FleetFile,
    pub http: reqwest::Client,
}

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/api/history", get(history))
        .route("/chart/{name}", get(chart))
        .with_state(console)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// The fleet in one object: replicas, instances with their registry health, recent decisions.
async fn status(State(console): State<Console>) -> Response {
    let registry = format!(
        "http://{}/api/v1/instances?limit=1000",
        console.addresses.registry
    );
    let instances: Vec<Value> = match console.http.get(&registry).send().await {
        Ok(answer) => answer
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["instances"].as_array().cloned())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let Ok(live) = console.live.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let last = live.history.samples.back();
    let health_of = |endpoint: &str| {
        instances
            .iter()
            .find(|i| i["endpoint"].as_str() == Some(endpoint))
            .and_then(|i| i["state"].as_str())
            .unwrap_or("unregistered")
            .to_owned()
    };
    let agents: Vec<Value> = live
        .agents
        .iter()
        .map(|a| {
            let endpoint = format!("{}/mcp", a.endpoint);
            json!({
                "id": a.id, "endpoint": endpoint, "health": health_of(&endpoint), "phase": a.phase,
                "sessions": a.sessions, "in_flight": a.in_flight, "metrics": a.metrics, "pid": a.pid,
            })
        })
        .collect();
    let current = live.agents.iter().filter(|a| a.phase != "stopping").count();
    let body = json!({
        "replicas": {"current": current, "desired": live.desired},
        "instances": agents,
        "decisions": live.history.decisions.iter().rev().take(20).collect::<Vec<_>>(),
        "rate": last.map(|s| s.rate),
        "p95_ms": last.and_then(|s| s.p95_seconds).map(|s| s * 1000.0),
        "in_flight": last.map(|s| s.in_flight),
        "restarts": live.history.restarts,
        "prediction": live.prediction,
        "alerts": live.alerts.clone().unwrap_or_default(),
        "monitoring": live.alerts.is_some(),
        "addresses": console.addresses,
    });
    axum::Json(body).into_response()
}

async fn history(State(console): State<Console>) -> Response {
    match console.live.lock() {
        Ok(live) => axum::Json(json!({ "samples": live.history.samples })).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn chart(State(console): State<Console>, Path(name): Path<String>) -> Response {
    let svg = {
        let Ok(live) = console.live.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let samples = &live.history.samples;
        let series = |f: &dyn Fn(&crate::state::Sample) -> Option<f64>| -> Vec<(f64, f64)> {
            samples
                .iter()
                .filter_map(|s| f(s).map(|v| (s.t, v)))
                .collect()
        };
        match name.trim_end_matches(".svg") {
            "load" => {
                let band: Vec<(f64, f64, f64)> = samples
                    .iter()
                    .filter_map(|s| s.forecast.map(|(_, lo, hi)| (s.t, lo, hi)))
                    .collect();
                let lines = [Line {
                    name: "requests/s",
                    points: series(&|s| Some(s.rate)),
                }];
                line_chart("Offered load", "requests/s", &lines, &band)
            }
            "replicas" => {
                let lines = [
                    Line {
                        name: "desired (applied)",
                        points: series(&|s| Some(f64::from(s.desired_replicas))),
                    },
                    Line {
                        name: "current",
                        points: series(&|s| Some(f64::from(s.current_replicas))),
                    },
                    Line {
                        name: "reactive (HPA)",
                        points: series(&|s| Some(f64::from(s.desired_reactive))),
                    },
                    Line {
                        name: "predictive",
                        points: series(&|s| s.desired_predictive.map(f64::from)),
                    },
                ];
                line_chart(
                    "Replicas: desired per policy vs current",
                    "agents",
                    &lines,
                    &[],
                )
            }
            "latency" => {
                let lines = [Line {
                    name: "p95",
                    points: series(&|s| s.p95_seconds.map(|p| p * 1000.0)),
                }];
                line_chart("p95 latency", "ms", &lines, &[])
            }
            "queue" => {
                let lines = [Line {
                    name: "in flight + queued",
                    points: series(&|s| Some(s.in_flight)),
                }];
                line_chart("Requests in flight and queued", "requests", &lines, &[])
            }
            _ => {
                return (
                    StatusCode::NOT_FOUND,
                    "charts: load, replicas, latency, queue",
                )
                    .into_response();
            }
        }
    };
    match svg {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error).into_response(),
    }
}

/// The page refreshes its charts and decision log every two seconds with a few lines of its own script.
const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mcpulse fleet</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
 h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
 .kpis span { display: inline-block; margin-right: 1.5rem; font-size: 1.05rem; }
 .kpis b { font-size: 1.4rem; }
 .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: .8rem; margin: 1rem 0; }
 .charts img { width: 100%; border: 1px solid #ddd; border-radius: 4px; }
 table { border-collapse: collapse; font-size: .9rem; width: 100%; }
 td, th { border-bottom: 1px solid #eee; padding: .25rem .5rem; text-align: left; vertical-align: top; }
 .healthy { color: #2a7; } .unhealthy, .gone { color: #c33; }
</style></head>
<body>
<h1>mcpulse fleet</h1>
<div class="kpis" id="kpis">loading…</div>
<div class="charts">
 <img id="chart-load" alt="offered load" src="/chart/load.svg">
 <img id="chart-replicas" alt="replicas" src="/chart/replicas.svg">
 <img id="chart-latency" alt="p95 latency" src="/chart/latency.svg">
 <img id="chart-queue" alt="in flight" src="/chart/queue.svg">
</div>
<h2>Alerts firing</h2><table id="alerts"></table>
<h2>Agents</h2><table id="agents"></table>
<h2>Scaling decisions</h2><table id="decisions"></table>
<script>
const text = v => (v === null || v === undefined) ? "–" : v;
const esc = v => String(v).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
async function refresh() {
  const s = await (await fetch("/api/status")).json();
  document.getElementById("kpis").innerHTML =
    `<span>replicas <b>${s.replicas.current}</b> / desired <b>${s.replicas.desired}</b></span>` +
    `<span>rate <b>${text(s.rate && s.rate.toFixed(1))}</b> req/s</span>` +
    `<span>p95 <b>${text(s.p95_ms && s.p95_ms.toFixed(0))}</b> ms</span>` +
    `<span>in flight <b>${text(s.in_flight)}</b></span><span>restarts <b>${s.restarts}</b></span>` +
    `<span>alerts firing <b>${s.monitoring ? s.alerts.length : "–"}</b></span>` +
    `<span>prediction <b>${s.prediction.state === "trusted" ? s.prediction.replicas + " agents" : "off"}</b>` +
    `${s.prediction.state === "trusted" ? "" : " (" + esc(s.prediction.reason) + ")"}</span>`;
  document.getElementById("agents").innerHTML = "<tr><th>agent</th><th>endpoint</th><th>health</th><th>phase</th><th>sessions</th></tr>" +
    s.instances.map(i => `<tr><td>${i.id}</td><td>${esc(i.endpoint)}</td><td class="${esc(i.health)}">${esc(i.health)}</td><td>${esc(i.phase)}</td><td>${i.sessions}</td></tr>`).join("");
  document.getElementById("alerts").innerHTML = !s.monitoring
    ? "<tr><td>Prometheus and Alertmanager are not running with this fleet.</td></tr>"
    : s.alerts.length === 0 ? "<tr><td>none</td></tr>"
    : "<tr><th>alert</th><th>severity</th><th>where</th><th>summary</th></tr>" + s.alerts.map(a =>
      `<tr><td>${esc(a.name)}</td><td>${esc(a.severity)}</td><td>${esc(a.labels.pod || a.labels.service || "")}</td><td>${esc(a.summary)}</td></tr>`).join("");
  document.getElementById("decisions").innerHTML = "<tr><th>t (s)</th><th>replicas</th><th>why</th></tr>" +
    s.decisions.map(d => `<tr><td>${d.t.toFixed(0)}</td><td>${d.current} → ${d.desired}</td><td>${esc(d.explanation)}</td></tr>`).join("");
  for (const name of ["load", "replicas", "latency", "queue"]) {
    document.getElementById("chart-" + name).src = `/chart/${name}.svg?t=${Date.now()}`;
  }
}
refresh(); setInterval(refresh, 2000);
</script>
</body></html>
"#;
