//! Public behaviour of the forecaster and the predictive policy: real traces, bad input, CSV parsing.

use mcpulse_scaler::ScalerError;
use mcpulse_scaler::forecast::{
    Distrust, Forecast, ForecastConfig, ForecastPoint, combine_replicas, detect_periods, fill_gaps,
    forecast, learn_capacity, parse_series_csv, prediction_trustworthy, predictive_replicas,
    realized_mase,
};
use mcpulse_scaler::sizing::{PodSizing, QueueModel};

/// The real traces shared beside the repository (`../shared/traces`, or `MCPULSE_TRACES`). They are not
/// redistributed with the code, so a checkout without them skips these tests and says so.
fn traces_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("MCPULSE_TRACES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: real traces not found at {}; set MCPULSE_TRACES",
            dir.display()
        );
        None
    }
}

/// The newest `keep` points of a trace, gaps filled; `None` when the traces are not available.
fn trace(name: &str, keep: usize) -> Option<Vec<f64>> {
    let text =
        std::fs::read_to_string(traces_dir()?.join(format!("{name}.csv"))).expect("trace readable");
    let series = parse_series_csv(&text).expect("trace parses");
    let y = fill_gaps(&series.values).expect("trace fills").values;
    Some(y[y.len().saturating_sub(keep)..].to_vec())
}

/// A daily-like pattern (period 48) on a slow rise, with deterministic noise.
fn seasonal_series(n: usize) -> Vec<f64> {
    let mut state: u64 = 42;
    (0..n)
        .map(|t| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let phase = std::f64::consts::TAU * t as f64 / 48.0;
            100.0 + 0.05 * t as f64 + 40.0 * phase.sin() + 4.0 * noise
        })
        .collect()
}

/// The seasonal-naive backtest MASE, computed the way the module documents it.
fn seasonal_naive_mase(y: &[f64], period: usize, config: &ForecastConfig) -> f64 {
    let h = config.horizon;
    let scale = y.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (y.len() - 1) as f64;
    let mut total = 0.0;
    for k in 1..=config.backtest_folds {
        let origin = y.len() - k * h;
        for i in 0..h {
            total += (y[origin - period + i % period] - y[origin + i]).abs();
        }
    }
    total / (config.backtest_folds * h) as f64 / scale
}

fn assert_well_formed(f: &Forecast, horizon: usize) {
    assert_eq!(f.points.len(), horizon);
    assert!(f.mase.is_finite() && f.mase >= 0.0, "mase {}", f.mase);
    for p in &f.points {
        assert!(
            0.0 <= p.lower && p.lower <= p.mean && p.mean <= p.upper && p.upper.is_finite(),
            "{p:?}"
        );
    }
}

#[test]
fn real_traces_forecast_with_finite_mase() {
    let config = ForecastConfig::default();
    for name in ["Twitter_volume_GOOG", "ec2_cpu_utilization_5f5533"] {
        let Some(y) = trace(name, 2016) else { return };
        let f = forecast(&y, &config).expect("real trace forecasts");
        assert_well_formed(&f, config.horizon);
        // Backtest error within reason for a 1-hour horizon: not more than a few naive steps off.
        assert!(f.mase < 5.0, "{name}: {} mase {}", f.model, f.mase);
    }
}

/// The Azure LLM code trace (one request a line, all within one hour of one day) as requests per 10 s,
/// binned as `scripts/forecast-vs-statsmodels.py` bins it: from the 10 s step of the first request to
/// that of the last, empty steps counted as 0.
fn azure_code_rate_10s() -> Option<Vec<f64>> {
    let text = std::fs::read_to_string(traces_dir()?.join("AzureLLMInferenceTrace_code.csv"))
        .expect("trace readable");
    let mut lines = text.lines().skip(1).filter(|l| !l.is_empty());
    let day = |line: &str| line[..10].to_owned();
    let first_day = day(lines.clone().next().expect("trace has requests"));
    let steps: Vec<usize> = lines
        .by_ref()
        .map(|line| {
            assert_eq!(day(line), first_day, "the trace spans one day");
            let clock: Vec<f64> = line[11..]
                .split(',')
                .next()
                .expect("timestamp column")
                .split(':')
                .map(|part| part.parse().expect("hh:mm:ss"))
                .collect();
            ((clock[0] * 3600.0 + clock[1] * 60.0 + clock[2]) / 10.0) as usize
        })
        .collect();
    let (lo, hi) = (steps.iter().min()?, steps.iter().max()?);
    let mut counts = vec![0.0; hi - lo + 1];
    for step in &steps {
        counts[step - lo] += 1.0;
    }
    Some(counts)
}

#[test]
fn bursty_request_counts_forecast_no_worse_than_holt_winters() {
    // The script's holdout: 5 origins one horizon apart, MASE scaled by the one-step change before the
    // earliest. Holt-Winters (additive damped trend, no season) scores 0.526 there; the 144-point AutoETS
    // alone scored 0.596, because on 144 bursty points AICc prefers a trend that chases the bursts.
    let Some(y) = azure_code_rate_10s() else {
        return;
    };
    assert_eq!(y.len(), 344, "binned as the script bins it");
    let config = ForecastConfig::default();
    let (horizon, origins) = (config.horizon, 5);
    let earliest = y.len() - origins * horizon;
    let before = &y[..earliest];
    let scale =
        before.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (before.len() - 1) as f64;
    let mut abs_error = 0.0;
    for o in 1..=origins {
        let origin = y.len() - o * horizon;
        let f = forecast(&y[..origin], &config).unwrap();
        assert_well_formed(&f, horizon);
        for (p, actual) in f.points.iter().zip(&y[origin..]) {
            abs_error += (p.mean - actual).abs();
        }
    }
    let mase = abs_error / (origins * horizon) as f64 / scale;
    assert!(mase <= 0.526, "holdout MASE {mase}");
}

#[test]
fn seasonal_series_beats_seasonal_naive_with_mstl() {
    let config = ForecastConfig::default();
    let y = seasonal_series(480);
    assert_eq!(detect_periods(&y), vec![48]);
    let f = forecast(&y, &config).unwrap();
    assert!(f.model.starts_with("mstl[48]"), "chose {}", f.model);
    let naive = seasonal_naive_mase(&y, 48, &config);
    assert!(f.mase < naive, "mase {} vs seasonal naive {naive}", f.mase);
}

#[test]
fn real_seasonal_trace_is_no_worse_than_seasonal_naive() {
    // The selection is by the same backtest, so the winner can never lose to seasonal naive; this checks
    // that the reported MASE is that backtest's.
    let config = ForecastConfig::default();
    let Some(y) = trace("Twitter_volume_GOOG", 2016) else {
        return;
    };
    let periods = detect_periods(&y);
    assert!(!periods.is_empty(), "the GOOG trace has a daily pattern");
    let f = forecast(&y, &config).unwrap();
    let naive = seasonal_naive_mase(&y, periods[0], &config);
    assert!(f.mase <= naive + 1e-9, "{} {} vs {naive}", f.model, f.mase);
}

#[test]
fn intervals_cover_most_outcomes_on_a_real_trace() {
    let config = ForecastConfig {
        horizon: 6,
        max_history: 1000,
        ..ForecastConfig::default()
    };
    let Some(y) = trace("ec2_cpu_utilization_5f5533", 1200) else {
        return;
    };
    let (mut inside, mut total) = (0usize, 0usize);
    for origin in (1000..1200).step_by(20) {
        let f = forecast(&y[..origin], &config).unwrap();
        for (p, actual) in f.points.iter().zip(&y[origin..]) {
            inside += usize::from(p.lower <= *actual && *actual <= p.upper);
            total += 1;
        }
    }
    let coverage = inside as f64 / total as f64;
    // Nominal 90 %; a real series is heavier-tailed than the normal errors assumed, so allow a margin.
    assert!((0.7..=1.0).contains(&coverage), "coverage {coverage}");
}

#[test]
fn bad_input_table() {
    let config = ForecastConfig::default();
    let ok: Vec<f64> = seasonal_series(200);
    let mut with_inf = ok.clone();
    with_inf[10] = f64::INFINITY;
    let mut with_negative = ok.clone();
    with_negative[3] = -1.0;
    let short = ok[..20].to_vec();
    let all_nan = vec![f64::NAN; 200];
    for (input, needle, why) in [
        (&with_inf, "history[10]", "infinite value named by index"),
        (&with_negative, "negative", "a load is never negative"),
        (
            &short,
            "need at least 60",
            "too short says how many are needed",
        ),
        (&all_nan, "missing", "nothing known to interpolate from"),
        (&vec![], "need at least", "empty history"),
    ] {
        let err = forecast(input, &config).expect_err(why).to_string();
        assert!(err.contains(needle), "{why}: {err}");
    }
}

#[test]
fn bad_config_table() {
    let y = seasonal_series(200);
    let base = ForecastConfig::default();
    for (config, field, why) in [
        (
            ForecastConfig { horizon: 0, ..base },
            "horizon",
            "nothing to forecast",
        ),
        (
            ForecastConfig { level: 1.0, ..base },
            "level",
            "a 100 % interval is infinite",
        ),
        (
            ForecastConfig {
                level: f64::NAN,
                ..base
            },
            "level",
            "NaN level",
        ),
        (
            ForecastConfig {
                backtest_folds: 0,
                ..base
            },
            "backtestFolds",
            "no way to choose",
        ),
        (
            ForecastConfig {
                max_history: 10,
                ..base
            },
            "maxHistory",
            "below minHistory",
        ),
    ] {
        let err = forecast(&y, &config).expect_err(why);
        assert!(
            matches!(&err, ScalerError::InvalidSpec { field: f, .. } if f.contains(field)),
            "{why}: {err}"
        );
    }
}

#[test]
fn constant_series_gives_a_flat_forecast() {
    let f = forecast(&[7.5; 100], &ForecastConfig::default()).unwrap();
    assert_eq!(f.model, "constant");
    assert_eq!(f.mase, 0.0);
    assert!(
        f.points
            .iter()
            .all(|p| p.mean == 7.5 && p.lower == 7.5 && p.upper == 7.5)
    );
}

#[test]
fn gaps_are_filled_like_explicit_interpolation() {
    let config = ForecastConfig::default();
    let full = seasonal_series(300);
    let mut gappy = full.clone();
    gappy[150] = f64::NAN;
    let mut interpolated = full.clone();
    interpolated[150] = (full[149] + full[151]) / 2.0;
    assert_eq!(fill_gaps(&gappy).unwrap().filled, 1);
    assert_eq!(
        forecast(&gappy, &config).unwrap(),
        forecast(&interpolated, &config).unwrap()
    );
}

#[test]
fn scale_does_not_change_the_choice() {
    let config = ForecastConfig::default();
    let y = seasonal_series(300);
    let big: Vec<f64> = y.iter().map(|v| v * 1e9).collect();
    let (a, b) = (
        forecast(&y, &config).unwrap(),
        forecast(&big, &config).unwrap(),
    );
    assert_eq!(a.model, b.model);
    assert!((a.mase - b.mase).abs() < 1e-3 * a.mase.max(1.0));
    assert!((b.points[0].mean / a.points[0].mean - 1e9).abs() < 1e6);
}

#[test]
fn csv_formats_and_gaps() {
    for (text, why) in [
        (
            "timestamp,value\n2024-05-01T00:00:00Z,1\n2024-05-01T00:05:00Z,2\n",
            "RFC 3339",
        ),
        (
            "timestamp,value\n2024-05-01 00:00:00,1\n2024-05-01 00:05:00,2\n",
            "naive UTC",
        ),
        ("ts,v\n1714521600,1\n1714521900,2\n", "unix seconds"),
        (
            "timestamp,value\n\"2024-05-01 00:00:00\", 1\n\"2024-05-01 00:05:00\", 2\n",
            "quoted",
        ),
    ] {
        let s = parse_series_csv(text).unwrap_or_else(|e| panic!("{why}: {e}"));
        assert_eq!(s.step_millis, 300_000, "{why}");
        assert_eq!(s.values, vec![1.0, 2.0], "{why}");
        assert_eq!(s.start.millis(), 1_714_521_600_000, "{why}");
    }
    let gappy = "t,v\n0,1\n60,2\n180,4\n240,\n300,6\n";
    let s = parse_series_csv(gappy).unwrap();
    assert_eq!(s.step_millis, 60_000);
    assert_eq!(s.values.len(), 6);
    assert_eq!(s.missing, 2, "one skipped row and one empty value");
    assert!(s.values[2].is_nan() && s.values[4].is_nan());
    assert_eq!(
        mcpulse_scaler::forecast::format_rfc3339(s.timestamp_at(6)).unwrap(),
        "1970-01-01T00:06:00Z"
    );
}

#[test]
fn csv_errors_name_the_line() {
    for (text, needle, why) in [
        ("", "line 1", "empty file"),
        ("0,1\n60,2\n", "header", "no header"),
        ("t,v\n0,1\n", "at least 2", "one row cannot give a step"),
        ("t,v\n0,1\nyesterday,2\n", "line 3", "unparseable timestamp"),
        ("t,v\n0,1\n60,2\n60,3\n", "line 4", "duplicate timestamp"),
        ("t,v\n0,1\n60,2\n150,3\n", "line 4", "off the step grid"),
        ("t,v\n0,1\n60,-2\n", "line 3", "negative value"),
        ("t,v\n0,1\n60,inf\n", "line 3", "infinite value"),
        ("t,v\n0,1\n60,abc\n", "line 3", "not a number"),
        ("t,v\n0,1\n60,2,3\n", "line 3", "three fields"),
    ] {
        let err = parse_series_csv(text).expect_err(why).to_string();
        assert!(err.contains(needle), "{why}: {err}");
    }
}

fn flat(upper: &[f64]) -> Forecast {
    Forecast {
        model: "test".into(),
        mase: 0.5,
        points: upper
            .iter()
            .map(|&u| ForecastPoint {
                mean: u / 2.0,
                lower: 0.0,
                upper: u,
            })
            .collect(),
    }
}

#[test]
fn predictive_replicas_table() {
    let f = flat(&[100.0, 250.0, 90.0, 1000.0]);
    for (lookahead, capacity, min, max, want, why) in [
        (
            3,
            50.0,
            1,
            20,
            5,
            "peak upper 250 over 3 steps / 50 per pod",
        ),
        (1, 50.0, 1, 20, 2, "only the first step"),
        (4, 50.0, 1, 10, 10, "capped at max"),
        (3, 50.0, 8, 20, 8, "raised to min"),
        (0, 50.0, 2, 20, 2, "no look-ahead: no opinion"),
        (3, 0.0, 2, 20, 2, "zero capacity: no opinion"),
        (3, f64::NAN, 2, 20, 2, "NaN capacity: no opinion"),
        (3, 1e-300, 1, 7, 7, "tiny capacity saturates to max"),
        (3, 50.0, 9, 3, 9, "min above max wins"),
    ] {
        assert_eq!(
            predictive_replicas(
                &f,
                lookahead,
                &PodSizing::Capacity { per_pod: capacity },
                min,
                max
            ),
            want,
            "{why}"
        );
    }
}

#[test]
fn queue_sizing_of_the_forecast_peak_meets_the_objectives() {
    let f = flat(&[100.0, 250.0, 90.0, 1000.0]);
    let model = QueueModel {
        pod_capacity_rps: 50.0,
        concurrency: 4,
        latency_p95_seconds: 1.0,
        queue_wait_seconds: 0.2,
        burst_window_seconds: 15.0,
        burst_sigmas: 2.5,
    };
    let pods = predictive_replicas(&f, 3, &PodSizing::Queue(model), 1, 100);
    assert!(
        model.meets_objectives(pods, 250.0),
        "{pods} pods for the 250 rps peak"
    );
    assert!(
        pods > 5,
        "5 pods of 50 rps would be saturated at 250 rps, got {pods}"
    );
    assert!(pods < 10, "twice the saturation count is waste, got {pods}");
}

#[test]
fn combination_only_adds_capacity() {
    assert_eq!(combine_replicas(4, Some(7)), 7);
    assert_eq!(combine_replicas(4, Some(2)), 4);
    assert_eq!(combine_replicas(4, None), 4);
}

#[test]
fn capacity_is_the_median_per_pod_load_at_target() {
    // 100 req/s per pod at full utilization, with one outlier taken mid-rollout.
    let mut load = vec![600.0; 15];
    let replicas = vec![10.0; 15];
    let utilization = vec![0.6; 15];
    load[3] = 6000.0;
    let c = learn_capacity(&load, &replicas, &utilization, 0.7).unwrap();
    assert!((c - 70.0).abs() < 1e-9, "{c}");

    for (l, r, u, target, why) in [
        (
            vec![1.0; 3],
            vec![1.0; 3],
            vec![0.5; 3],
            0.7,
            "too few samples",
        ),
        (
            vec![1.0; 20],
            vec![1.0; 19],
            vec![0.5; 20],
            0.7,
            "misaligned",
        ),
        (
            vec![1.0; 20],
            vec![0.0; 20],
            vec![0.5; 20],
            0.7,
            "no replicas",
        ),
        (
            vec![1.0; 20],
            vec![1.0; 20],
            vec![0.01; 20],
            0.7,
            "idle pods",
        ),
        (
            vec![1.0; 20],
            vec![1.0; 20],
            vec![0.5; 20],
            1.5,
            "target over 100 %",
        ),
        (
            vec![0.0; 20],
            vec![1.0; 20],
            vec![0.5; 20],
            0.7,
            "no load served",
        ),
    ] {
        assert!(learn_capacity(&l, &r, &u, target).is_err(), "{why}");
    }
}

#[test]
fn trust_table() {
    for (errors, history, want, why) in [
        (
            vec![],
            500,
            Ok(()),
            "no track record yet: backtest stands in",
        ),
        (vec![0.5, 0.9], 500, Ok(()), "mean 0.7 under 1.0"),
        (
            vec![0.5, 2.5],
            500,
            Err(Distrust::ErrorTooHigh {
                mase: 1.5,
                threshold: 1.0,
            }),
            "mean 1.5 over 1.0",
        ),
        (
            vec![0.5, f64::NAN],
            500,
            Err(Distrust::ErrorUnknown),
            "unknown error is a miss",
        ),
        (
            vec![0.1],
            10,
            Err(Distrust::HistoryTooShort { have: 10, need: 48 }),
            "short history",
        ),
    ] {
        assert_eq!(
            prediction_trustworthy(&errors, history, 48, 1.0),
            want,
            "{why}"
        );
    }
    assert!(
        prediction_trustworthy(&[0.1], 500, 48, f64::NAN).is_err(),
        "NaN threshold distrusts"
    );
}

#[test]
fn realized_mase_scores_a_past_forecast() {
    let history = [1.0, 2.0, 3.0, 4.0];
    let f = flat(&[10.0, 12.0]);
    // Means 5 and 6 against 6 and 6: mean error 0.5 over a naive step of 1.
    assert_eq!(realized_mase(&f, &[6.0, 6.0], &history), Some(0.5));
    assert_eq!(realized_mase(&f, &[], &history), None);
    assert_eq!(realized_mase(&f, &[6.0], &[3.0, 3.0]), None);
}
