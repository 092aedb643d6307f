//! The signals the local autoscaler and console use, derived from two consecutive scrapes of the gateway, the way
//! Prometheus would derive them (`rate`, `histogram_quantile`), so the numbers match the dashboards.

use std::collections::BTreeMap;

use mcpulse_telemetry::Exposition;

const DURATION: &str = "mcp_server_operation_duration_seconds";

/// Cumulative operation counts of one scrape: total and per histogram bucket (`le` → count).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub total: f64,
    pub buckets: BTreeMap<OrderedLe, f64>,
}

/// A bucket bound that sorts numerically (`+Inf` last).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderedLe(pub f64);

impl Eq for OrderedLe {}

impl PartialOrd for OrderedLe {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedLe {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Sums the operation histogram over every label set.
pub fn counts(scrape: &Exposition) -> Counts {
    let mut counts = Counts::default();
    for sample in scrape.families.iter().flat_map(|f| &f.samples) {
        if sample.name == format!("{DURATION}_count") {
            counts.total += sample.value;
        } else if sample.name == format!("{DURATION}_bucket")
            && let Some(le) = sample
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| v)
        {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            if !bound.is_nan() {
                *counts.buckets.entry(OrderedLe(bound)).or_default() += sample.value;
            }
        }
    }
    counts
}

/// Requests per second between two scrapes `seconds` apart; a counter reset (restart) reads as zero.
pub fn rate(before: &Counts, after: &Counts, seconds: f64) -> f64 {
    if seconds <= 0.0 || after.total < before.total {
        return 0.0;
    }
    (after.total - before.total) / seconds
}

/// The `q` quantile of operations completed between two scrapes, interpolated inside the bucket like
/// Prometheus' `histogram_quantile`; `None` when nothing completed.
pub fn quantile(before: &Counts, after: &Counts, q: f64) -> Option<f64> {
    let deltas: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .map(|(le, count)| {
            (
                le.0,
                (count - before.buckets.get(le).copied().unwrap_or(0.0)).max(0.0),
            )
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (bound, count) in deltas {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower_bound);
            }
            let width = count - lower_count;
            let fraction = if width > 0.0 {
                (rank - lower_count) / width
            } else {
                1.0
            };
            return Some(lower_bound + (bound - lower_bound) * fraction);
        }
        lower_bound = bound;
        lower_count = count;
    }
    Some(lower_bound)
}

/// Requests being served or queued per upstream (`mcp_requests_in_flight` + `mcp_queue_depth`).
pub fn in_flight_by_upstream(scrape: &Exposition) -> BTreeMap<String, f64> {
    let mut load = BTreeMap::new();
    for family in &scrape.families {
        if family.name != "mcp_requests_in_flight" && family.name != "mcp_queue_depth" {
            continue;
        }
        for sample in &family.samples {
            if let Some((_, upstream)) = sample.labels.iter().find(|(k, _)| k == "upstream") {
                *load.entry(upstream.clone()).or_insert(0.0) += sample.value;
            }
        }
    }
    load
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_of(buckets: &[(f64, f64)]) -> Counts {
        Counts {
            total: buckets.last().map_or(0.0, |b| b.1),
            buckets: buckets.iter().map(|(le, c)| (OrderedLe(*le), *c)).collect(),
        }
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let before = counts_of(&[(0.1, 0.0), (0.5, 0.0), (f64::INFINITY, 0.0)]);
        let after = counts_of(&[(0.1, 50.0), (0.5, 100.0), (f64::INFINITY, 100.0)]);
        // (q, expected, reason)
        let cases = [
            (0.5, 0.1, "the median sits at the first bound"),
            (0.75, 0.3, "halfway into the second bucket"),
            (0.25, 0.05, "halfway into the first bucket from zero"),
        ];
        for (q, expected, reason) in cases {
            let got = quantile(&before, &after, q).unwrap();
            assert!((got - expected).abs() < 1e-9, "{reason}: {got}");
        }
        assert_eq!(
            quantile(&after, &after, 0.95),
            None,
            "no traffic, no quantile"
        );
    }

    #[test]
    fn rate_ignores_counter_resets() {
        let (low, high) = (
            counts_of(&[(f64::INFINITY, 10.0)]),
            counts_of(&[(f64::INFINITY, 40.0)]),
        );
        assert_eq!(rate(&low, &high, 3.0), 10.0);
        assert_eq!(rate(&high, &low, 3.0), 0.0);
    }

    #[test]
    fn in_flight_adds_queue_depth_per_upstream() {
        let text = "# TYPE mcp_requests_in_flight gauge\nmcp_requests_in_flight{upstream=\"a\"} 2\nmcp_requests_in_flight{upstream=\"b\"} 1\n# TYPE mcp_queue_depth gauge\nmcp_queue_depth{upstream=\"a\"} 3\n";
        let load = in_flight_by_upstream(&Exposition::parse(text).unwrap());
        assert_eq!(load.get("a"), Some(&5.0));
        assert_eq!(load.get("b"), Some(&1.0));
    }
}
