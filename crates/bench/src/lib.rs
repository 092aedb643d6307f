//! Benchmarks that measure mcpulse against a baseline and a peer in the same run, so noisy machines still give
//! honest ratios.

mod load;
mod memory;
mod meter;
mod nginx;
mod upstream;

pub use load::{LoadResult, closed_loop};
pub use memory::{MemoryReport, run_memory_bench};
pub use meter::{MeterBench, MeterBenchRow, ResponseFormat, Route, run_meter_bench};
pub use nginx::Nginx;
pub use upstream::FastUpstream;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0} did not start listening within 10 s; see its log above")]
    NotListening(String),
}
