"""Shared by verify.py and render.py: a small Prometheus HTTP API client and the expansion of the dashboards'
panel queries and template variables into plain PromQL, the way Grafana would send them.

Standard library only.
"""

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "monitoring" / "dashboards"
# Prometheus answers are small here (a few dozen series); anything bigger means a runaway query.
MAX_RESPONSE = 32 * 1024 * 1024
# Grafana's built-in interval variables, fixed for the run: the scrape interval is 1 s, so a 1-minute rate
# window always holds enough samples, and a 5 s step gives smooth curves over a run of a few minutes.
STEP_SECONDS = 5
BUILTINS = {"__rate_interval": "1m", "__interval": f"{STEP_SECONDS}s", "__interval_ms": str(STEP_SECONDS * 1000)}
# Panels whose queries are plotted or checked; rows carry no query.
QUERY_PANELS = {"timeseries", "stat", "heatmap", "bargauge", "table"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


class PromError(Exception):
    """A Prometheus request failed or answered something unexpected."""


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def _get(self, path, params):
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
                body = response.read(MAX_RESPONSE + 1)
        except urllib.error.HTTPError as error:
            detail = error.read(4096).decode("utf-8", "replace")
            raise PromError(f"{path} {params}: HTTP {error.code}: {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            raise PromError(f"{path}: cannot reach Prometheus at {self.url}: {error}") from error
        if len(body) > MAX_RESPONSE:
            raise PromError(f"{path} {params}: answer larger than {MAX_RESPONSE} bytes")
        try:
            answer = json.loads(body)
        except ValueError as error:
            raise PromError(f"{path}: not JSON: {error}") from error
        if answer.get("status") != "success":
            raise PromError(f"{path} {params}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def instant(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", params)["result"]

    def range(self, expr, start, end, step=STEP_SECONDS):
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
        return self._get("/api/v1/query_range", params)["result"]

    def series(self, match, start, end):
        return self._get("/api/v1/series", {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"})

    def rules(self):
        return self._get("/api/v1/rules", {})["groups"]


def finite_samples(result):
    """Numbers in an instant (vector) or range (matrix) result, NaN and infinities left out: a quantile over
    no observations is NaN, which a panel draws as nothing."""
    values = []
    for series in result:
        points = series.get("values") or ([series["value"]] if "value" in series else [])
        for _, text in points:
            try:
                number = float(text)
            except ValueError:
                continue
            if math.isfinite(number):
                values.append(number)
    return values


def load_dashboards():
    """(file stem, dashboard) for every checked-in dashboard, in name order."""
    return [(path.stem, json.loads(path.read_text())) for path in sorted(DASHBOARDS.glob("*.json"))]


def panels(dashboard):
    """Every panel with queries, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from (p for p in panel.get("panels", []) if p["type"] in QUERY_PANELS)
        elif panel["type"] in QUERY_PANELS:
            yield panel


def variables(dashboard):
    return dashboard.get("templating", {}).get("list", [])


def single_valued(dashboard):
    """Names of the query variables that take exactly one value (no All): each value needs its own check."""
    return [v["name"] for v in variables(dashboard) if v["type"] == "query" and not v.get("multi")]


def substitute(expr, values, range_seconds):
    """The query with every variable replaced: All (`.*`) for multi-value ones, the given value for the rest,
    Grafana's built-ins by the run's fixed intervals. An unknown variable is an error, so a new one cannot slip
    through unreplaced."""

    def value(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name in values:
            return values[name]
        if name in BUILTINS:
            return BUILTINS[name]
        if name in ("__range", "__range_s"):
            return f"{range_seconds}s" if name == "__range" else str(range_seconds)
        raise PromError(f"unknown template variable ${name} in {expr!r}: add it to prom.substitute or the caller")

    return VARIABLE.sub(value, expr)


def variable_values(dashboard, chosen):
    """Values for the dashboard's variables: `chosen` for single-valued ones, All (`.*`) for multi-value ones."""
    values = {}
    for variable in variables(dashboard):
        name = variable["name"]
        if variable["type"] == "datasource":
            values[name] = "prometheus"
        elif variable.get("multi"):
            values[name] = variable.get("allValue") or ".*"
        elif name in chosen:
            values[name] = chosen[name]
        else:
            raise PromError(f"{dashboard['uid']}: no value chosen for single-valued variable ${name}")
    return values


LABEL_VALUES = re.compile(r"^\s*label_values\((?P<match>.+),\s*(?P<label>\w+)\s*\)\s*$")


def label_values_query(variable):
    """(series selector, label) of a `label_values(selector, label)` variable query."""
    query = variable.get("definition") or variable["query"]
    if isinstance(query, dict):
        query = query["query"]
    parsed = LABEL_VALUES.match(query)
    if not parsed:
        raise PromError(f"variable ${variable['name']}: not a label_values(selector, label) query: {query!r}")
    return parsed.group("match"), parsed.group("label")


LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def legend(fmt, metric):
    """A series' legend as Grafana writes it from legendFormat (`{{label}}` placeholders)."""
    if not fmt:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"
    return LEGEND.sub(lambda m: metric.get(m.group(1), ""), fmt)
