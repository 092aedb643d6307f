//! Trace-driven autoscaling simulator: replays a load trace against a modelled deployment under several policies.
//!
//! The model is a fluid M/M/c queue per tick (see [`model`]): arrivals are drawn once per tick from a seeded
//! Poisson source, so every policy faces exactly the same requests. HPA-based policies run the real
//! [`crate::Scaler`] on observations built the way metrics-server and a Prometheus adapter would serve them
//! (scrape interval, rate window, pipeline delay, unready start-up pods). The `oracle` knows the future
//! arrivals and provisions the fewest pods that meet the SLO, started early enough; it is the cost floor.

mod error;
mod generate;
mod model;
mod plot;
mod predict;
mod rng;
mod run;
mod trace;

pub use error::SimError;
pub use generate::{
    FlashCrowd, GeneratorConfig, MAX_LOG_REQUESTS, Ramp, generate, request_log_csv,
};
pub use model::TickOutcome;
pub use plot::render_svg;
pub use predict::{Band, ForecastPredictor, LoadPredictor, SeasonalNaive};
pub use run::{
    PolicyKind, PolicyReport, Progress, SimConfig, SimReport, Timeline, TimelinePoint, simulate,
};
pub use trace::{
    MAX_HOLE_STEPS, MAX_TRACE_BYTES, MAX_TRACE_STEPS, Trace, TraceFormat, TraceOptions,
    detect_format, parse_timestamp, parse_trace,
};
