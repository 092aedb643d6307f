//! Benchmarks that measure mcpulse against a baseline and a peer in the same run, so noisy machines still give
//! honest ratios.

mod cpu;
mod instructions;
mod load;
mod memory;
mod meter;
mod nginx;
mod pin;
mod upstream;

pub use instructions::{
    InstructionsBench, InstructionsRow, instructions_table, run_instructions_bench,
};
pub use load::{LoadResult, closed_loop};
pub use memory::{MemoryReport, run_memory_bench};
pub use meter::{MeterBench, MeterBenchRow, ResponseFormat, Route, UpstreamKind, run_meter_bench};
pub use nginx::Nginx;
pub use pin::Placement;
pub use upstream::FastUpstream;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0} did not start listening in time; see its log above")]
    NotListening(String),
    #[error("{what} exited early ({status}); run the same command by hand to see why")]
    Exited { what: String, status: String },
    #[error("{failed} of {requests} requests through {what} failed; is the upstream reachable?")]
    Requests {
        what: String,
        failed: usize,
        requests: usize,
    },
    #[error("{} has no `summary:` line; was callgrind stopped before it could write the profile?", .0.display())]
    Profile(std::path::PathBuf),
    #[error("invalid benchmark setting: {0}")]
    Invalid(String),
}
