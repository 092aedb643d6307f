//! The example traces under `traces/` are generated from the configs below; this test keeps them in sync.
//! Regenerate with `MCPULSE_BLESS=1 cargo test -p mcpulse-scaler --test sim_traces`.

use std::path::PathBuf;
use std::time::Duration;

use mcpulse_scaler::Timestamp;
use mcpulse_scaler::sim::{
    FlashCrowd, GeneratorConfig, Ramp, TraceFormat, TraceOptions, generate, parse_trace,
    request_log_csv,
};

const MIN: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn examples() -> Vec<(&'static str, String)> {
    let week = GeneratorConfig {
        step: Duration::from_secs(5 * MIN),
        duration: Duration::from_secs(7 * DAY),
        base_rps: 60.0,
        flash_crowds: vec![FlashCrowd {
            start: Duration::from_secs(2 * DAY + 10 * HOUR),
            rise: Duration::from_secs(5 * MIN),
            hold: Duration::from_secs(20 * MIN),
            decay: Duration::from_secs(10 * MIN),
            factor: 2.5,
        }],
        seed: 11,
        ..GeneratorConfig::default()
    };
    let flash = GeneratorConfig {
        step: Duration::from_secs(MIN),
        duration: Duration::from_secs(2 * DAY),
        base_rps: 40.0,
        diurnal_amplitude: 0.5,
        noise: 0.08,
        random_flash_crowds_per_day: 3.0,
        seed: 23,
        ..GeneratorConfig::default()
    };
    let ramp = GeneratorConfig {
        step: Duration::from_secs(MIN),
        duration: Duration::from_secs(DAY),
        base_rps: 30.0,
        diurnal_amplitude: 0.3,
        ramps: vec![Ramp {
            start: Duration::from_secs(6 * HOUR),
            duration: Duration::from_secs(2 * HOUR),
            factor: 3.0,
        }],
        seed: 37,
        ..GeneratorConfig::default()
    };
    // Look-alikes of the shared real traces, whose README grants no licence to redistribute derived data:
    // a bursty social-media volume (5-minute steps, two months in the original, four days here) ...
    let social = GeneratorConfig {
        start: Timestamp::from_secs(1_424_986_800),
        step: Duration::from_secs(5 * MIN),
        duration: Duration::from_secs(4 * DAY),
        base_rps: 40.0,
        diurnal_amplitude: 0.7,
        peak_hour: 16.0,
        noise: 0.2,
        random_flash_crowds_per_day: 2.0,
        seed: 41,
        ..GeneratorConfig::default()
    };
    // ... and a one-request-a-line LLM inference log with bursty arrivals (15 minutes).
    let llm = GeneratorConfig {
        start: Timestamp::from_secs(1_700_158_620),
        step: Duration::from_secs(10),
        duration: Duration::from_secs(15 * MIN),
        base_rps: 3.0,
        diurnal_amplitude: 0.0,
        weekend_dip: 0.0,
        noise: 0.4,
        flash_crowds: vec![FlashCrowd {
            start: Duration::from_secs(6 * MIN),
            rise: Duration::from_secs(20),
            hold: Duration::from_secs(2 * MIN),
            decay: Duration::from_secs(MIN),
            factor: 3.0,
        }],
        seed: 53,
        ..GeneratorConfig::default()
    };
    let rate = |c: &GeneratorConfig| generate(c).expect("example config is valid").to_csv();
    vec![
        ("diurnal-week.csv", rate(&week)),
        ("flash-crowds.csv", rate(&flash)),
        ("ramp.csv", rate(&ramp)),
        ("social-volume-like.csv", rate(&social)),
        (
            "llm-requests-like.csv",
            request_log_csv(&generate(&llm).expect("valid"), 59).expect("small log"),
        ),
    ]
}

fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../traces")
}

#[test]
fn example_traces_match_their_generator() {
    let bless = std::env::var_os("MCPULSE_BLESS").is_some();
    let mut total = 0;
    for (name, text) in examples() {
        let path = traces_dir().join(name);
        if bless {
            std::fs::write(&path, &text).expect("write example trace");
        }
        let on_disk =
            std::fs::read_to_string(&path).expect("example trace exists; bless to create it");
        assert!(
            on_disk == text,
            "{name} differs from its generator; rerun with MCPULSE_BLESS=1"
        );
        total += on_disk.len();
        let trace = parse_trace(&on_disk, &TraceOptions::default()).expect("example parses");
        let want = if name.contains("requests") {
            TraceFormat::RequestLog
        } else {
            TraceFormat::RateSeries
        };
        assert_eq!(trace.format, want, "{name}");
        assert_eq!(trace.repaired, 0, "{name} has no holes");
    }
    assert!(total < 600_000, "examples stay small: {total} bytes");
}
