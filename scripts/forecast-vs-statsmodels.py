#!/usr/bin/env python3
"""Compares mcpulse's forecaster with statsmodels Holt-Winters on the same series, horizon and origins.

Usage: .venv/bin/python scripts/forecast-vs-statsmodels.py [--horizon 12] [--origins 5] [CSV ...]
(needs `pip install statsmodels pandas` in .venv). Without CSV arguments it uses the traces in
../shared/traces; the per-request Azure trace is first turned into a 10-second request-count series.

For each series, ours is `cargo run --release --example forecast_timing` (crates/scaler/examples), which
prints holdout MASE and two mean times as JSON: a full model selection (backtest of every candidate, what
`forecast` does on each call and the controller does every `reselectEvery` forecasts) and a refit of the
selected model on the same history (what the controller's `Forecaster` does between selections). Holt-Winters (additive trend, damped, additive season at
the period our detector found, or no season when it found none) is fitted on the same window of history
(the newest `max_history` points before each origin) and scored the same way: MASE is the mean absolute
error over all origins' forecasts divided by the mean absolute one-step change before the earliest origin.
Holt-Winters' time is its `fit()` of one fixed model structure, so the like-for-like speed-up is the refit one;
the selection one is printed beside it as the worst case.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from statsmodels.tsa.holtwinters import ExponentialSmoothing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACES = os.path.join(ROOT, "..", "shared", "traces")


def load(path):
    """Regular series from a `timestamp,value` CSV, gaps interpolated as the Rust side does."""
    frame = pd.read_csv(path)
    ts = pd.to_datetime(frame.iloc[:, 0])
    values = pd.Series(frame.iloc[:, 1].astype(float).values, index=ts)
    step = ts.diff().mode().iloc[0]
    values = values.resample(step).mean().interpolate(limit_direction="both")
    return values.to_numpy()


def azure_rate_csv(path, out_dir):
    """One request a line -> requests per 10 s, written as a `timestamp,value` CSV."""
    frame = pd.read_csv(path)
    ts = pd.to_datetime(frame["TIMESTAMP"])
    counts = pd.Series(1.0, index=ts).resample("10s").sum()
    out = os.path.join(out_dir, "azure_code_rate_10s.csv")
    pd.DataFrame({"timestamp": counts.index.strftime("%Y-%m-%d %H:%M:%S"), "value": counts.values}).to_csv(
        out, index=False
    )
    return out


def ours(path, horizon, origins):
    command = [
        "cargo", "run", "--quiet", "--release", "-p", "mcpulse-scaler", "--example", "forecast_timing",
        "--", path, str(horizon), str(origins),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def holt_winters(y, horizon, origins, max_history, period):
    earliest = len(y) - origins * horizon
    scale = np.mean(np.abs(np.diff(y[:earliest])))
    errors, seconds = [], 0.0
    for o in range(origins, 0, -1):
        origin = len(y) - o * horizon
        train = y[max(0, origin - max_history):origin]
        seasonal = period if period and 2 * period < len(train) else None
        model = ExponentialSmoothing(
            train,
            trend="add",
            damped_trend=True,
            seasonal="add" if seasonal else None,
            seasonal_periods=seasonal,
            initialization_method="estimated",
        )
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit()
        seconds += time.perf_counter() - started
        errors.extend(np.abs(fit.forecast(horizon) - y[origin:origin + horizon]))
    return float(np.mean(errors) / scale), seconds * 1e3 / origins


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--origins", type=int, default=5)
    parser.add_argument("csv", nargs="*")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        paths = args.csv or [
            os.path.join(TRACES, "Twitter_volume_GOOG.csv"),
            os.path.join(TRACES, "ec2_cpu_utilization_5f5533.csv"),
            azure_rate_csv(os.path.join(TRACES, "AzureLLMInferenceTrace_code.csv"), tmp),
        ]
        header = f"{'series':<34} {'period':>6} {'our model':<24} {'our MASE':>9} {'HW MASE':>8} " \
                 f"{'select ms':>10} {'refit ms':>9} {'HW fit ms':>10} {'x select':>9} {'x refit':>9}"
        print(header)
        print("-" * len(header))
        for path in paths:
            report = ours(path, args.horizon, args.origins)
            period = report["periods"][0] if report["periods"] else None
            hw_mase, hw_ms = holt_winters(load(path), args.horizon, args.origins, report["max_history"], period)
            name = os.path.splitext(os.path.basename(path))[0][:34]
            print(
                f"{name:<34} {period or '-':>6} {report['model'][:24]:<24} {report['mase']:>9.3f} {hw_mase:>8.3f} "
                f"{report['select_ms']:>10.2f} {report['refit_ms']:>9.3f} {hw_ms:>10.2f} "
                f"{hw_ms / report['select_ms']:>8.1f}x {hw_ms / report['refit_ms']:>8.1f}x"
            )
        print(
            "\nselect ms: our full model selection (backtest of every candidate) per origin; refit ms: our refit of\n"
            "the selected model with its remembered form on the same history, what the controller does between\n"
            "selections. HW fit ms: one Holt-Winters fit of a fixed structure. x select / x refit: HW fit ms over\n"
            "each; x refit is the like-for-like comparison, x select the worst case (a selection every forecast)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
