//! What the fleet looks like over time: a bounded history of samples and decisions, shared by the autoscaler
//! loop (which writes it), the console and `mcpulse status` (which read it).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Samples kept for the charts: one per second, so 15 minutes.
const HISTORY: usize = 900;
/// Decisions kept for the log.
const DECISIONS: usize = 200;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the fleet started.
    pub t: f64,
    /// Requests per second through the gateway.
    pub rate: f64,
    /// 95th percentile of operation latency over the last second, in seconds (`None` without traffic).
    pub p95_seconds: Option<f64>,
    /// Requests being served or waiting, summed over agents.
    pub in_flight: f64,
    pub current_replicas: u32,
    /// What was applied: the larger of the reactive and the trusted predictive recommendations.
    pub desired_replicas: u32,
    /// The HPA algorithm's recommendation on in-flight requests.
    pub desired_reactive: u32,
    /// The forecast's recommendation, while prediction is trusted.
    pub desired_predictive: Option<u32>,
    /// Forecast of the request rate for this instant, made one look-ahead earlier (when prediction is on).
    pub forecast: Option<(f64, f64, f64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub t: f64,
    pub current: u32,
    pub desired: u32,
    /// The engine's one-line explanation.
    pub explanation: String,
}

#[derive(Clone, Debug, Default)]
pub struct History {
    pub samples: VecDeque<Sample>,
    pub decisions: VecDeque<DecisionRecord>,
    pub restarts: u64,
}

impl History {
    pub fn push_sample(&mut self, sample: Sample) {
        if self.samples.len() == HISTORY {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn push_decision(&mut self, decision: DecisionRecord) {
        if self.decisions.len() == DECISIONS {
            self.decisions.pop_front();
        }
        self.decisions.push_back(decision);
    }
}

/// Where a running fleet listens, written to the data directory so `mcpulse status` can find it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetFile {
    pub pid: u32,
    pub registry: String,
    pub gateway: String,
    pub gateway_metrics: String,
    pub console: String,
    /// Absent when the fleet runs without Prometheus and Alertmanager.
    #[serde(default)]
    pub prometheus: Option<String>,
    #[serde(default)]
    pub alertmanager: Option<String>,
}

impl FleetFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("fleet.json")
    }

    pub fn read(data_dir: &Path) -> Result<Self, String> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {}: {e}; is `mcpulse up --data-dir {}` running?",
                path.display(),
                data_dir.display()
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a fleet file: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded() {
        let mut history = History::default();
        for n in 0..(HISTORY + 10) {
            history.push_sample(Sample {
                t: n as f64,
                ..Sample::default()
            });
        }
        assert_eq!(history.samples.len(), HISTORY);
        assert_eq!(
            history.samples.front().map(|s| s.t),
            Some(10.0),
            "the oldest samples go first"
        );
    }
}
