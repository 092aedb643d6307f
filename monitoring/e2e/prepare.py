#!/usr/bin/env python3
"""Writes the test configuration of scripts/suites/monitoring-e2e.sh into one directory: prometheus.yml (the
fleet's scrape targets with the job/namespace/service/pod labels the rules expect), a copy of the alert files
with some `for:` durations shortened, and an Alertmanager configuration derived from the project's one with
every receiver that notifies anyone pointed at the local webhook (webhook.py).

    prepare.py --out DIR --alertmanager HOST:PORT --webhook HOST:PORT \
        --target JOB SERVICE POD HOST:PORT [--target ...] --for ALERT=DURATION [--for ...]

Needs PyYAML.
"""

import argparse
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "mcpulse-e2e"
DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Alertmanager's timers, shortened so that a notification follows its alert within seconds. Repeats stay long:
# one notification per state change is what the test expects.
GROUP_WAIT = "1s"
GROUP_INTERVAL = "2s"
TOKEN_FILE = "webhook-token"


class PrepareError(Exception):
    """The arguments or the project's files do not allow a test configuration."""


def seconds(text, what):
    parsed = DURATION.match(str(text))
    if not parsed:
        raise PrepareError(f"{what}: {text!r} is not a single-unit Prometheus duration such as 5s or 10m")
    return int(parsed.group(1)) * SECONDS[parsed.group(2)]


def address(text, what):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PrepareError(f"{what}: {text!r} is not HOST:PORT")
    return text


def prometheus_config(targets, alertmanager, rule_files):
    """One scrape job per `job` label value; each target carries its own namespace, service and pod, as the
    ServiceMonitors/PodMonitors of deploy/ set them."""
    jobs = {}
    for job, service, pod, addr in targets:
        jobs.setdefault(job, []).append(
            {"targets": [addr], "labels": {"namespace": NAMESPACE, "service": service, "pod": pod}}
        )
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": configs} for job, configs in sorted(jobs.items())],
    }


def shortened_alerts(out, overrides):
    """Copies monitoring/alerts/*.yaml into out/, with `for:` replaced for the alerts named in overrides."""
    pending = dict(overrides)
    written = []
    for source in sorted((REPO / "monitoring" / "alerts").glob("*.yaml")):
        document = yaml.safe_load(source.read_text())
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert")
                if name not in pending:
                    continue
                short = pending.pop(name)
                original = rule.get("for", "0s")
                if seconds(short, f"--for {name}") >= seconds(original, f"{source.name}: {name}"):
                    raise PrepareError(f"--for {name}={short} does not shorten the rule's for: {original}")
                rule["for"] = short
        target = out / f"alerts-{source.name}"
        target.write_text(f"# Test copy of monitoring/alerts/{source.name} written by monitoring/e2e/prepare.py.\n"
                          + yaml.safe_dump(document, sort_keys=False, width=120))
        written.append(target)
    if pending:
        raise PrepareError(f"--for names alerts that monitoring/alerts/ does not define: {', '.join(sorted(pending))}")
    return written


def alertmanager_config(out, webhook):
    """The project's routing tree and inhibitions unchanged; timers shortened; every receiver with an
    integration becomes one webhook at http://WEBHOOK/<receiver>, keeping its send_resolved setting and the
    bearer token read from a file, as the real pager webhook does."""
    config = yaml.safe_load((REPO / "monitoring" / "alertmanager" / "alertmanager.yaml").read_text())
    # The SMTP settings are placeholders whose password file does not exist here; no email is sent.
    config["global"] = {key: value for key, value in config.get("global", {}).items() if not key.startswith("smtp_")}

    def shorten(route):
        for key, value in (("group_wait", GROUP_WAIT), ("group_interval", GROUP_INTERVAL)):
            if key in route or route is config["route"]:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    token = out / TOKEN_FILE
    token.write_text("e2e-webhook-token\n")
    for receiver in config["receivers"]:
        integrations = [c for key, configs in receiver.items() if key.endswith("_configs") for c in configs]
        if not integrations:
            continue
        send_resolved = any(c.get("send_resolved", key_default(c)) for c in integrations)
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{
            "url": f"http://{webhook}/{receiver['name']}",
            "send_resolved": send_resolved,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token)}},
        }]
    path = out / "alertmanager.yml"
    path.write_text("# Derived from monitoring/alertmanager/alertmanager.yaml by monitoring/e2e/prepare.py.\n"
                    + yaml.safe_dump(config, sort_keys=False, width=120))
    return path


def key_default(integration):
    """Alertmanager's send_resolved default: true for webhooks, false for email; both are set explicitly in
    the project's file, so this only matters for a receiver added later without it."""
    return "url" in integration or "url_file" in integration


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--alertmanager", required=True)
    parser.add_argument("--webhook", required=True)
    parser.add_argument("--target", nargs=4, action="append", required=True, metavar=("JOB", "SERVICE", "POD", "ADDR"))
    parser.add_argument("--for", dest="overrides", action="append", default=[], metavar="ALERT=DURATION")
    args = parser.parse_args()
    try:
        overrides = {}
        for item in args.overrides:
            name, _, duration = item.partition("=")
            seconds(duration, f"--for {item}")
            overrides[name] = duration
        targets = [(job, service, pod, address(addr, f"--target {job}")) for job, service, pod, addr in args.target]
        args.out.mkdir(parents=True, exist_ok=True)
        rule_files = sorted((REPO / "monitoring" / "rules").glob("*.yaml")) + shortened_alerts(args.out, overrides)
        config = prometheus_config(targets, address(args.alertmanager, "--alertmanager"), rule_files)
        (args.out / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False, width=120))
        alertmanager_config(args.out, address(args.webhook, "--webhook"))
    except (PrepareError, OSError, yaml.YAMLError) as error:
        print(f"prepare.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
