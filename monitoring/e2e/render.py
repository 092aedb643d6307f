#!/usr/bin/env python3
"""Renders each mcpulse dashboard's time-series panels from a Prometheus to one PNG per dashboard: a grid of
the panels in dashboard order, each with its title, one line (or stacked area) per series named by the
panel's legend format, and its unit on the y axis. Queries are expanded as verify.py expands them (All for
multi-value variables, --job for the `job` variable, 1m for $__rate_interval).

    render.py --prometheus URL --start UNIX_TIME [--end UNIX_TIME] --allow allow-empty.yaml --out DIR

A picture of what Grafana would show, not a replacement for it: heatmaps, stats, bars and tables are left out.
Needs matplotlib (monitoring/e2e/requirements.txt) and PyYAML.
"""

import argparse
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402 (after choosing the backend)
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402 (Pillow comes with matplotlib)

import prom  # noqa: E402

COLUMNS = 3
MAX_LEGEND = 6
# Grafana's dark theme, so the pictures look like the dashboards they stand for.
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLOURS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d"]
BINARY = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]


def scale(unit, peak):
    """(factor, axis label) for a Grafana unit, chosen from the largest value drawn."""
    if unit == "percentunit":
        return 100, "%"
    if unit == "s":
        return (1000, "ms") if 0 < peak < 1 else (1, "s")
    if unit in ("bytes", "Bps"):
        suffix = "/s" if unit == "Bps" else ""
        for size, name in BINARY:
            if peak >= size:
                return 1 / size, name + suffix
        return 1, "B" + suffix
    return 1, {"reqps": "req/s", "ops": "ops/s", "short": "", "none": ""}.get(unit, unit)


def series_of(api, panel, values, start, end, range_seconds):
    """[(legend, [datetime], [float])] for every series of every target of the panel."""
    out = []
    for target in panel["targets"]:
        expr = prom.substitute(target["expr"], values, range_seconds)
        for result in api.range(expr, start, end):
            stamps = [datetime.fromtimestamp(float(t), tz=timezone.utc) for t, _ in result["values"]]
            numbers = [float(v) for _, v in result["values"]]
            name = prom.legend(target.get("legendFormat", ""), result["metric"])
            # matplotlib hides legend labels that start with "_", such as the label cap's `_other`.
            out.append(("\u200b" + name if name.startswith("_") else name, stamps, numbers))
    # Largest first, so a legend cut at MAX_LEGEND entries names the series that matter.
    return sorted(out, key=lambda s: (-mean(s[2]), s[0]))


def mean(numbers):
    finite = [v for v in numbers if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else 0.0


def draw(axis, panel, series, note, window):
    axis.set_facecolor(PANEL)
    axis.set_title(panel["title"], color=TEXT, fontsize=10, loc="left")
    axis.tick_params(colors=TEXT, labelsize=7)
    axis.grid(color=GRID, linewidth=0.6)
    for spine in axis.spines.values():
        spine.set_color(GRID)
    finite = [v for _, _, vs in series for v in vs if math.isfinite(v)]
    if not finite:
        axis.text(0.5, 0.5, note or "no data", color="#8e8e8e", ha="center", va="center", fontsize=9,
                  wrap=True, transform=axis.transAxes)
        axis.set_xticks([])
        axis.set_yticks([])
        return
    defaults = panel["fieldConfig"]["defaults"]
    factor, label = scale(defaults.get("unit", "short"), max(abs(v) for v in finite))
    stacked = defaults.get("custom", {}).get("stacking", {}).get("mode") == "normal"
    colours = [COLOURS[i % len(COLOURS)] for i in range(len(series))]
    if stacked:
        # Stacked areas need one time axis: the union of the series' steps, a missing or NaN point counting
        # as zero, as Grafana stacks it.
        stamps = sorted({t for _, ts, _ in series for t in ts})
        ys = []
        for _, ts, vs in series:
            at = dict(zip(ts, vs))
            ys.append([at[t] * factor if math.isfinite(at.get(t, math.nan)) else 0 for t in stamps])
        axis.stackplot(stamps, *ys, labels=[s[0] for s in series], colors=colours, alpha=0.55)
        top = max(sum(column) for column in zip(*ys))
    else:
        for (name, ts, vs), colour in zip(series, colours):
            axis.plot(ts, [v * factor for v in vs], label=name, color=colour, linewidth=1.2)
        top = max(finite) * factor
    # Grafana's axis: from the panel's min and max where set, else with headroom above the highest point
    # (a constant series would otherwise sit on the frame).
    if "max" in defaults:
        top = defaults["max"] * factor
    elif top > 0:
        top *= 1.15
    if defaults.get("min") == 0:
        axis.set_ylim(0, top if top > 0 else 1)
    axis.set_ylabel(label, color=TEXT, fontsize=8)
    # Every panel shows the whole run, as Grafana's shared time range does.
    axis.set_xlim(*window)
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    axis.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
    handles, names = axis.get_legend_handles_labels()
    if len(names) > MAX_LEGEND:
        handles = handles[:MAX_LEGEND]
        names = names[:MAX_LEGEND - 1] + [f"... {len(names) - MAX_LEGEND + 1} more"]
    axis.legend(handles, [n[:48] for n in names], fontsize=6.5, loc="upper left", facecolor=PANEL,
                edgecolor=GRID, labelcolor=TEXT, framealpha=0.8)


def render(api, stem, dashboard, job, allow, start, end, out):
    timeseries = sorted((p for p in prom.panels(dashboard) if p["type"] == "timeseries"),
                        key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    if not timeseries:
        return None
    chosen = {name: job if name == "job" else "none" for name in prom.single_valued(dashboard)}
    values = prom.variable_values(dashboard, chosen)
    range_seconds = max(60, int(end - start))
    window = tuple(datetime.fromtimestamp(t, tz=timezone.utc) for t in (start, end))
    rows = math.ceil(len(timeseries) / COLUMNS)
    figure, axes = plt.subplots(rows, COLUMNS, figsize=(16, 2.7 * rows + 0.6), squeeze=False)
    figure.patch.set_facecolor(BACKGROUND)
    for axis, panel in zip(axes.flat, timeseries):
        entry = next((e for e in allow if e["dashboard"] == dashboard["uid"] and e.get("panel") == panel["title"]),
                     None)
        note = f"no data here: {entry['reason']}" if entry else None
        draw(axis, panel, series_of(api, panel, values, start, end, range_seconds), note, window)
    for axis in list(axes.flat)[len(timeseries):]:
        axis.set_visible(False)
    scope = f"job={job}, " if "job" in chosen else ""
    clock = datetime.fromtimestamp(start, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    height = figure.get_figheight()
    figure.suptitle(f"{dashboard['title']}   ({scope}{int(end - start)} s from {clock} UTC, end-to-end test run)",
                    color=TEXT, fontsize=13, x=0.01, y=1 - 0.12 / height, ha="left", va="top")
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    path = out / f"{stem}.png"
    figure.savefig(path, dpi=72, facecolor=BACKGROUND)
    plt.close(figure)
    # A 64-colour palette keeps each picture small enough to check in (under 200 KB) and looks the same:
    # the dark theme has a handful of colours plus the lines' anti-aliasing.
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--end", type=float)
    parser.add_argument("--job", default="mcpulse-meter", help="value of the dashboards' single-valued $job")
    parser.add_argument("--allow", type=Path, required=True, help="allow-empty.yaml: reasons shown on empty panels")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    end = args.end or time.time()
    if not 0 < args.start < end:
        print("render.py: --start must be a Unix time before --end (or now)", file=sys.stderr)
        return 1
    try:
        allow = yaml.safe_load(args.allow.read_text()) or []
        args.out.mkdir(parents=True, exist_ok=True)
        api = prom.Prometheus(args.prometheus)
        for stem, dashboard in prom.load_dashboards():
            path = render(api, stem, dashboard, args.job, allow, args.start, end, args.out)
            if path:
                print(f"render: {path} ({path.stat().st_size // 1024} KiB)")
    except (prom.PromError, OSError, yaml.YAMLError, KeyError) as error:
        print(f"render.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
