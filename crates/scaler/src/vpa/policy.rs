//! The VPA `spec.resourcePolicy`: per-container scaling mode, min/max allowed, controlled resources and values.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::amount::{CpuAmount, MemoryAmount, ResourceList, scale};
use crate::error::ScalerError;

/// Longest container name Kubernetes accepts (a DNS-1123 label is 63; 253 covers subdomain-style names).
pub const MAX_NAME_LEN: usize = 253;
/// More container policies than any pod has containers; bounds a hostile policy file.
pub const MAX_CONTAINER_POLICIES: usize = 256;

/// The container name that makes a policy the default for containers without their own.
pub const DEFAULT_CONTAINER_NAME: &str = "*";

/// `spec.resourcePolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodResourcePolicy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_policies: Vec<ContainerResourcePolicy>,
}

/// One entry of `containerPolicies`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerResourcePolicy {
    /// A container name, or `*` for the default policy.
    pub container_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ContainerScalingMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_allowed: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_allowed: Option<ResourceList>,
    /// Resources the recommendation covers; both when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled_resources: Option<Vec<ResourceName>>,
    /// `RequestsAndLimits` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled_values: Option<ControlledValues>,
}

/// `Auto` recommends; `Off` drops the container from the recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerScalingMode {
    Auto,
    Off,
}

/// Whether applying a recommendation also rewrites limits (keeping the request/limit ratio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ControlledValues {
    #[default]
    RequestsAndLimits,
    RequestsOnly,
}

/// The resources a recommendation can cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceName {
    Cpu,
    Memory,
}

impl PodResourcePolicy {
    /// Checks names, counts and that every `minAllowed` is at most the matching `maxAllowed`.
    pub fn validate(&self) -> Result<(), ScalerError> {
        if self.container_policies.len() > MAX_CONTAINER_POLICIES {
            return Err(ScalerError::spec(
                "resourcePolicy.containerPolicies",
                format!(
                    "{} entries, at most {MAX_CONTAINER_POLICIES} allowed",
                    self.container_policies.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.container_policies.iter().enumerate() {
            let field = format!("resourcePolicy.containerPolicies[{i}]");
            if p.container_name.is_empty() || p.container_name.len() > MAX_NAME_LEN {
                return Err(ScalerError::spec(
                    format!("{field}.containerName"),
                    format!("must be 1..={MAX_NAME_LEN} characters, or `*` for the default"),
                ));
            }
            if !seen.insert(p.container_name.as_str()) {
                return Err(ScalerError::spec(
                    format!("{field}.containerName"),
                    format!(
                        "`{}` has more than one policy; merge them into one entry",
                        p.container_name
                    ),
                ));
            }
            let (min, max) = (
                p.min_allowed.unwrap_or_default(),
                p.max_allowed.unwrap_or_default(),
            );
            if let (Some(lo), Some(hi)) = (min.cpu, max.cpu)
                && hi.0 != 0
                && lo > hi
            {
                return Err(ScalerError::spec(
                    format!("{field}.minAllowed.cpu"),
                    format!(
                        "{lo} is above maxAllowed.cpu {hi}; lower minAllowed or raise maxAllowed"
                    ),
                ));
            }
            if let (Some(lo), Some(hi)) = (min.memory, max.memory)
                && hi.0 != 0
                && lo > hi
            {
                return Err(ScalerError::spec(
                    format!("{field}.minAllowed.memory"),
                    format!(
                        "{lo} is above maxAllowed.memory {hi}; lower minAllowed or raise maxAllowed"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The policy for `container`: its own entry, else the `*` entry, else none.
    pub fn for_container(&self, container: &str) -> Option<&ContainerResourcePolicy> {
        self.container_policies
            .iter()
            .find(|p| p.container_name == container)
            .or_else(|| {
                self.container_policies
                    .iter()
                    .find(|p| p.container_name == DEFAULT_CONTAINER_NAME)
            })
    }
}

impl ContainerResourcePolicy {
    /// False for `mode: Off`.
    pub fn is_enabled(&self) -> bool {
        self.mode != Some(ContainerScalingMode::Off)
    }

    /// Whether `resource` is in `controlledResources` (both are when unset).
    pub fn controls(&self, resource: ResourceName) -> bool {
        self.controlled_resources
            .as_ref()
            .is_none_or(|list| list.contains(&resource))
    }

    /// Applies `minAllowed` then `maxAllowed` (so max wins, as upstream); zero bounds are ignored.
    pub fn cap(&self, list: &mut ResourceList) {
        let min = self.min_allowed.unwrap_or_default();
        let max = self.max_allowed.unwrap_or_default();
        if let Some(cpu) = list.cpu.as_mut() {
            *cpu = CpuAmount(clamp(cpu.0, min.cpu.map(|a| a.0), max.cpu.map(|a| a.0)));
        }
        if let Some(memory) = list.memory.as_mut() {
            *memory = MemoryAmount(clamp(
                memory.0,
                min.memory.map(|a| a.0),
                max.memory.map(|a| a.0),
            ));
        }
    }
}

fn clamp(value: i64, min: Option<i64>, max: Option<i64>) -> i64 {
    let mut v = value;
    if let Some(lo) = min.filter(|&m| m != 0)
        && v < lo
    {
        v = lo;
    }
    if let Some(hi) = max.filter(|&m| m != 0)
        && v > hi
    {
        v = hi;
    }
    v
}

/// A container's current requests and limits, as the pod spec (or kube-state-metrics) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResources {
    #[serde(default)]
    pub requests: ResourceList,
    #[serde(default)]
    pub limits: ResourceList,
}

/// The limits a pod would get when the recommended requests are applied.
///
/// `RequestsOnly` keeps today's limits. `RequestsAndLimits` keeps the limit/request ratio: no limit
/// stays no limit, a limit without a request (Kubernetes then sets request = limit) or equal to it
/// follows the new request, otherwise `limit × new request / old request` (truncated, saturating).
pub fn proposed_limits(
    recommended_requests: &ResourceList,
    current: &ContainerResources,
    controlled_values: ControlledValues,
) -> ResourceList {
    if controlled_values == ControlledValues::RequestsOnly {
        return current.limits;
    }
    let cpu = proportional(
        current.limits.cpu.map(|a| a.0),
        current.requests.cpu.map(|a| a.0),
        recommended_requests.cpu.map(|a| a.0),
    )
    .map(CpuAmount);
    let memory = proportional(
        current.limits.memory.map(|a| a.0),
        current.requests.memory.map(|a| a.0),
        recommended_requests.memory.map(|a| a.0),
    )
    .map(MemoryAmount);
    ResourceList {
        cpu: cpu.or(current.limits.cpu),
        memory: memory.or(current.limits.memory),
    }
}

fn proportional(limit: Option<i64>, request: Option<i64>, recommended: Option<i64>) -> Option<i64> {
    let limit = limit.filter(|&l| l > 0)?;
    let recommended = recommended.filter(|&r| r > 0)?;
    match request.filter(|&r| r > 0) {
        None => Some(recommended),
        Some(request) if request == limit => Some(recommended),
        Some(request) => {
            let scaled = i128::from(limit) * i128::from(recommended) / i128::from(request);
            Some(i64::try_from(scaled).unwrap_or(i64::MAX))
        }
    }
}

/// The pod-wide minimum (upstream `--pod-recommendation-min-*`) split evenly across containers.
pub(crate) fn split_minimum(
    min_cpu_millicores: f64,
    min_memory_mb: f64,
    containers: usize,
) -> ResourceList {
    let fraction = 1.0 / containers.max(1) as f64;
    let cpu = CpuAmount::from_cores(min_cpu_millicores * 0.001);
    let memory = MemoryAmount::from_bytes(min_memory_mb * 1024.0 * 1024.0);
    ResourceList::new(
        CpuAmount(scale(cpu.0, fraction)),
        MemoryAmount(scale(memory.0, fraction)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(m: i64) -> Option<CpuAmount> {
        Some(CpuAmount(m))
    }

    #[test]
    fn limits_follow_the_request_ratio() {
        let mi = 1024 * 1024;
        let current = ContainerResources {
            requests: ResourceList {
                cpu: cpu(100),
                memory: Some(MemoryAmount(100 * mi)),
            },
            limits: ResourceList {
                cpu: cpu(200),
                memory: Some(MemoryAmount(100 * mi)),
            },
        };
        let rec = ResourceList::new(CpuAmount(300), MemoryAmount(300 * mi));
        let cases = [
            (
                ControlledValues::RequestsAndLimits,
                600,
                300 * mi,
                "2× cpu ratio kept; equal memory stays equal",
            ),
            (
                ControlledValues::RequestsOnly,
                200,
                100 * mi,
                "limits untouched",
            ),
        ];
        for (mode, want_cpu, want_mem, why) in cases {
            let got = proposed_limits(&rec, &current, mode);
            assert_eq!(got.cpu, cpu(want_cpu), "{why}");
            assert_eq!(got.memory, Some(MemoryAmount(want_mem)), "{why}");
        }
    }

    #[test]
    fn proportional_edge_cases() {
        for (limit, request, rec, want, why) in [
            (None, Some(100), Some(300), None, "no limit stays no limit"),
            (
                Some(200),
                None,
                Some(300),
                Some(300),
                "limit without request follows the request",
            ),
            (
                Some(200),
                Some(100),
                None,
                None,
                "nothing recommended, nothing proposed",
            ),
            (
                Some(i64::MAX),
                Some(1),
                Some(i64::MAX),
                Some(i64::MAX),
                "overflow saturates",
            ),
            (Some(150), Some(100), Some(3), Some(4), "truncates 4.5 to 4"),
        ] {
            assert_eq!(proportional(limit, request, rec), want, "{why}");
        }
    }

    #[test]
    fn min_is_split_across_containers() {
        let one = split_minimum(25.0, 250.0, 1);
        assert_eq!(
            one,
            ResourceList::new(CpuAmount(25), MemoryAmount(262_144_000))
        );
        let two = split_minimum(25.0, 250.0, 2);
        assert_eq!(
            two,
            ResourceList::new(CpuAmount(12), MemoryAmount(131_072_000))
        );
    }

    #[test]
    fn max_wins_over_min_and_zero_is_no_bound() {
        assert_eq!(clamp(5, Some(10), Some(8)), 8);
        assert_eq!(clamp(5, Some(0), Some(0)), 5);
        assert_eq!(clamp(50, Some(10), None), 50);
    }
}
