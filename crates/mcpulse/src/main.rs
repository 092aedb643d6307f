//! The `mcpulse` binary: parses the command line and wires the library crates together.

use clap::Parser;

#[derive(Parser)]
#[command(name = "mcpulse", version, about = "Monitoring and autoscaling for fleets of MCP servers")]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
