//! Prints the McpAutoscaler CRD as YAML: `cargo run -p mcpulse-kube --bin crdgen > deploy/crds/mcpautoscaler.yaml`.

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    match mcpulse_kube::crd::crd_yaml() {
        Ok(yaml) => match std::io::stdout().write_all(yaml.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("crdgen: cannot write the CRD to stdout: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("crdgen: cannot render the CRD as YAML: {e}");
            ExitCode::FAILURE
        }
    }
}
