#!/usr/bin/env python3
"""The assertions of scripts/suites/monitoring-e2e.sh against a running Prometheus and the webhook's records.

    verify.py rules --prometheus URL
        every rule group loads and evaluates without error; every recording rule returns data; the traffic
        the suite drives shows up as non-zero values where it must (errors, rejections, upstream errors, ...).
    verify.py panels --prometheus URL --start UNIX_TIME [--end UNIX_TIME] --allow FILE
        every dashboard variable has values and every panel query returns data over the run, for each value
        of the single-valued variables, except the panels FILE allows to be empty (each with its reason).
    verify.py alert --prometheus URL --alert NAME --state firing --label K=V ... --timeout S
        waits until Prometheus' ALERTS shows the alert in that state.
    verify.py delivery --log FILE --alert NAME --status firing|resolved --receiver R --label K=V ... --timeout S
        waits until the webhook recorded that notification (bearer token accepted, annotations present).
    verify.py quiet --log FILE --alert NAME --label K=V ...
        fails if the webhook ever recorded the alert firing (e.g. an inhibited warning).

Needs PyYAML; prints what it checked, exits 1 on the first failed assertion group.
"""

import argparse
import json
import sys
import time
from itertools import product
from pathlib import Path

import yaml

import prom

REPO = prom.REPO
POLL_SECONDS = 0.5
# Values the run's traffic must move, each with why: data that is present but all zero would hide a broken
# pipeline (a rule reading the wrong label, a driver that sends nothing).
MUST_BE_POSITIVE = [
    ('sum(namespace_job_service:mcp_server_operation_duration_seconds_count:rate5m{job="mcpulse-meter", service="mcpulse-gateway"})',
     "the driver's sessions through the gateway"),
    ('sum(namespace_job_service:mcp_server_operation_duration_seconds_count:rate5m{job="mcpulse-agent", service="search"})',
     "the gateway places sessions on the second agent"),
    ('sum(namespace_job_service:mcp_server_operation_duration_seconds_count:rate5m{job="mcpulse-meter", service="weather"})',
     "the driver's sessions through the sidecar"),
    ('sum(namespace_job_service_mcp_method_name:mcp_server_operation_errors:rate5m{job="mcpulse-agent", mcp_method_name="tools/call"})',
     "work calls with fail: true are counted as errors"),
    ('sum(namespace_job_service:mcp_queue_rejections:rate5m{service="mcpulse-gateway"})',
     "bursts overflow the gateway's admission queue"),
    ('sum(namespace_job_service_upstream:mcp_upstream_errors:rate5m{job="mcpulse-meter", service="weather"})',
     "the sidecar's agent was killed while traffic flowed"),
    ('max(namespace_job_service:mcp_server_operation_duration_seconds:histogram_quantile{quantile="0.99"})',
     "work calls sleep, so p99 is above zero"),
    ('sum(increase(mcpulse_label_overflow_total{service="mcpulse-gateway"}[10m]))',
     "more unknown tool names than the gateway's --label-limit"),
    ("sum(increase(mcp_server_session_duration_seconds_count[10m]))", "sessions end (DELETE) and are measured"),
    ("sum(namespace_job_service_http_route:http_server_request_duration_seconds_count:rate5m)",
     "agents heartbeat and the gateway polls the registry"),
    ('sum(increase(mcpulse_registry_probes_total{result!="success"}[10m]))',
     "the registry's probes of the killed agent fail"),
]


class Failed(Exception):
    """An assertion did not hold; the message says which and what was seen."""


def labels_arg(items):
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Failed(f"--label {item!r} is not KEY=VALUE")
        out[key] = value
    return out


# ---- rules ----------------------------------------------------------------------------------------------


def recording_rules():
    names = []
    for path in sorted((REPO / "monitoring" / "rules").glob("*.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names += [r["record"] for r in group["rules"] if "record" in r and r["record"] not in names]
    return names


def check_rules(api):
    groups = api.rules()
    expected = set()
    for kind in ("rules", "alerts"):
        for path in (REPO / "monitoring" / kind).glob("*.yaml"):
            expected |= {g["name"] for g in yaml.safe_load(path.read_text())["groups"]}
    loaded = {g["name"] for g in groups}
    if expected - loaded:
        raise Failed(f"rule groups not loaded by Prometheus: {sorted(expected - loaded)}")
    broken = [f"{g['name']}/{r.get('name')}: {r.get('lastError')}" for g in groups for r in g["rules"]
              if r.get("health") != "ok"]
    if broken:
        raise Failed("rules that fail to evaluate:\n  " + "\n  ".join(broken))
    print(f"verify: {sum(len(g['rules']) for g in groups)} rules in {len(groups)} groups evaluate without error")

    empty = [name for name in recording_rules() if not prom.finite_samples(api.instant(name))]
    if empty:
        raise Failed("recording rules without data:\n  " + "\n  ".join(empty))
    print(f"verify: all {len(recording_rules())} recording rules return data")

    zero = []
    for expr, why in MUST_BE_POSITIVE:
        values = prom.finite_samples(api.instant(expr))
        if not values or max(values) <= 0:
            zero.append(f"{expr}  ({why}; got {values})")
    if zero:
        raise Failed("values the traffic should have moved are zero or absent:\n  " + "\n  ".join(zero))
    print(f"verify: {len(MUST_BE_POSITIVE)} traffic-driven values are above zero")


# ---- dashboards -----------------------------------------------------------------------------------------


def load_allow(path):
    entries = yaml.safe_load(Path(path).read_text()) or []
    for entry in entries:
        if not entry.get("reason") or not entry.get("dashboard") or not (entry.get("panel") or entry.get("variable")):
            raise Failed(f"{path}: every entry needs dashboard, panel or variable, and reason: {entry}")
    return entries


def allowed(entries, uid, kind, name, values):
    for entry in entries:
        if entry["dashboard"] == uid and entry.get(kind) == name and \
                all(values.get(k) == v for k, v in (entry.get("when") or {}).items()):
            return entry
    return None


def variable_choices(api, dashboard, start, end):
    """Every combination of values of the single-valued variables, each list read as Grafana would (the
    variable's own label_values query); a variable without values gets a placeholder, so its panels run and
    come back empty (and must be allowed to)."""
    names = prom.single_valued(dashboard)
    lists = []
    for name in names:
        variable = next(v for v in prom.variables(dashboard) if v["name"] == name)
        match, label = prom.label_values_query(variable)
        found = sorted({s.get(label) for s in api.series(match, start, end) if s.get(label)})
        lists.append(found or ["none"])
    return [dict(zip(names, combo)) for combo in product(*lists)]


def check_panels(api, start, end, allow_path):
    range_seconds = max(60, int(end - start))
    allow = load_allow(allow_path)
    used, failures, checked = set(), [], 0
    for stem, dashboard in prom.load_dashboards():
        uid = dashboard["uid"]
        for chosen in variable_choices(api, dashboard, start, end):
            values = prom.variable_values(dashboard, chosen)
            where = f"{uid}" + "".join(f" {k}={v}" for k, v in chosen.items())
            for variable in prom.variables(dashboard):
                if variable["type"] != "query":
                    continue
                match, label = prom.label_values_query(variable)
                match = prom.substitute(match, values, range_seconds)
                found = {s.get(label) for s in api.series(match, start, end)} - {None, ""}
                entry = allowed(allow, uid, "variable", variable["name"], chosen)
                if entry:
                    used.add(id(entry))
                    if found:
                        failures.append(f"{where}: variable ${variable['name']} has values {sorted(found)} but "
                                        f"is allowed to be empty ({entry['reason']}); drop the allow entry")
                elif not found:
                    failures.append(f"{where}: variable ${variable['name']} has no values: {match}, {label}")
            for panel in prom.panels(dashboard):
                entry = allowed(allow, uid, "panel", panel["title"], chosen)
                if entry:
                    used.add(id(entry))
                for tgt in panel["targets"]:
                    expr = prom.substitute(tgt["expr"], values, range_seconds)
                    if tgt.get("instant"):
                        data = prom.finite_samples(api.instant(expr, at=end))
                    else:
                        data = prom.finite_samples(api.range(expr, start, end))
                    checked += 1
                    name = f"{where}: panel {panel['title']!r} ({tgt['refId']})"
                    if data and entry:
                        failures.append(f"{name} has data but is allowed to be empty ({entry['reason']}); "
                                        f"drop the allow entry")
                    elif not data and not entry:
                        failures.append(f"{name} returns no data: {expr}")
        print(f"verify: dashboard {stem}: checked")
    stale = [e for e in allow if id(e) not in used]
    if stale:
        failures.append(f"{allow_path}: entries that match no panel or variable: {stale}")
    if failures:
        raise Failed("dashboard queries:\n  " + "\n  ".join(failures))
    print(f"verify: {checked} panel queries return data (allow-listed ones: {len(used)} entries, all empty)")


# ---- alerts ---------------------------------------------------------------------------------------------


def wait(what, timeout, probe):
    started = time.monotonic()
    while True:
        found = probe()
        if found is not None:
            return found, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def check_alert(api, name, state, labels, timeout):
    selector = ", ".join([f'alertname="{name}"', f'alertstate="{state}"'] + [f'{k}="{v}"' for k, v in labels.items()])
    _, took = wait(f"ALERTS{{{selector}}}", timeout, lambda: api.instant(f"ALERTS{{{selector}}}") or None)
    print(f"verify: {name} {state} in Prometheus after {took:.1f} s")


def records(log):
    path = Path(log)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def matching(record, name, labels, status):
    return [a for a in record["body"].get("alerts", [])
            if a["labels"].get("alertname") == name and a.get("status") == status
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def check_delivery(log, name, status, receiver, labels, timeout):
    def probe():
        for record in records(log):
            if record["receiver"] == receiver and matching(record, name, labels, status):
                return record
        return None

    record, took = wait(f"a {status} {name} {labels} notification to receiver {receiver}", timeout, probe)
    if not record["authorized"]:
        raise Failed(f"{name}: the webhook got the notification without the configured bearer token")
    alert = matching(record, name, labels, status)[0]
    missing = [a for a in ("summary", "description", "runbook_url") if not alert["annotations"].get(a)]
    if missing:
        raise Failed(f"{name}: notification lacks annotations {missing}: {alert}")
    if not alert["annotations"]["runbook_url"].endswith(f"/{name}.md"):
        raise Failed(f"{name}: runbook_url {alert['annotations']['runbook_url']} is not its own runbook")
    print(f"verify: {name} {status} delivered to {receiver} after {took:.1f} s (group status {record['body']['status']})")


def check_quiet(log, name, labels):
    seen = [r["receiver"] for r in records(log) if matching(r, name, labels, "firing")]
    if seen:
        raise Failed(f"{name} {labels} was delivered firing to {seen}; it should have been inhibited")
    print(f"verify: {name} {labels} was not delivered (inhibited)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rules = sub.add_parser("rules")
    rules.add_argument("--prometheus", required=True)
    panels = sub.add_parser("panels")
    panels.add_argument("--prometheus", required=True)
    panels.add_argument("--start", type=float, required=True)
    panels.add_argument("--end", type=float, help="Unix time; default now")
    panels.add_argument("--allow", required=True)
    alert = sub.add_parser("alert")
    alert.add_argument("--prometheus", required=True)
    alert.add_argument("--state", choices=["pending", "firing"], required=True)
    delivery = sub.add_parser("delivery")
    delivery.add_argument("--status", choices=["firing", "resolved"], required=True)
    delivery.add_argument("--receiver", required=True)
    quiet = sub.add_parser("quiet")
    for command in (alert, delivery, quiet):
        command.add_argument("--alert", required=True)
        command.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    for command in (delivery, quiet):
        command.add_argument("--log", required=True)
    for command in (alert, delivery):
        command.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    try:
        if args.command == "rules":
            check_rules(prom.Prometheus(args.prometheus))
        elif args.command == "panels":
            check_panels(prom.Prometheus(args.prometheus), args.start, args.end or time.time(), args.allow)
        elif args.command == "alert":
            check_alert(prom.Prometheus(args.prometheus), args.alert, args.state, labels_arg(args.label), args.timeout)
        elif args.command == "delivery":
            check_delivery(args.log, args.alert, args.status, args.receiver, labels_arg(args.label), args.timeout)
        else:
            check_quiet(args.log, args.alert, labels_arg(args.label))
    except (Failed, prom.PromError, OSError, ValueError, KeyError, yaml.YAMLError) as error:
        print(f"verify.py {args.command}: FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
