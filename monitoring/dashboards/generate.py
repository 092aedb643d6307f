#!/usr/bin/env python3
"""Writes the mcpulse Grafana dashboards (monitoring/dashboards/*.json) from one description, so every panel
shares the same data source variable, units, legends and layout rules.

    python3 monitoring/dashboards/generate.py           # rewrite the JSON files
    python3 monitoring/dashboards/generate.py --check   # exit 1 if a checked-in file differs from the output

Standard library only. The JSON files are checked in: they are what deploy/ packs into ConfigMaps.
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MCP = 'job="$job", namespace=~"$namespace", service=~"$service"'
REGISTRY = 'job="mcpulse-registry", namespace=~"$namespace"'
# The registry SLOs (rules/registry.yaml): error budget 0.1% of requests, latency budget 1% slower than 250 ms.
ERROR_BUDGET = 0.001
LATENCY_BUDGET = 0.01


# ---- panels ---------------------------------------------------------------------------------------------


def target(expr, legend="", *, instant=False, fmt="time_series", ref="A"):
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
        "refId": ref,
    }


def targets(*pairs):
    """Targets from (expr, legend) pairs, lettered A, B, C..."""
    return [target(expr, legend, ref=chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def thresholds(*steps):
    """Steps as (value, colour); the first step starts at -infinity."""
    out = [{"color": steps[0][1], "value": None}]
    out += [{"color": colour, "value": value} for value, colour in steps[1:]]
    return {"mode": "absolute", "steps": out}


GREEN = thresholds((None, "green"))


def stat(title, description, expr, unit, steps=GREEN, *, w=4, h=4, decimals=None):
    defaults = {"unit": unit, "thresholds": steps, "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "targets": [target(expr, instant=True)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
        "_size": (w, h),
    }


def timeseries(title, description, tgts, unit, *, w=12, h=8, stack=False, overrides=(), fill=10, maximum=None):
    custom = {
        "drawStyle": "line",
        "fillOpacity": fill,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
    }
    defaults = {"unit": unit, "custom": custom, "min": 0}
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": {
            "legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (w, h),
    }


def heatmap(title, description, expr, unit, *, w=12, h=8):
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "targets": [target(expr, "{{le}}", fmt="heatmap")],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64},
            "legend": {"show": True},
            "tooltip": {"show": True, "yHistogram": True},
            "yAxis": {"axisPlacement": "left", "unit": unit},
            "rowsFrame": {"layout": "auto"},
        },
        "_size": (w, h),
    }


def bars(title, description, expr, legend, unit, *, w=12, h=8):
    """Instant values as horizontal bars: rankings (top tools, top clients)."""
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "targets": [target(expr, legend, instant=True)],
        "fieldConfig": {"defaults": {"unit": unit, "min": 0, "color": {"mode": "continuous-BlPu"}}, "overrides": []},
        "options": {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
        },
        "_size": (w, h),
    }


def table(title, description, tgts, *, w=24, h=8, rename=None):
    """Instant queries joined on their labels into one row per series."""
    for t in tgts:
        t.update(instant=True, range=False, format="table")
    return {
        "type": "table",
        "title": title,
        "description": description,
        "targets": tgts,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename or {}}},
        ],
        "_size": (w, h),
    }


def band(lower_name, upper_name):
    """Overrides that shade the area between two series (a forecast interval)."""
    return [
        {
            "matcher": {"id": "byName", "options": upper_name},
            "properties": [
                {"id": "custom.fillBelowTo", "value": lower_name},
                {"id": "custom.fillOpacity", "value": 20},
                {"id": "custom.lineWidth", "value": 0},
            ],
        },
        {
            "matcher": {"id": "byName", "options": lower_name},
            "properties": [{"id": "custom.lineWidth", "value": 0}, {"id": "custom.fillOpacity", "value": 0}],
        },
    ]


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(items):
    """Places panels left to right in a 24-column grid, wrapping and starting a new line at each row, and
    numbers them: ids are stable as long as the order is."""
    panels, x, y, line_height = [], 0, 0, 0
    for number, item in enumerate(items, start=1):
        panel = {"id": number, "datasource": DATASOURCE} if item["type"] != "row" else {"id": number}
        panel.update({k: v for k, v in item.items() if k != "_size"})
        if item["type"] == "row":
            y += line_height
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            x, y, line_height = 0, y + 1, 0
        else:
            w, h = item["_size"]
            if x + w > 24:
                x, y, line_height = 0, y + line_height, 0
            panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            x, line_height = x + w, max(line_height, h)
        panels.append(panel)
    return panels


# ---- template variables ---------------------------------------------------------------------------------


def datasource_variable():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_variable(name, label, query, *, multi=True):
    """A variable filled from `label_values(...)`; multi-value ones default to All, matching everything."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {},
        "hide": 0,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }


def mcp_variables(*extra):
    return [
        datasource_variable(),
        query_variable("job", "Metered by", "label_values(mcp_server_sessions_active, job)", multi=False),
        query_variable("namespace", "Namespace", 'label_values(mcp_server_sessions_active{job="$job"}, namespace)'),
        query_variable(
            "service",
            "MCP server",
            'label_values(mcp_server_sessions_active{job="$job", namespace=~"$namespace"}, service)',
        ),
        *extra,
    ]


def dashboard(uid, title, description, variables, items, *, time_from="now-6h"):
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["mcpulse"],
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "version": 1,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {"type": "dashboards", "tags": ["mcpulse"], "asDropdown": True, "title": "mcpulse", "includeVars": True,
             "keepTime": True}
        ],
        "templating": {"list": variables},
        "panels": layout(items),
    }


# ---- the dashboards -------------------------------------------------------------------------------------


def overview():
    rec = 'job="$job", namespace=~"$namespace"'
    return dashboard(
        "mcpulse-overview",
        "mcpulse / Overview",
        "The whole MCP fleet at a glance: traffic, errors, latency, sessions, registry health and firing alerts.",
        [
            datasource_variable(),
            query_variable("job", "Metered by", "label_values(mcp_server_sessions_active, job)", multi=False),
            query_variable("namespace", "Namespace", 'label_values(mcp_server_sessions_active{job="$job"}, namespace)'),
        ],
        [
            row("Key indicators"),
            stat("Requests / s", "MCP requests and notifications handled per second, all servers.",
                 f"sum(namespace_job_service:mcp_server_operation_duration_seconds_count:rate5m{{{rec}}})", "reqps"),
            stat("Error ratio", "Share of MCP operations that ended in an error (any error.type), last 5 minutes.",
                 f"sum(namespace_job_service:mcp_server_operation_errors:rate5m{{{rec}}})"
                 f" / sum(namespace_job_service:mcp_server_operation_duration_seconds_count:rate5m{{{rec}}})",
                 "percentunit", thresholds((None, "green"), (0.01, "orange"), (0.05, "red")), decimals=2),
            stat("Worst p99 latency", "The slowest MCP server's 99th percentile operation duration.",
                 f'max(namespace_job_service:mcp_server_operation_duration_seconds:histogram_quantile{{{rec}, quantile="0.99"}})',
                 "s", thresholds((None, "green"), (1, "orange"), (5, "red"))),
            stat("Open sessions", "MCP sessions currently open on all servers.",
                 f"sum(namespace_job_service:mcp_server_sessions_active:sum{{{rec}}})", "short"),
            stat("Healthy instances", "MCP server instances the registry reports healthy.",
                 'max(mcpulse_registry_instances{job="mcpulse-registry", state="healthy"})', "short",
                 thresholds((None, "red"), (1, "green"))),
            stat("Firing alerts", "mcpulse alerts firing now, Watchdog excluded.",
                 'count(ALERTS{alertstate="firing", alertname=~"Mcp.*", alertname!="McpulseWatchdog"}) or vector(0)',
                 "short", thresholds((None, "green"), (1, "red"))),
            row("Traffic by MCP server"),
            timeseries("Requests / s", "Per MCP server (Kubernetes service).",
                       targets((f"namespace_job_service:mcp_server_operation_duration_seconds_count:rate5m{{{rec}}}",
                                "{{namespace}}/{{service}}")), "reqps"),
            timeseries("Error ratio", "Share of failed operations per MCP server.",
                       targets((f"namespace_job_service:mcp_server_operation_errors:ratio_rate5m{{{rec}}}",
                                "{{namespace}}/{{service}}")), "percentunit"),
            timeseries("p99 latency", "99th percentile operation duration per MCP server.",
                       targets((f'namespace_job_service:mcp_server_operation_duration_seconds:histogram_quantile{{{rec}, quantile="0.99"}}',
                                "{{namespace}}/{{service}}")), "s"),
            timeseries("Open sessions", "MCP sessions open per server.",
                       targets((f"namespace_job_service:mcp_server_sessions_active:sum{{{rec}}}",
                                "{{namespace}}/{{service}}")), "short"),
            row("Capacity"),
            timeseries("Queued requests", "Requests waiting in admission queues, per server.",
                       targets((f"sum by (namespace, service) (namespace_job_service_pod:mcp_queue_depth:sum{{{rec}}})",
                                "{{namespace}}/{{service}}")), "short", w=8),
            timeseries("Rejected requests / s", "Requests the admission queues turned away, per server.",
                       targets((f"namespace_job_service:mcp_queue_rejections:rate5m{{{rec}}}",
                                "{{namespace}}/{{service}}")), "reqps", w=8),
            timeseries("Registered instances", "Instances in the registry by health state.",
                       targets(('max by (state) (mcpulse_registry_instances{job="mcpulse-registry"})', "{{state}}")),
                       "short", w=8, stack=True),
        ],
    )


def mcp_server():
    sel = MCP
    tool = f'{sel}, gen_ai_tool_name=~"$tool"'
    return dashboard(
        "mcpulse-mcp-server",
        "mcpulse / MCP server",
        "One MCP server (agent) in depth: methods, tools, latency, errors by type, sessions, SSE streams, "
        "admission queue, upstreams and the process.",
        mcp_variables(
            query_variable(
                "tool", "Tool",
                f'label_values(mcp_server_operation_duration_seconds_count{{{sel}, mcp_method_name="tools/call"}}, gen_ai_tool_name)',
            )
        ),
        [
            row("Traffic"),
            timeseries("Requests / s by method", "MCP operations per second, by JSON-RPC method.",
                       targets((f"sum by (mcp_method_name) (rate(mcp_server_operation_duration_seconds_count{{{sel}}}[$__rate_interval]))",
                                "{{mcp_method_name}}")), "reqps", stack=True),
            timeseries("Tool calls / s by tool", "tools/call requests per second, by tool.",
                       targets((f'sum by (gen_ai_tool_name) (rate(mcp_server_operation_duration_seconds_count{{{tool}, mcp_method_name="tools/call"}}[$__rate_interval]))',
                                "{{gen_ai_tool_name}}")), "reqps", stack=True),
            timeseries("Messages / s", "JSON-RPC messages by direction and kind.",
                       targets((f"sum by (direction, kind) (rate(mcp_messages_total{{{sel}}}[$__rate_interval]))",
                                "{{direction}} {{kind}}")), "short"),
            timeseries("Message size p95", "95th percentile JSON-RPC message body size by direction.",
                       targets((f"histogram_quantile(0.95, sum by (direction, le) (rate(mcp_message_size_bytes_bucket{{{sel}}}[$__rate_interval])))",
                                "{{direction}}")), "bytes"),
            row("Latency"),
            heatmap("Operation duration", "Distribution of MCP operation durations (all methods), from the histogram.",
                    f"sum by (le) (increase(mcp_server_operation_duration_seconds_bucket{{{sel}}}[$__rate_interval]))", "s"),
            timeseries("Duration quantiles", "p50, p95 and p99 of all operations.",
                       targets(*[(f"histogram_quantile({q}, sum by (le) (rate(mcp_server_operation_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                                  f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)]), "s"),
            timeseries("p95 by method", "95th percentile duration per method.",
                       targets((f"histogram_quantile(0.95, sum by (mcp_method_name, le) (rate(mcp_server_operation_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                                "{{mcp_method_name}}")), "s"),
            timeseries("p95 by tool", "95th percentile duration of tools/call per tool.",
                       targets((f'histogram_quantile(0.95, sum by (gen_ai_tool_name, le) (rate(mcp_server_operation_duration_seconds_bucket{{{tool}, mcp_method_name="tools/call"}}[$__rate_interval])))',
                                "{{gen_ai_tool_name}}")), "s"),
            row("Errors"),
            timeseries("Errors / s by type", "Failed operations by error.type (tool_error, invalid_params, upstream_timeout, ...).",
                       targets((f'sum by (error_type) (rate(mcp_server_operation_duration_seconds_count{{{sel}, error_type!=""}}[$__rate_interval]))',
                                "{{error_type}}")), "reqps", stack=True),
            timeseries("Error ratio by method", "Share of each method's operations that failed.",
                       targets((f"namespace_job_service_mcp_method_name:mcp_server_operation_errors:ratio_rate5m{{{sel}}}",
                                "{{service}} {{mcp_method_name}}")), "percentunit"),
            row("Sessions and SSE streams"),
            timeseries("Open sessions", "MCP sessions currently open, per pod.",
                       targets((f"sum by (pod) (mcp_server_sessions_active{{{sel}}})", "{{pod}}")), "short", w=8, stack=True),
            timeseries("Sessions started / s", "New sessions by protocol version.",
                       targets((f"sum by (mcp_protocol_version) (rate(mcp_server_sessions_total{{{sel}}}[$__rate_interval]))",
                                "{{mcp_protocol_version}}")), "short", w=8),
            timeseries("Session duration", "Median and 95th percentile length of ended sessions.",
                       targets(*[(f"histogram_quantile({q}, sum by (le) (rate(mcp_server_session_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                                  f"p{round(q * 100)}") for q in (0.5, 0.95)]), "s", w=8),
            timeseries("Open SSE streams", "Server-sent event streams open, by stream (post: a response stream, get: the standalone stream).",
                       targets((f"sum by (stream) (mcp_sse_streams_open{{{sel}}})", "{{stream}}")), "short"),
            timeseries("SSE events / s", "Server-sent events relayed to clients, by stream.",
                       targets((f"sum by (stream) (rate(mcp_sse_events_total{{{sel}}}[$__rate_interval]))", "{{stream}}")), "short"),
            row("Admission queue and upstreams"),
            timeseries("Queued and in flight", "Requests waiting in the admission queue and forwarded but unanswered, per pod.",
                       targets((f"sum by (pod) (mcp_queue_depth{{{sel}}})", "queued {{pod}}"),
                               (f"sum by (pod) (mcp_requests_in_flight{{{sel}}})", "in flight {{pod}}")), "short", w=8),
            timeseries("Queue wait p99", "99th percentile time spent queued before forwarding, per upstream.",
                       targets((f"histogram_quantile(0.99, sum by (upstream, le) (rate(mcp_queue_wait_seconds_bucket{{{sel}}}[$__rate_interval])))",
                                "{{upstream}}")), "s", w=8),
            timeseries("Rejections / s", "Requests turned away by the queue, by reason (full, timeout).",
                       targets((f"sum by (reason) (rate(mcp_queue_rejections_total{{{sel}}}[$__rate_interval]))", "{{reason}}")),
                       "reqps", w=8, stack=True),
            timeseries("Upstream errors / s", "Failed calls to the upstream MCP server, by upstream and error type.",
                       targets((f"sum by (upstream, error_type) (rate(mcp_upstream_errors_total{{{sel}}}[$__rate_interval]))",
                                "{{upstream}} {{error_type}}")), "reqps", w=24),
            row("Process"),
            timeseries("CPU", "CPU seconds per second, per pod.",
                       targets((f"sum by (pod) (rate(process_cpu_seconds_total{{{sel}}}[$__rate_interval]))", "{{pod}}")),
                       "short", w=6),
            timeseries("Resident memory", "Resident set size per pod.",
                       targets((f"sum by (pod) (process_resident_memory_bytes{{{sel}}})", "{{pod}}")), "bytes", w=6),
            timeseries("File descriptors used", "Open descriptors as a share of the limit, per pod.",
                       targets((f"max by (pod) (process_open_fds{{{sel}}}) / max by (pod) (process_max_fds{{{sel}}})", "{{pod}}")),
                       "percentunit", w=6, maximum=1),
            timeseries("Label overflow / s", "Client-supplied label values folded into _other because a label hit its cap.",
                       targets((f"sum by (metric, label) (rate(mcpulse_label_overflow_total{{{sel}}}[$__rate_interval]))",
                                "{{metric}} {{label}}")), "short", w=6),
        ],
    )


def registry():
    sel = REGISTRY
    rec = 'job="mcpulse-registry", namespace=~"$namespace"'
    return dashboard(
        "mcpulse-registry",
        "mcpulse / Registry",
        "The registry's SLOs, HTTP RED by route template, storage performance, the fleet it tracks and its probes.",
        [datasource_variable(),
         query_variable("namespace", "Namespace", 'label_values(mcpulse_registry_instances{job="mcpulse-registry"}, namespace)')],
        [
            row("SLOs (availability 99.9%, latency 99% within 250 ms)"),
            stat("Availability, 3 days", "Share of API requests (probes excluded) answered without a 5xx.",
                 f"1 - max(namespace_job_service:http_server_request_errors:ratio_rate3d{{{rec}}})", "percentunit",
                 thresholds((None, "red"), (1 - ERROR_BUDGET, "green")), w=6, decimals=3),
            stat("Error budget burn rate, 1 h", "How fast the availability budget is spent: 1 lasts exactly 30 days; 14.4 pages.",
                 f"max(namespace_job_service:http_server_request_errors:ratio_rate1h{{{rec}}}) / {ERROR_BUDGET}", "none",
                 thresholds((None, "green"), (1, "orange"), (14.4, "red")), w=6, decimals=1),
            stat("Within 250 ms, 3 days", "Share of API requests (probes excluded) that completed within 250 ms.",
                 f"1 - max(namespace_job_service:http_server_request_slow:ratio_rate3d{{{rec}}})", "percentunit",
                 thresholds((None, "red"), (1 - LATENCY_BUDGET, "green")), w=6, decimals=2),
            stat("Latency budget burn rate, 1 h", "How fast the latency budget is spent: 1 lasts exactly 30 days; 14.4 pages.",
                 f"max(namespace_job_service:http_server_request_slow:ratio_rate1h{{{rec}}}) / {LATENCY_BUDGET}", "none",
                 thresholds((None, "green"), (1, "orange"), (14.4, "red")), w=6, decimals=1),
            row("HTTP by route"),
            timeseries("Requests / s", "Per route template.",
                       targets((f"namespace_job_service_http_route:http_server_request_duration_seconds_count:rate5m{{{rec}}}",
                                "{{http_route}}")), "reqps", w=8, stack=True),
            timeseries("5xx ratio", "Share of requests answered with a 5xx, per route template.",
                       targets((f"namespace_job_service_http_route:http_server_request_errors:ratio_rate5m{{{rec}}}",
                                "{{http_route}}")), "percentunit", w=8),
            timeseries("p95 latency", "95th percentile duration per route template.",
                       targets((f'namespace_job_service_http_route:http_server_request_duration_seconds:histogram_quantile{{{rec}, quantile="0.95"}}',
                                "{{http_route}}")), "s", w=8),
            timeseries("Responses / s by status", "All routes, by method and status code.",
                       targets((f"sum by (http_request_method, http_response_status_code) (rate(http_server_request_duration_seconds_count{{{sel}}}[$__rate_interval]))",
                                "{{http_request_method}} {{http_response_status_code}}")), "reqps", w=24),
            row("Storage"),
            timeseries("Operations / s", "Storage operations per second, by operation.",
                       targets((f"namespace_job_service_operation:mcpulse_registry_storage_operation_duration_seconds_count:rate5m{{{rec}}}",
                                "{{operation}}")), "ops", w=8, stack=True),
            timeseries("p99 duration", "99th percentile storage operation duration, by operation.",
                       targets((f"histogram_quantile(0.99, sum by (operation, le) (rate(mcpulse_registry_storage_operation_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                                "{{operation}}")), "s", w=8),
            timeseries("Failure ratio", "Share of storage operations that failed, by operation.",
                       targets((f"namespace_job_service_operation:mcpulse_registry_storage_operation_errors:ratio_rate5m{{{rec}}}",
                                "{{operation}}")), "percentunit", w=8),
            row("Fleet and probes"),
            timeseries("Instances by state", "Registered MCP server instances by health state (every replica reports the same).",
                       targets((f"max by (state) (mcpulse_registry_instances{{{sel}}})", "{{state}}")), "short", w=8, stack=True),
            timeseries("Oldest heartbeat age", "Age of the oldest heartbeat among live instances.",
                       targets((f"max(mcpulse_registry_oldest_heartbeat_age_seconds{{{sel}}})", "oldest")), "s", w=8),
            timeseries("Heartbeat interval p95", "95th percentile time between heartbeats of one instance.",
                       targets((f"histogram_quantile(0.95, sum by (le) (rate(mcpulse_registry_heartbeat_interval_seconds_bucket{{{sel}}}[$__rate_interval])))",
                                "p95")), "s", w=8),
            timeseries("Probes / s by result", "Active MCP probes run by the registry replicas, by result.",
                       targets((f"sum by (result) (rate(mcpulse_registry_probes_total{{{sel}}}[$__rate_interval]))", "{{result}}")),
                       "short", stack=True),
            timeseries("Probe duration p95", "95th percentile probe round trip, by result.",
                       targets((f"histogram_quantile(0.95, sum by (result, le) (rate(mcpulse_registry_probe_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                                "{{result}}")), "s"),
            row("Capacity"),
            timeseries("CPU", "CPU seconds per second, per replica.",
                       targets((f"sum by (pod) (rate(process_cpu_seconds_total{{{sel}}}[$__rate_interval]))", "{{pod}}")), "short", w=8),
            timeseries("Resident memory", "Resident set size per replica.",
                       targets((f"sum by (pod) (process_resident_memory_bytes{{{sel}}})", "{{pod}}")), "bytes", w=8),
            timeseries("File descriptors used", "Open descriptors as a share of the limit, per replica.",
                       targets((f"max by (pod) (process_open_fds{{{sel}}}) / max by (pod) (process_max_fds{{{sel}}})", "{{pod}}")),
                       "percentunit", w=8, maximum=1),
        ],
    )


def infrastructure():
    pods = 'namespace=~"$namespace", pod=~"$pod", container!=""'
    return dashboard(
        "mcpulse-infrastructure",
        "mcpulse / Infrastructure",
        "Nodes, pods and containers running mcpulse, from the standard Kubernetes metrics "
        "(node-exporter, cAdvisor, kube-state-metrics).",
        [
            datasource_variable(),
            query_variable("namespace", "Namespace", 'label_values(up{job=~"mcpulse-.*"}, namespace)'),
            query_variable("pod", "Pod", 'label_values(up{job=~"mcpulse-.*", namespace=~"$namespace"}, pod)'),
        ],
        [
            row("Nodes"),
            timeseries("CPU utilisation", "Busy share of each node's CPUs.",
                       targets(('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[$__rate_interval]))', "{{instance}}")),
                       "percentunit", w=8, maximum=1),
            timeseries("Memory utilisation", "Share of each node's memory not available to new work.",
                       targets(("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}")),
                       "percentunit", w=8, maximum=1),
            timeseries("Root filesystem used", "Share of each node's root filesystem in use.",
                       targets(('1 - node_filesystem_avail_bytes{mountpoint="/", fstype!="rootfs"} / node_filesystem_size_bytes{mountpoint="/", fstype!="rootfs"}',
                                "{{instance}}")), "percentunit", w=8, maximum=1),
            row("Containers"),
            timeseries("CPU usage", "CPU cores used per container.",
                       targets((f"sum by (pod, container) (rate(container_cpu_usage_seconds_total{{{pods}}}[$__rate_interval]))",
                                "{{pod}}/{{container}}")), "short"),
            timeseries("CPU throttling", "Share of CFS periods in which each container was throttled.",
                       targets((f"sum by (pod, container) (rate(container_cpu_cfs_throttled_periods_total{{{pods}}}[$__rate_interval]))"
                                f" / sum by (pod, container) (rate(container_cpu_cfs_periods_total{{{pods}}}[$__rate_interval]))",
                                "{{pod}}/{{container}}")), "percentunit", maximum=1),
            timeseries("Memory working set", "Working set per container (what the OOM killer compares with the limit).",
                       targets((f"sum by (pod, container) (container_memory_working_set_bytes{{{pods}}})", "{{pod}}/{{container}}")),
                       "bytes"),
            timeseries("Memory vs limit", "Working set as a share of the memory limit.",
                       targets((f"max by (pod, container) (container_memory_working_set_bytes{{{pods}}})"
                                f' / max by (pod, container) (kube_pod_container_resource_limits{{{pods}, resource="memory"}})',
                                "{{pod}}/{{container}}")), "percentunit", maximum=1),
            row("Pods"),
            timeseries("Network received", "Bytes per second received per pod.",
                       targets(('sum by (pod) (rate(container_network_receive_bytes_total{namespace=~"$namespace", pod=~"$pod"}[$__rate_interval]))',
                                "{{pod}}")), "Bps", w=8),
            timeseries("Network sent", "Bytes per second sent per pod.",
                       targets(('sum by (pod) (rate(container_network_transmit_bytes_total{namespace=~"$namespace", pod=~"$pod"}[$__rate_interval]))',
                                "{{pod}}")), "Bps", w=8),
            timeseries("Container restarts", "Restarts per container in each interval.",
                       targets((f"sum by (pod, container) (increase(kube_pod_container_status_restarts_total{{{pods}}}[$__rate_interval]))",
                                "{{pod}}/{{container}}")), "short", w=8),
            table("Pods", "Phase, restarts and the last termination reason of each mcpulse pod.",
                  [target('max by (pod, phase) (kube_pod_status_phase{namespace=~"$namespace", pod=~"$pod"} == 1)', ref="A"),
                   target(f"sum by (pod) (kube_pod_container_status_restarts_total{{{pods}}})", ref="B"),
                   target(f"max by (pod, reason) (kube_pod_container_status_last_terminated_reason{{{pods}}})", ref="C")],
                  rename={"Value #A": "in phase", "Value #B": "restarts", "Value #C": "terminated"}),
        ],
    )


def autoscaling():
    sel = 'namespace=~"$namespace", autoscaler=~"$autoscaler"'
    one = 'namespace=~"$namespace", autoscaler="$autoscaler"'
    return dashboard(
        "mcpulse-autoscaling",
        "mcpulse / Autoscaling",
        "What the mcpulse autoscaler decided and why: desired vs current replicas, the load forecast band, "
        "scaling decisions and controller errors.",
        [
            datasource_variable(),
            query_variable("namespace", "Namespace", "label_values(mcpulse_scaler_desired_replicas, namespace)"),
            query_variable("autoscaler", "Autoscaler",
                           'label_values(mcpulse_scaler_desired_replicas{namespace=~"$namespace"}, autoscaler)', multi=False),
        ],
        [
            row("Replicas"),
            stat("Current", "Replicas running now.", f"max(mcpulse_scaler_current_replicas{{{one}}})", "short", w=8),
            stat("Desired", "Replicas the autoscaler wants.", f"max(mcpulse_scaler_desired_replicas{{{one}}})", "short", w=8),
            stat("Maximum", "The autoscaler's cap.", f"max(mcpulse_scaler_max_replicas{{{one}}})", "short", w=8),
            timeseries("Desired vs current", "Replicas wanted, running, and the cap.",
                       targets((f"max(mcpulse_scaler_desired_replicas{{{one}}})", "desired"),
                               (f"max(mcpulse_scaler_current_replicas{{{one}}})", "current"),
                               (f"max(mcpulse_scaler_max_replicas{{{one}}})", "maximum")), "short", w=24, fill=0),
            row("Forecast"),
            timeseries("Load forecast", "The forecast of the scaling metric: mean and its prediction interval (shaded).",
                       targets((f'max(mcpulse_scaler_forecast{{{one}, bound="mean"}})', "mean"),
                               (f'max(mcpulse_scaler_forecast{{{one}, bound="lower"}})', "lower"),
                               (f'max(mcpulse_scaler_forecast{{{one}, bound="upper"}})', "upper")),
                       "short", w=24, fill=0, overrides=band("lower", "upper")),
            row("Decisions"),
            timeseries("Decisions by direction and reason", "Scaling decisions per interval.",
                       targets((f"sum by (direction, reason) (increase(mcpulse_scaler_decisions_total{{{sel}}}[$__rate_interval]))",
                                "{{direction}}: {{reason}}")), "short", stack=True),
            timeseries("Reconcile errors", "Failed reconciliations per interval, per controller pod.",
                       targets(("sum by (pod) (increase(mcpulse_scaler_reconcile_errors_total[$__rate_interval]))", "{{pod}}")), "short"),
            row("Kubernetes view"),
            timeseries("HPA replicas (for comparison)", "HorizontalPodAutoscalers in the namespace, as kube-state-metrics reports them.",
                       targets(('max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_current_replicas{namespace=~"$namespace"})',
                                "current {{horizontalpodautoscaler}}"),
                               ('max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_desired_replicas{namespace=~"$namespace"})',
                                "desired {{horizontalpodautoscaler}}")), "short", w=24),
        ],
    )


def usage():
    sel = MCP
    clients = f'{sel}, client_name=~"$client"'
    calls = f'{clients}, mcp_method_name="tools/call"'
    return dashboard(
        "mcpulse-usage",
        "mcpulse / Usage analytics",
        "Who uses which tools: calls by tool and by client application, sessions per day, active clients, "
        "top tools and error rate by tool.",
        mcp_variables(
            query_variable(
                "client", "Client application",
                'label_values(mcp_server_sessions_total{job="$job", namespace=~"$namespace", service=~"$service"}, client_name)',
            )
        ),
        [
            row("In the selected time range"),
            stat("Tool calls", "tools/call requests in the selected time range.",
                 f"sum(increase(mcp_server_client_operations_total{{{calls}}}[$__range]))", "short", w=6),
            stat("Sessions", "Sessions started in the selected time range.",
                 f"sum(increase(mcp_server_sessions_total{{{clients}}}[$__range]))", "short", w=6),
            stat("Active client applications", "Distinct client applications (clientInfo.name) that started a session.",
                 f"count(sum by (client_name) (increase(mcp_server_sessions_total{{{clients}}}[$__range])) > 0)", "short", w=6),
            stat("Tools used", "Distinct tools called at least once.",
                 f"count(sum by (gen_ai_tool_name) (increase(mcp_server_client_operations_total{{{calls}}}[$__range])) > 0)",
                 "short", w=6),
            row("Tools"),
            bars("Top tools", "The 10 most called tools in the selected range.",
                 f"topk(10, sum by (gen_ai_tool_name) (increase(mcp_server_client_operations_total{{{calls}}}[$__range])))",
                 "{{gen_ai_tool_name}}", "short"),
            bars("Error rate by tool", "Share of each tool's calls that failed in the selected range (all clients).",
                 f'sum by (gen_ai_tool_name) (increase(mcp_server_operation_duration_seconds_count{{{sel}, mcp_method_name="tools/call", error_type!=""}}[$__range]))'
                 f' / sum by (gen_ai_tool_name) (increase(mcp_server_operation_duration_seconds_count{{{sel}, mcp_method_name="tools/call"}}[$__range]))',
                 "{{gen_ai_tool_name}}", "percentunit"),
            timeseries("Tool calls / s by tool", "tools/call requests per second, by tool.",
                       targets((f"sum by (gen_ai_tool_name) (rate(mcp_server_client_operations_total{{{calls}}}[$__rate_interval]))",
                                "{{gen_ai_tool_name}}")), "reqps", w=24, stack=True),
            row("Clients"),
            timeseries("Requests / s by client application", "All MCP requests, by client application.",
                       targets((f"sum by (client_name) (rate(mcp_server_client_operations_total{{{clients}}}[$__rate_interval]))",
                                "{{client_name}}")), "reqps", stack=True),
            # One point a day: each is the day's total, not a sliding 24-hour window.
            dict(timeseries("Sessions per day", "Sessions started per day, by client application.",
                            targets((f"sum by (client_name) (increase(mcp_server_sessions_total{{{clients}}}[1d]))",
                                     "{{client_name}}")), "short", stack=True), interval="1d"),
            table("Client applications", "Per client application in the selected range: tool calls and sessions.",
                  [target(f"sum by (client_name) (increase(mcp_server_client_operations_total{{{calls}}}[$__range]))", ref="A"),
                   target(f"sum by (client_name) (increase(mcp_server_sessions_total{{{clients}}}[$__range]))", ref="B")],
                  rename={"client_name": "client application", "Value #A": "tool calls", "Value #B": "sessions"}, w=12),
            table("Tool use by client", "Tool calls per client application and tool in the selected range.",
                  [target(f"sum by (client_name, gen_ai_tool_name) (increase(mcp_server_client_operations_total{{{calls}}}[$__range]))",
                          ref="A")],
                  rename={"client_name": "client application", "gen_ai_tool_name": "tool", "Value": "calls"}, w=12),
            timeseries("Protocol versions", "Sessions started per second, by MCP protocol version.",
                       targets((f"sum by (mcp_protocol_version) (rate(mcp_server_sessions_total{{{clients}}}[$__rate_interval]))",
                                "{{mcp_protocol_version}}")), "short", w=24, stack=True),
        ],
        time_from="now-7d",
    )


DASHBOARDS = {
    "overview.json": overview,
    "mcp-server.json": mcp_server,
    "registry.json": registry,
    "infrastructure.json": infrastructure,
    "autoscaling.json": autoscaling,
    "usage.json": usage,
}


def render(build):
    return json.dumps(build(), indent=2) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the checked-in files instead of writing")
    args = parser.parse_args()
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"generate.py: {', '.join(stale)} differ from the generator's output; "
              "run python3 monitoring/dashboards/generate.py and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
