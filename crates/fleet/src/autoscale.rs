//! The local autoscaler: the same HPA-exact engine as on Kubernetes, fed with each agent's in-flight requests
//! as a Pods metric (average value per agent), exactly as an HPA on the queue-depth custom metric would be.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcpulse_scaler::{
    AutoscalerSpec, ConditionStatus, ControllerConfig, Decision, MetricObservation, Observation,
    PodInfo, PodPhase, PodSample, Quantity, ReadyCondition, Scaler, Timestamp,
};

use crate::FleetError;

/// One agent as the engine sees it: a pod, with its average in-flight requests when the gateway reports it.
pub struct AgentLoad {
    pub name: String,
    pub started: Timestamp,
    /// `None` until the gateway routes to it (then it is not ready, and its load is unknown).
    pub in_flight: Option<f64>,
}

pub struct Autoscaler {
    scaler: Scaler,
    period: Duration,
}

pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

impl Autoscaler {
    pub fn new(
        min: u32,
        max: u32,
        target_in_flight: f64,
        scale_down_window: Duration,
        period: Duration,
    ) -> Result<Self, FleetError> {
        let spec = serde_json::json!({
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": [{
                "type": "Pods",
                "pods": {
                    "metric": {"name": "mcp_requests_in_flight"},
                    "target": {"type": "AverageValue", "averageValue": target_in_flight.to_string()}
                }
            }],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": scale_down_window.as_secs()},
                "scaleUp": {"stabilizationWindowSeconds": 0}
            }
        });
        let spec: AutoscalerSpec =
            serde_json::from_value(spec).map_err(|e| FleetError::Config {
                field: "autoscaler".into(),
                message: e.to_string(),
            })?;
        let scaler =
            Scaler::new(&spec, ControllerConfig::default()).map_err(|e| FleetError::Config {
                field: "autoscaler".into(),
                message: e.to_string(),
            })?;
        Ok(Self { scaler, period })
    }

    /// Records this decision's trusted prediction (if any) and returns the highest of the scale-down window.
    pub fn hold_prediction(&mut self, predicted: Option<u32>, at: Timestamp) -> Option<u32> {
        let predicted = predicted.map(|p| i32::try_from(p).unwrap_or(i32::MAX));
        self.scaler
            .hold_prediction(predicted, at)
            .map(|held| u32::try_from(held.max(0)).unwrap_or(0))
    }

    /// One decision for `current` replicas given each agent's load.
    pub fn decide(
        &mut self,
        agents: &[AgentLoad],
        current: u32,
        at: Timestamp,
    ) -> Result<Decision, FleetError> {
        let current = i32::try_from(current).unwrap_or(i32::MAX);
        let pods = agents
            .iter()
            .map(|a| PodInfo {
                name: a.name.clone(),
                phase: PodPhase::Running,
                deleting: false,
                start_time: Some(a.started),
                ready: Some(ReadyCondition {
                    status: if a.in_flight.is_some() {
                        ConditionStatus::True
                    } else {
                        ConditionStatus::False
                    },
                    last_transition_time: a.started,
                }),
            })
            .collect();
        let samples = agents
            .iter()
            .filter_map(|a| {
                let value = Quantity::from_f64(a.in_flight?.max(0.0)).ok()?;
                Some(PodSample {
                    pod: a.name.clone(),
                    value,
                    timestamp: at,
                    window: self.period,
                })
            })
            .collect();
        let observation = Observation {
            spec_replicas: current,
            status_replicas: current,
            pods,
            metrics: vec![MetricObservation::Pods { samples }],
        };
        self.scaler
            .decide(&observation, at)
            .map_err(|e| FleetError::Scaling(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(values: &[Option<f64>], started: Timestamp) -> Vec<AgentLoad> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| AgentLoad {
                name: format!("agent-{i}"),
                started,
                in_flight: *v,
            })
            .collect()
    }

    #[test]
    fn scales_out_on_in_flight_and_back_in_after_the_window() {
        let start = Timestamp::from_secs(1_000_000);
        let later = |secs: i64| Timestamp::from_secs(1_000_000 + secs);
        let mut scaler =
            Autoscaler::new(1, 10, 2.0, Duration::from_secs(30), Duration::from_secs(5)).unwrap();
        let busy = scaler
            .decide(&loads(&[Some(8.0), Some(8.0)], start), 2, later(60))
            .unwrap();
        assert_eq!(
            busy.desired_replicas, 6,
            "16 in flight wants 8, but scale-up adds at most 4 pods per 15 s"
        );
        let still_busy = loads(&[Some(2.5); 6], start);
        let next = scaler.decide(&still_busy, 6, later(76)).unwrap();
        assert_eq!(next.desired_replicas, 8, "15 in flight at 2 per agent");
        let idle = loads(&[Some(0.0); 8], start);
        let held = scaler.decide(&idle, 8, later(86)).unwrap();
        assert_eq!(
            held.desired_replicas, 8,
            "inside the 30 s scale-down window"
        );
        let after = scaler.decide(&idle, 8, later(107)).unwrap();
        assert_eq!(
            after.desired_replicas, 1,
            "after the window it scales to the minimum"
        );
    }

    #[test]
    fn a_prediction_is_held_for_the_fleets_scale_down_window() {
        let at = |secs: i64| Timestamp::from_secs(3_000_000 + secs);
        let mut scaler =
            Autoscaler::new(1, 10, 2.0, Duration::from_secs(30), Duration::from_secs(5)).unwrap();
        assert_eq!(scaler.hold_prediction(Some(6), at(0)), Some(6));
        assert_eq!(
            scaler.hold_prediction(None, at(30)),
            Some(6),
            "an untrusted forecast does not release the agents within the 30 s window"
        );
        assert_eq!(
            scaler.hold_prediction(Some(2), at(31)),
            Some(2),
            "past the window the newer, lower prediction stands"
        );
    }

    #[test]
    fn agents_unknown_to_the_gateway_do_not_drag_the_average_down() {
        let start = Timestamp::from_secs(2_000_000);
        let mut scaler =
            Autoscaler::new(1, 10, 2.0, Duration::from_secs(30), Duration::from_secs(5)).unwrap();
        let decision = scaler
            .decide(
                &loads(&[Some(6.0), None], start),
                2,
                Timestamp::from_secs(2_000_060),
            )
            .unwrap();
        assert!(
            decision.desired_replicas >= 3,
            "a new agent without data counts as idle only when scaling up: {}",
            decision.log_line()
        );
    }
}
