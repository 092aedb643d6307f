#!/usr/bin/env python3
"""Checks the monitoring pack beyond what promtool and amtool see: alert conventions and runbooks, test
coverage of every alert and recording rule, dashboard structure, that every PromQL expression (rules, alerts,
dashboard panels, dashboard variables) parses, and that every metric it names is one somebody exports.

Run from the repository root by scripts/suites/monitoring.sh; needs PyYAML and promtool. Exits 1 with one
line per problem.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "monitoring"
RUNBOOKS = ROOT / "docs" / "runbooks"
# The one place the runbook links are defined; every alert's runbook_url must be this plus "<alertname>.md".
RUNBOOK_BASE = "https://github.com/mcpulse/mcpulse/blob/main/docs/runbooks/"
SEVERITIES = {"critical", "warning", "info"}
# Alerts that cannot have a test keeping them quiet, because firing forever is their job.
ALWAYS_FIRING = {"McpulseWatchdog"}
# The registry latency SLO reads this bucket boundary (rules/registry.yaml).
LATENCY_SLO_BUCKET = "0.25"

# Exported by the autoscaler controller (names agreed with it before the code exists).
SCALER_METRICS = {
    "mcpulse_scaler_desired_replicas",
    "mcpulse_scaler_current_replicas",
    "mcpulse_scaler_forecast",
    "mcpulse_scaler_decisions_total",
    "mcpulse_scaler_reconcile_errors_total",
    "mcpulse_scaler_max_replicas",
}
# Standard metrics of kube-prometheus-stack (Prometheus, Alertmanager, kubelet/cAdvisor, kube-state-metrics,
# node-exporter) that the pack reads. Add a name here only after checking the exporter really exposes it.
KUBERNETES_METRICS = {
    "ALERTS",
    "up",
    "prometheus_rule_evaluation_failures_total",
    "alertmanager_notifications_total",
    "alertmanager_notifications_failed_total",
    "container_cpu_usage_seconds_total",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
    "kube_pod_container_resource_limits",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_last_terminated_reason",
    "kube_pod_status_phase",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
}
# Values that stand in for dashboard variables when their queries are parsed.
GRAFANA_INTERVALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
PLACEHOLDER = "mcpulse"

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "inf", "nan",
}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def load_yaml(path):
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        problem(path.relative_to(ROOT), f"not valid YAML: {error}")
        return {}


# ---- what exists ------------------------------------------------------------------------------------------


def documented_metrics():
    """Families in docs/metrics.md (generated from the telemetry code), with histogram series names."""
    path = ROOT / "docs" / "metrics.md"
    names = set()
    for name, kind in re.findall(r"^\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \| (\w+) \|", path.read_text(), re.M):
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    if not names:
        problem("docs/metrics.md", "no metric table rows found; has its format changed?")
    return names


def registry_metrics():
    """Families the registry registers in crates/registry/src/metrics.rs, named as prometheus-client exposes
    them: counters gain `_total`, histograms expose `_bucket`/`_sum`/`_count`."""
    path = ROOT / "crates" / "registry" / "src" / "metrics.rs"
    source = path.read_text()
    struct = re.search(r"pub struct RegistryMetrics \{(.*?)\n\}", source, re.S)
    fields = dict(re.findall(r"^\s+(\w+): (.+),$", struct.group(1) if struct else "", re.M))
    names = set()
    for name, field in re.findall(r'\.register\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)",\s*"[^"]*",\s*metrics\.(\w+)', source):
        kind = fields.get(field, "")
        if "Histogram" in kind:
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
        elif "Counter" in kind:
            names.add(name + "_total")
        elif "Gauge" in kind:
            names.add(name)
        else:
            problem(path.relative_to(ROOT), f"cannot tell the type of {name} (field {field}: {kind!r})")
    if not names:
        problem(path.relative_to(ROOT), "no registered metrics found; has the registration code changed shape?")
    buckets = re.search(r"HTTP_BUCKETS: \[f64; \d+\] = \[([^\]]*)\]", source)
    if not buckets or LATENCY_SLO_BUCKET not in [b.strip() for b in buckets.group(1).split(",")]:
        problem(path.relative_to(ROOT), f"HTTP_BUCKETS has no {LATENCY_SLO_BUCKET} boundary, which the registry "
                                        "latency SLO (monitoring/rules/registry.yaml) reads")
    return names


# ---- PromQL -------------------------------------------------------------------------------------------------


def metric_names(expr):
    """The metric names an expression selects. A light scanner, not a parser: promtool has already said the
    expression parses, so strings, label matchers, grouping clauses and durations can simply be cut out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def substitute_variables(expr):
    """Replaces Grafana variables ($x, ${x}, ${x:fmt}) with plausible values so promtool can parse the query."""

    def value(match):
        name = match.group(1) or match.group(2)
        return GRAFANA_INTERVALS.get(name, PLACEHOLDER)

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def parse_with_promtool(expressions):
    """Parses every (where, expr) pair with one `promtool check rules` run over a generated rule file."""
    rules = [{"record": f"check:expression_{i}", "expr": expr} for i, (_, expr) in enumerate(expressions)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump({"groups": [{"name": "expressions", "rules": rules}]}, handle)
        path = Path(handle.name)
    try:
        result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    finally:
        path.unlink()
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    reported = False
    for index in sorted({int(i) for i in re.findall(r"check:expression_(\d+)", output)}):
        where, expr = expressions[index]
        problem(where, f"PromQL does not parse: {expr}")
        reported = True
    if not reported:
        problem("promtool", f"could not check the collected expressions: {output.strip()}")


# ---- rules, alerts and their tests ----------------------------------------------------------------------


def rule_files(kind):
    return sorted((PACK / kind).glob("*.yaml"))


def collect_rules():
    """Every rule of rules/ and alerts/ as (file, rule) pairs."""
    out = []
    for kind in ("rules", "alerts"):
        for path in rule_files(kind):
            for group in (load_yaml(path) or {}).get("groups", []):
                for rule in group.get("rules", []):
                    out.append((path, rule))
    return out


def check_alert(path, rule):
    where = f"{path.relative_to(ROOT)}: {rule['alert']}"
    name = rule["alert"]
    if not re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*", name):
        problem(where, "alert names are CamelCase")
    severity = rule.get("labels", {}).get("severity")
    if severity not in SEVERITIES:
        problem(where, f"label severity is {severity!r}; use one of {sorted(SEVERITIES)}")
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        if not annotations.get(key):
            problem(where, f"annotation {key} is missing")
    expected = f"{RUNBOOK_BASE}{name}.md"
    if annotations.get("runbook_url") != expected:
        problem(where, f"runbook_url must be {expected}")
    if not (RUNBOOKS / f"{name}.md").is_file():
        problem(where, f"no runbook: write docs/runbooks/{name}.md")


def check_tests(rules):
    """Every alert has a test where it fires and one where it stays quiet; every rule file is tested; every
    recording rule's value is asserted, directly or through a tested rule or alert that reads it."""
    fired, quiet, tested_files, asserted = set(), set(), set(), []
    for path in sorted((PACK / "tests").glob("*.yaml")):
        document = load_yaml(path) or {}
        tested_files.update((path.parent / f).resolve() for f in document.get("rule_files", []))
        for test in document.get("tests", []):
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
            asserted += [case["expr"] for case in test.get("promql_expr_test", [])]
    alerts = {rule["alert"] for _, rule in rules if "alert" in rule}
    for name in sorted(alerts - fired):
        problem("monitoring/tests", f"no test makes {name} fire")
    for name in sorted(alerts - quiet - ALWAYS_FIRING):
        problem("monitoring/tests", f"no test keeps {name} quiet")
    for path in rule_files("rules") + rule_files("alerts"):
        if path.resolve() not in tested_files:
            problem(path.relative_to(ROOT), "no file in monitoring/tests loads it")
    # A recording rule is covered if an assertion names it, or a covered rule or any alert reads it.
    readers = {}
    for _, rule in rules:
        for name in metric_names(rule["expr"]):
            readers.setdefault(name, []).append(rule)
    covered = set()
    frontier = {n for expr in asserted for n in metric_names(expr)}
    frontier |= {n for _, rule in rules if "alert" in rule for n in metric_names(rule["expr"])}
    while frontier:
        name = frontier.pop()
        if name in covered:
            continue
        covered.add(name)
        for _, rule in rules:
            if rule.get("record") == name:
                frontier |= metric_names(rule["expr"]) - covered
    for path, rule in rules:
        if "record" in rule and rule["record"] not in covered:
            problem(f"{path.relative_to(ROOT)}: {rule['record']}", "no test asserts this recording rule's value")


def check_runbooks(alerts):
    for path in sorted(RUNBOOKS.glob("*.md")):
        if path.stem not in alerts:
            problem(path.relative_to(ROOT), "runbook for an alert that does not exist")


# ---- dashboards -----------------------------------------------------------------------------------------


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def check_dashboards():
    """Structure of each dashboard; returns its expressions as (where, expr) pairs."""
    expressions, uids = [], {}
    for path in sorted((PACK / "dashboards").glob("*.json")):
        where = path.relative_to(ROOT)
        try:
            board = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            problem(where, f"not valid JSON: {error}")
            continue
        uid = board.get("uid")
        if not uid or uid in uids:
            problem(where, f"uid {uid!r} is missing or also used by {uids.get(uid)}")
        uids[uid] = where
        if not isinstance(board.get("schemaVersion"), int) or board["schemaVersion"] < 36:
            problem(where, "schemaVersion must be a current one (36 or later)")
        variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
        source = variables.get("datasource", {})
        if source.get("type") != "datasource" or source.get("query") != "prometheus":
            problem(where, "needs a `datasource` variable of type datasource for prometheus")
        ids = set()
        for panel in all_panels(board.get("panels", [])):
            label = f"{where}: panel {panel.get('id')} {panel.get('title')!r}"
            if panel.get("id") in ids or not isinstance(panel.get("id"), int):
                problem(label, "panel ids must be unique integers")
            ids.add(panel.get("id"))
            if panel.get("type") == "row":
                continue
            if panel.get("datasource", {}).get("uid") != "${datasource}":
                problem(label, "panel datasource must be ${datasource}")
            if not panel.get("targets"):
                problem(label, "panel has no queries")
            for t in panel.get("targets", []):
                if t.get("datasource", {}).get("uid") != "${datasource}":
                    problem(label, "query datasource must be ${datasource}")
                expressions.append((f"{label} query {t.get('refId')}", substitute_variables(t.get("expr", ""))))
        for name, variable in variables.items():
            if variable.get("type") != "query":
                continue
            query = variable.get("definition", "")
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
            if not match:
                problem(f"{where}: variable {name}", f"expected label_values(<selector>, <label>), got {query!r}")
                continue
            expressions.append((f"{where}: variable {name}", substitute_variables(match.group(1))))
    return expressions


# ---- main ---------------------------------------------------------------------------------------------------


def main():
    rules = collect_rules()
    alerts = {rule["alert"] for _, rule in rules if "alert" in rule}
    for path, rule in rules:
        if "alert" in rule:
            check_alert(path, rule)
    check_tests(rules)
    check_runbooks(alerts)

    expressions = [(f"{path.relative_to(ROOT)}: {rule.get('alert') or rule.get('record')}", rule["expr"])
                   for path, rule in rules]
    expressions += check_dashboards()
    parse_with_promtool(expressions)

    known = documented_metrics() | registry_metrics() | SCALER_METRICS | KUBERNETES_METRICS
    known |= {rule["record"] for _, rule in rules if "record" in rule}
    for where, expr in expressions:
        for name in sorted(metric_names(expr) - known):
            problem(where, f"metric {name} is exported by nothing the pack knows (docs/metrics.md, the registry, "
                           "the autoscaler, or monitoring/check.py's Kubernetes allow-list)")

    for line in problems:
        print(line, file=sys.stderr)
    print(f"check.py: {len(rules)} rules, {len(expressions)} expressions, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
