//! Vertical recommendations with Kubernetes VerticalPodAutoscaler recommender semantics: no IO, time passed in.
//!
//! Mirrors the upstream recommender (kubernetes/autoscaler `vertical-pod-autoscaler/pkg/recommender`):
//! CPU usage goes into a decaying histogram weighted by the CPU request, memory into a decaying
//! histogram of one peak per container per 24 h interval; OOM kills add a bumped-up memory peak. The
//! target is the 90th percentile, the bounds the 50th and 95th, each plus a 15 % margin, the bounds
//! widened by the history's confidence, floored at the pod minimum split across containers and capped
//! by the `resourcePolicy`. Output is the VPA `status.recommendation` shape.
//!
//! Feed a [`Recommender`] with [`UsageSample`]s (or a [`PrometheusHistory`]) and call
//! [`Recommender::recommend`].

mod amount;
mod histogram;
mod output;
mod policy;
mod prometheus;
mod recommender;

pub use amount::{CpuAmount, MAX_RESOURCE_AMOUNT, MemoryAmount, ResourceList};
pub use histogram::{DecayingHistogram, EPSILON, HistogramOptions};
pub use output::{
    ObjectMeta, RecommendedContainerResources, RecommendedPodResources, TargetRef, VPA_API_VERSION,
    VPA_KIND, VerticalPodAutoscaler, VpaSpec, VpaStatus, render_table,
};
pub use policy::{
    ContainerResourcePolicy, ContainerResources, ContainerScalingMode, ControlledValues,
    DEFAULT_CONTAINER_NAME, MAX_CONTAINER_POLICIES, MAX_NAME_LEN, PodResourcePolicy, ResourceName,
    proposed_limits,
};
pub use prometheus::{
    MAX_POINTS, MAX_POINTS_PER_QUERY, MAX_SERIES, Matrix, PrometheusHistory, Queries, QueryData,
    QueryResponse, RangeSeries, Series, parse_matrix, query_windows,
};
pub use recommender::{
    HistorySummary, IngestStats, Ingested, MAX_CONTAINERS, Recommender, Usage, UsageSample,
    VpaConfig,
};
