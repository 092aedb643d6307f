//! The `McpAutoscaler` custom resource and the Kubernetes controller that drives the scaling engine with it.

#![forbid(unsafe_code)]

mod app;
pub mod controller;
pub mod crd;
mod error;
#[cfg(test)]
mod fixtures;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod prometheus;

pub use app::{Options, run};
pub use controller::{Context, Settings};
pub use crd::{McpAutoscaler, McpAutoscalerSpec, McpAutoscalerStatus};
pub use error::KubeError;
#[cfg(test)]
mod reconcile_tests;
