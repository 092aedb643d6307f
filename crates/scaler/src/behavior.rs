//! Recommendation and scale-event history, stabilization windows and rate-limit policies (legacy and behavior).

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::replicas::ceil_replicas;
use crate::spec::{
    HpaScalingPolicy, HpaScalingPolicyType, ResolvedBehavior, ScalingPolicySelect, ScalingRules,
};
use crate::time::Timestamp;

/// Most entries kept per history. Upstream reuses expired slots, so the length is the number of
/// decisions inside the longest window; this cap only matters if `decide` is called far faster than
/// a sync period, and then the oldest entry is overwritten to keep memory bounded.
const MAX_HISTORY: usize = 4096;

/// Legacy scale-up limit: at most double, or four, whichever is more.
const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampedRecommendation {
    pub recommendation: i32,
    pub timestamp: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    pub replica_change: i32,
    pub timestamp: Timestamp,
    /// Older than the longest policy period at the last store: the slot may be reused.
    pub outdated: bool,
}

/// What the engine remembers between decisions for one workload.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalerState {
    pub recommendations: Vec<TimestampedRecommendation>,
    pub scale_up_events: Vec<ScaleEvent>,
    pub scale_down_events: Vec<ScaleEvent>,
}

/// Which bound held the stabilized recommendation back, as upstream's ScalingLimited condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limited {
    pub replicas: i32,
    pub reason: &'static str,
    pub message: &'static str,
    pub policy: Option<HpaScalingPolicy>,
}

const WITHIN_RANGE: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const SCALE_UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);

fn limited(
    replicas: i32,
    (reason, message): (&'static str, &'static str),
    policy: Option<HpaScalingPolicy>,
) -> Limited {
    Limited {
        replicas,
        reason,
        message,
        policy,
    }
}

fn to_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

impl ScalerState {
    /// Replaces the slot at `old` (an expired entry) or appends, keeping the history bounded.
    fn record(&mut self, old: Option<usize>, rec: TimestampedRecommendation) {
        let slot = old.or_else(|| {
            (self.recommendations.len() >= MAX_HISTORY).then(|| {
                let oldest = self
                    .recommendations
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, r)| r.timestamp);
                oldest.map_or(0, |(i, _)| i)
            })
        });
        match slot.and_then(|i| self.recommendations.get_mut(i)) {
            Some(s) => *s = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// Legacy stabilization: the highest recommendation not older than `window` (cut-off inclusive).
    pub(crate) fn stabilize_legacy(
        &mut self,
        desired: i32,
        window: Duration,
        now: Timestamp,
    ) -> i32 {
        let cutoff = now.minus(window);
        let mut max = desired;
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.timestamp < cutoff {
                old = Some(i);
            } else if r.recommendation > max {
                max = r.recommendation;
            }
        }
        self.record(
            old,
            TimestampedRecommendation {
                recommendation: desired,
                timestamp: now,
            },
        );
        max
    }

    /// Behavior stabilization: clamp `current` between the lowest recommendation of the scale-up
    /// window and the highest of the scale-down window (both cut-offs exclusive, as upstream).
    pub(crate) fn stabilize(
        &mut self,
        desired: i32,
        current: i32,
        behavior: &ResolvedBehavior,
        now: Timestamp,
    ) -> (i32, &'static str, &'static str) {
        let up_cutoff = now.minus_secs(behavior.scale_up.stabilization_window_seconds);
        let down_cutoff = now.minus_secs(behavior.scale_down.stabilization_window_seconds);
        let (mut up, mut down) = (desired, desired);
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.timestamp > up_cutoff {
                up = up.min(r.recommendation);
            }
            if r.timestamp > down_cutoff {
                down = down.max(r.recommendation);
            }
            if r.timestamp < up_cutoff && r.timestamp < down_cutoff {
                old = Some(i);
            }
        }
        let recommendation = current.max(up).min(down);
        self.record(
            old,
            TimestampedRecommendation {
                recommendation: desired,
                timestamp: now,
            },
        );
        if desired >= current {
            (
                recommendation,
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            )
        } else {
            (
                recommendation,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        }
    }

    /// Net replicas added (or removed) by events strictly inside the last `period_seconds`.
    fn change_in_period(events: &[ScaleEvent], period_seconds: i32, now: Timestamp) -> i64 {
        let cutoff = now.minus_secs(period_seconds);
        events
            .iter()
            .filter(|e| e.timestamp > cutoff)
            .map(|e| i64::from(e.replica_change))
            .sum()
    }

    fn period_start(&self, current: i32, p: &HpaScalingPolicy, now: Timestamp) -> i64 {
        i64::from(current) - Self::change_in_period(&self.scale_up_events, p.period_seconds, now)
            + Self::change_in_period(&self.scale_down_events, p.period_seconds, now)
    }

    /// The highest replica count the scale-up policies allow now, and the policy that set it.
    fn scale_up_limit(
        &self,
        current: i32,
        rules: &ScalingRules,
        now: Timestamp,
    ) -> (i32, Option<HpaScalingPolicy>) {
        let pick_min = match rules.select_policy {
            ScalingPolicySelect::Disabled => return (current, None),
            ScalingPolicySelect::Min => true,
            ScalingPolicySelect::Max => false,
        };
        let mut best: Option<(i32, HpaScalingPolicy)> = None;
        for p in &rules.policies {
            let start = self.period_start(current, p, now);
            let proposed = match p.type_ {
                HpaScalingPolicyType::Pods => to_i32(start + i64::from(p.value)),
                // Rounded up so that a small percentage of a small count still allows one pod.
                HpaScalingPolicyType::Percent => {
                    ceil_replicas(start as f64 * (1.0 + f64::from(p.value) / 100.0))
                }
            };
            let better =
                best.is_none_or(|(b, _)| if pick_min { proposed < b } else { proposed > b });
            if better {
                best = Some((proposed, *p));
            }
        }
        best.map_or((current, None), |(v, p)| (v, Some(p)))
    }

    /// The lowest replica count the scale-down policies allow now, and the policy that set it.
    fn scale_down_limit(
        &self,
        current: i32,
        rules: &ScalingRules,
        now: Timestamp,
    ) -> (i32, Option<HpaScalingPolicy>) {
        let pick_max = match rules.select_policy {
            ScalingPolicySelect::Disabled => return (current, None),
            ScalingPolicySelect::Min => true,
            ScalingPolicySelect::Max => false,
        };
        let mut best: Option<(i32, HpaScalingPolicy)> = None;
        for p in &rules.policies {
            let start = self.period_start(current, p, now);
            let proposed = match p.type_ {
                HpaScalingPolicyType::Pods => to_i32(start - i64::from(p.value)),
                // Truncated (Go int32 conversion), so the replicas that stay are rounded down.
                HpaScalingPolicyType::Percent => {
                    let v = start as f64 * (1.0 - f64::from(p.value) / 100.0);
                    v.trunc().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
                }
            };
            let better =
                best.is_none_or(|(b, _)| if pick_max { proposed > b } else { proposed < b });
            if better {
                best = Some((proposed, *p));
            }
        }
        best.map_or((current, None), |(v, p)| (v, Some(p)))
    }

    /// `convertDesiredReplicasWithBehaviorRate`: applies the policies and min/max to a stabilized value.
    pub(crate) fn limit_with_behavior(
        &self,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        behavior: &ResolvedBehavior,
        now: Timestamp,
    ) -> Limited {
        if desired > current {
            let (limit, policy) = self.scale_up_limit(current, &behavior.scale_up, now);
            // Events still inside their period may push the limit under current: hold, never shrink.
            let limit = limit.max(current);
            let (bound, why, policy) = if max > limit {
                (limit, SCALE_UP_LIMIT, policy)
            } else {
                (max, TOO_MANY, None)
            };
            if desired > bound {
                return limited(bound, why, policy);
            }
        } else if desired < current {
            let (limit, policy) = self.scale_down_limit(current, &behavior.scale_down, now);
            let limit = limit.min(current);
            let (bound, why, policy) = if min < limit {
                (limit, SCALE_DOWN_LIMIT, policy)
            } else {
                (min, TOO_FEW, None)
            };
            if desired < bound {
                return limited(bound, why, policy);
            }
        }
        limited(desired, WITHIN_RANGE, None)
    }

    /// Remembers an applied scale so later policy periods count it; only the behavior path uses events.
    pub(crate) fn store_scale_event(
        &mut self,
        behavior: &ResolvedBehavior,
        prev: i32,
        new: i32,
        now: Timestamp,
    ) {
        let (events, rules, change) = if new > prev {
            (&mut self.scale_up_events, &behavior.scale_up, new - prev)
        } else {
            (
                &mut self.scale_down_events,
                &behavior.scale_down,
                prev - new,
            )
        };
        let cutoff = now.minus_secs(rules.longest_period());
        let mut old = None;
        for (i, e) in events.iter_mut().enumerate() {
            if e.timestamp < cutoff {
                e.outdated = true;
            }
            if e.outdated {
                old = Some(i);
            }
        }
        if old.is_none() && events.len() >= MAX_HISTORY {
            old = events
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.timestamp)
                .map(|(i, _)| i);
        }
        let event = ScaleEvent {
            replica_change: change,
            timestamp: now,
            outdated: false,
        };
        match old.and_then(|i| events.get_mut(i)) {
            Some(slot) => *slot = event,
            None => events.push(event),
        }
    }
}

/// `convertDesiredReplicasWithRules`: the legacy clamp with its fixed scale-up rate.
pub(crate) fn limit_legacy(current: i32, desired: i32, min: i32, max: i32) -> Limited {
    let scale_up_limit = (SCALE_UP_LIMIT_FACTOR * f64::from(current)).max(SCALE_UP_LIMIT_MINIMUM);
    let scale_up_limit = scale_up_limit.min(f64::from(i32::MAX)) as i32;
    let (max_allowed, why) = if max > scale_up_limit {
        (scale_up_limit, SCALE_UP_LIMIT)
    } else {
        (max, TOO_MANY)
    };
    if desired < min {
        limited(min, TOO_FEW, None)
    } else if desired > max_allowed {
        limited(max_allowed, why, None)
    } else {
        limited(desired, WITHIN_RANGE, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(1_000 + secs)
    }

    fn rules(
        select: ScalingPolicySelect,
        policies: &[(HpaScalingPolicyType, i32, i32)],
    ) -> ScalingRules {
        ScalingRules {
            stabilization_window_seconds: 0,
            select_policy: select,
            policies: policies
                .iter()
                .map(|(type_, value, period_seconds)| HpaScalingPolicy {
                    type_: *type_,
                    value: *value,
                    period_seconds: *period_seconds,
                })
                .collect(),
            tolerance: None,
        }
    }

    /// (select, policies as (type, value, period), current, desired, expected, reason)
    type UpRow = (
        ScalingPolicySelect,
        Vec<(HpaScalingPolicyType, i32, i32)>,
        i32,
        i32,
        i32,
        &'static str,
    );
    /// (select, policies as (type, value, period), current, expected, reason)
    type DownRow = (
        ScalingPolicySelect,
        Vec<(HpaScalingPolicyType, i32, i32)>,
        i32,
        i32,
        &'static str,
    );

    use HpaScalingPolicyType::{Percent, Pods};
    use ScalingPolicySelect::{Disabled, Max, Min};

    #[test]
    fn legacy_limit_table() {
        // (current, desired, min, max, expected, reason, why)
        let rows = [
            (
                3,
                10,
                1,
                100,
                6,
                "ScaleUpLimit",
                "legacy scale-up is at most double",
            ),
            (
                1,
                10,
                1,
                100,
                4,
                "ScaleUpLimit",
                "or four pods when double is less",
            ),
            (
                3,
                10,
                1,
                5,
                5,
                "TooManyReplicas",
                "max below the rate limit bounds first",
            ),
            (
                5,
                0,
                2,
                10,
                2,
                "TooFewReplicas",
                "below min is lifted to min",
            ),
            (
                5,
                7,
                1,
                10,
                7,
                "DesiredWithinRange",
                "inside every bound passes",
            ),
        ];
        for (current, desired, min, max, want, reason, why) in rows {
            let l = limit_legacy(current, desired, min, max);
            assert_eq!((l.replicas, l.reason), (want, reason), "{why}");
        }
    }

    #[test]
    fn policy_selection_table() {
        // (select, policies, current, desired, expected, why)
        let rows: Vec<UpRow> = vec![
            (
                Max,
                vec![(Pods, 4, 15), (Percent, 100, 15)],
                10,
                50,
                20,
                "Max picks +100 % over +4",
            ),
            (
                Max,
                vec![(Pods, 4, 15), (Percent, 100, 15)],
                1,
                50,
                5,
                "Max picks +4 over +100 % of one",
            ),
            (
                Min,
                vec![(Pods, 4, 15), (Percent, 100, 15)],
                10,
                50,
                14,
                "Min picks the smaller change",
            ),
            (
                Disabled,
                vec![(Pods, 4, 15)],
                10,
                50,
                10,
                "Disabled freezes scale-up",
            ),
            (
                Max,
                vec![(Percent, 10, 60)],
                3,
                50,
                4,
                "percent is rounded up so small counts still grow",
            ),
        ];
        for (select, policies, current, desired, want, why) in rows {
            let b = ResolvedBehavior {
                scale_up: rules(select, &policies),
                scale_down: ScalingRules::default_scale_down(300),
            };
            let l = ScalerState::default().limit_with_behavior(current, desired, 1, 1000, &b, t(0));
            assert_eq!(l.replicas, want, "{why}");
        }
        let down_rows: Vec<DownRow> = vec![
            (
                Max,
                vec![(Pods, 2, 60), (Percent, 50, 60)],
                10,
                5,
                "Max removes the most: 50 % of 10",
            ),
            (
                Min,
                vec![(Pods, 2, 60), (Percent, 50, 60)],
                10,
                8,
                "Min removes the fewest: 2 pods",
            ),
            (
                Disabled,
                vec![(Pods, 2, 60)],
                10,
                10,
                "Disabled freezes scale-down",
            ),
            (
                Max,
                vec![(Percent, 10, 60)],
                15,
                13,
                "percent truncates what stays: 13.5 -> 13",
            ),
        ];
        for (select, policies, current, want, why) in down_rows {
            let b = ResolvedBehavior {
                scale_up: ScalingRules::default_scale_up(),
                scale_down: rules(select, &policies),
            };
            let l = ScalerState::default().limit_with_behavior(current, 1, 1, 1000, &b, t(0));
            assert_eq!(l.replicas, want, "{why}");
        }
    }

    #[test]
    fn period_slides_over_scale_events() {
        let b = ResolvedBehavior {
            scale_up: rules(Max, &[(Pods, 2, 60)]),
            scale_down: ScalingRules::default_scale_down(300),
        };
        let mut s = ScalerState::default();
        s.store_scale_event(&b, 4, 6, t(0));
        // (now, expected upper bound from 6 current, why)
        let rows = [
            (10, 6, "the +2 made 10 s ago uses the whole 60 s budget"),
            (59, 6, "still inside the period"),
            (
                60,
                8,
                "the event sits exactly on the cut-off, which is exclusive: budget restored",
            ),
            (61, 8, "outside the period"),
        ];
        for (now, want, why) in rows {
            assert_eq!(
                s.limit_with_behavior(6, 100, 1, 100, &b, t(now)).replicas,
                want,
                "{why}"
            );
        }
        // A later event reuses the slot of the outdated one instead of growing the history.
        s.store_scale_event(&b, 6, 8, t(200));
        assert_eq!(s.scale_up_events.len(), 1);
    }

    #[test]
    fn stabilization_windows() {
        let b = ResolvedBehavior {
            scale_up: ScalingRules {
                stabilization_window_seconds: 60,
                ..ScalingRules::default_scale_up()
            },
            scale_down: ScalingRules::default_scale_down(300),
        };
        let mut s = ScalerState::default();
        assert_eq!(
            s.stabilize(10, 5, &b, t(0)).0,
            10,
            "first sample: nothing to stabilize against"
        );
        assert_eq!(
            s.stabilize(4, 10, &b, t(100)).0,
            10,
            "scale-down held by the 10 seen 100 s ago"
        );
        assert_eq!(
            s.stabilize(4, 10, &b, t(301)).0,
            4,
            "the 10 left the 300 s window"
        );
        let mut s = ScalerState::default();
        s.stabilize(6, 5, &b, t(0));
        assert_eq!(
            s.stabilize(20, 5, &b, t(30)).0,
            6,
            "scale-up window applies the lowest recent (6)"
        );
        let mut legacy = ScalerState::default();
        legacy.stabilize_legacy(9, Duration::from_secs(300), t(0));
        assert_eq!(
            legacy.stabilize_legacy(3, Duration::from_secs(300), t(300)),
            9,
            "legacy cut-off is inclusive"
        );
        assert_eq!(
            legacy.stabilize_legacy(3, Duration::from_secs(300), t(301)),
            3,
            "expired after the window"
        );
        assert_eq!(legacy.recommendations.len(), 2, "expired slot reused");
    }
}
