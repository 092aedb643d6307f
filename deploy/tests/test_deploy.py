"""Tests of deploy/generate.py and deploy/check.py: each check must reject the mistake it exists for.

Run by scripts/suites/deploy.sh as `python -m unittest discover -s deploy/tests`; needs MCPULSE_SHARED (the
shared folder with schemas/crds and reference/) in the environment.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(DEPLOY))

import check  # noqa: E402
import generate  # noqa: E402

SHARED = Path(os.environ.get("MCPULSE_SHARED", DEPLOY.parent.parent / "shared"))
BASE = DEPLOY / "kustomize/base"


def base_objects() -> list:
    """The base manifests and monitors as written (kustomize only adds namespace and labels to them)."""
    objects = []
    for name in ("registry.yaml", "agent.yaml", "gateway.yaml"):
        objects += check.load_all(BASE / name)
    objects += check.load_all(DEPLOY / "kustomize/monitoring/monitors.yaml")
    return objects


def find(objects: list, kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def wiring_errors(objects: list) -> list:
    errors: list = []
    check.check_workloads(objects, errors)
    check.check_services(objects, errors)
    check.check_monitors(objects, errors)
    check.check_autoscaling(objects, errors)
    return errors


class SchemaTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.crds = check.crd_validators(SHARED / "schemas/crds")

    def errors_for(self, obj: dict) -> list:
        errors: list = []
        check.validate_object(obj, self.crds, errors)
        return errors

    def test_base_objects_are_valid(self):
        for obj in base_objects():
            with self.subTest(obj=check.name_of(obj)):
                self.assertEqual(self.errors_for(obj), [])

    def test_rejections(self):
        agent = find(base_objects(), "Deployment", "mcpulse-agent")
        monitor = find(base_objects(), "ServiceMonitor", "mcpulse-registry")
        cases = [
            # (reason, object, text expected in an error)
            ("misspelt container field is caught by strict built-in validation",
             mutate(agent, lambda o: o["spec"]["template"]["spec"]["containers"][0].update(resourcse={})), "resourcse"),
            ("a port must be a number", mutate(agent, lambda o: o["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="x")), "containerPort"),
            ("misspelt CRD field is caught by the strict CRD schema",
             mutate(monitor, lambda o: o["spec"]["endpoints"][0].update(prot="metrics")), "prot"),
            ("CRD enums are enforced", mutate(monitor, lambda o: o["spec"]["endpoints"][0].update(scheme="ftp")), "ftp"),
            ("label values must be strings", mutate(monitor, lambda o: o["metadata"]["labels"].update(release=1)), "release"),
            ("unknown kinds are not waved through", {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"}}, "no schema"),
        ]
        for reason, obj, expected in cases:
            with self.subTest(reason=reason):
                errors = self.errors_for(obj)
                self.assertTrue(any(expected in e for e in errors), f"{reason}: {errors}")


def mutate(obj: dict, change) -> dict:
    copied = copy.deepcopy(obj)
    change(copied)
    return copied


def scaled_object(**metadata) -> dict:
    trigger = {"type": "prometheus", "metadata": {"serverAddress": "http://p:9090", "query": "up", "threshold": "2", **metadata}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "s"},
        "spec": {"scaleTargetRef": {"name": "mcpulse-agent"}, "minReplicaCount": 1, "maxReplicaCount": 3, "triggers": [trigger]},
    }


class ScaledObjectTests(unittest.TestCase):
    def test_cases(self):
        cases = [
            # (reason, object, expected error text or None)
            ("the shape we ship passes", check.load_all(DEPLOY / "kustomize/autoscaling/keda/scaledobject.yaml")[0], None),
            ("a minimal valid object passes", scaled_object(), None),
            ("threshold is required by the prometheus scaler", mutate(scaled_object(), lambda o: o["spec"]["triggers"][0]["metadata"].pop("threshold")), "threshold"),
            ("metadata values are strings", scaled_object(threshold=2), "must be a string"),
            ("unknown scaler settings are typos", scaled_object(treshold="2"), "treshold"),
            ("unknown spec fields are typos", mutate(scaled_object(), lambda o: o["spec"].update(maxReplicas=3)), "maxReplicas"),
            ("min above max cannot scale", mutate(scaled_object(), lambda o: o["spec"].update(minReplicaCount=9)), "exceeds"),
        ]
        for reason, obj, expected in cases:
            with self.subTest(reason=reason):
                errors: list = []
                check.check_scaled_object(obj, errors)
                if expected is None:
                    self.assertEqual(errors, [], reason)
                else:
                    self.assertTrue(any(expected in e for e in errors), f"{reason}: {errors}")


class WiringTests(unittest.TestCase):
    def test_base_is_wired(self):
        self.assertEqual(wiring_errors(base_objects()), [])

    def test_rejections(self):
        def agent_template(o):
            return o["spec"]["template"]["spec"]

        cases = [
            # (reason, kind, name, change, expected error text)
            ("monitors need the stack's release label", "PodMonitor", "mcpulse-agent",
             lambda o: o["metadata"]["labels"].pop("release"), "release"),
            ("a PodMonitor port must exist in the pods", "PodMonitor", "mcpulse-agent",
             lambda o: o["spec"]["podMetricsEndpoints"][0].update(port="metrics"), "not a named port"),
            ("the job name is what the rules select on", "ServiceMonitor", "mcpulse-registry",
             lambda o: o["spec"]["endpoints"][0]["relabelings"][0].update(replacement="registry"), "must set job"),
            ("a ServiceMonitor must select a Service", "ServiceMonitor", "mcpulse-gateway",
             lambda o: o["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "gw"}), "selects no Service"),
            ("agents must outlive their drain", "Deployment", "mcpulse-agent",
             lambda o: agent_template(o).update(terminationGracePeriodSeconds=30), "mid-drain"),
            ("every container needs requests", "Deployment", "mcpulse-agent",
             lambda o: agent_template(o)["initContainers"][0]["resources"].pop("requests"), "requests"),
            ("every container needs probes", "Deployment", "mcpulse-registry",
             lambda o: o["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe"), "readinessProbe"),
            ("a Service targetPort must be a pod port", "Service", "mcpulse-gateway",
             lambda o: o["spec"]["ports"][0].update(targetPort="http"), "targetPort"),
            ("a selector must match its template", "Deployment", "mcpulse-gateway",
             lambda o: o["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "x"}), "does not match"),
        ]
        for reason, kind, name, change, expected in cases:
            with self.subTest(reason=reason):
                objects = copy.deepcopy(base_objects())
                change(find(objects, kind, name))
                errors = wiring_errors(objects)
                self.assertTrue(any(expected in e for e in errors), f"{reason}: {errors}")

    def test_autoscaled_deployment_must_not_pin_replicas(self):
        objects = base_objects() + [scaled_object()]
        errors = wiring_errors(objects)
        self.assertTrue(any("drop spec.replicas" in e for e in errors), errors)

    def test_two_autoscalers_on_one_deployment_fight(self):
        objects = copy.deepcopy(base_objects()) + [scaled_object(), mutate(scaled_object(), lambda o: o["metadata"].update(name="t"))]
        find(objects, "Deployment", "mcpulse-agent")["spec"].pop("replicas")
        errors = wiring_errors(objects)
        self.assertTrue(any("fight" in e for e in errors), errors)


class ValuesTests(unittest.TestCase):
    def run_walk(self, values: dict, reference: dict, allowed: dict) -> list:
        errors: list = []
        check.walk(values, reference, "", allowed, errors)
        return errors

    def test_cases(self):
        reference = {"prometheus": {"prometheusSpec": {"retention": "10d", "storageSpec": {}, "remoteWrite": []}}}
        cases = [
            # (reason, values, allow-list, expected error text or None)
            ("keys of the reference pass", {"prometheus": {"prometheusSpec": {"retention": "15d"}}}, {}, None),
            ("a misspelt key fails", {"prometheus": {"prometheusSpec": {"retension": "15d"}}}, {}, "retension"),
            ("a key below an empty map fails unless allow-listed",
             {"prometheus": {"prometheusSpec": {"storageSpec": {"volumeClaimTemplate": {}}}}}, {}, "volumeClaimTemplate"),
            ("an allow-listed subtree is free-form",
             {"prometheus": {"prometheusSpec": {"storageSpec": {"volumeClaimTemplate": {}}}}},
             {"prometheus.prometheusSpec.storageSpec": "StorageSpec"}, None),
            ("lists are leaves", {"prometheus": {"prometheusSpec": {"remoteWrite": [{"url": "x"}]}}}, {}, None),
            ("a mapping where the chart has a scalar fails", {"prometheus": {"prometheusSpec": {"retention": {"time": "1d"}}}}, {}, "expects str"),
        ]
        for reason, values, allowed, expected in cases:
            with self.subTest(reason=reason):
                errors = self.run_walk(values, reference, allowed)
                if expected is None:
                    self.assertEqual(errors, [], reason)
                else:
                    self.assertTrue(any(expected in e for e in errors), f"{reason}: {errors}")


class GenerateTests(unittest.TestCase):
    def pack(self, files: dict) -> Path:
        root = Path(self.enterContext(tempfile.TemporaryDirectory())) / "monitoring"
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return root

    ALERTS = """\
        groups:
          - name: g
            rules:
              - alert: McpThingDown
                expr: up == 0
                labels: {severity: critical}
        """
    ALERTMANAGER = """\
        global:
          resolve_timeout: 5m
          smtp_smarthost: smtp.example.com:587
          smtp_auth_password_file: /etc/alertmanager/secrets/smtp-password
        route:
          receiver: team
          group_by: [alertname]
          routes:
            - receiver: pager
              matchers: ['severity="critical"', 'alertname=~"Mcp.*Down"']
        receivers:
          - name: team
            email_configs:
              - to: team@example.com
          - name: pager
            webhook_configs:
              - url_file: /etc/alertmanager/secrets/pager-url
                send_resolved: true
              - url: https://hooks.example.com/a
                http_config:
                  authorization: {credentials_file: /etc/alertmanager/secrets/hook-token}
        inhibit_rules:
          - source_matchers: ['severity="critical"']
            target_matchers: ['severity="warning"']
            equal: [namespace]
        """

    def test_alertmanager_conversion(self):
        files = generate.outputs(self.pack({"alerts/a.yaml": self.ALERTS, "alertmanager/alertmanager.yml": self.ALERTMANAGER}))
        amc = yaml.load(files["alertmanagerconfig.yaml"], Loader=check.Loader)
        route = amc["spec"]["route"]
        self.assertEqual(route["matchers"][0], {"name": "alertname", "value": "Mcp.+", "matchType": "=~"})
        self.assertEqual(route["routes"][0]["matchers"][1], {"name": "alertname", "value": "Mcp.*Down", "matchType": "=~"})
        receivers = {r["name"]: r for r in amc["spec"]["receivers"]}
        # Secrets that monitoring/ reads from files come from the Secret, keyed by the file's name.
        hooks = receivers["pager"]["webhookConfigs"]
        self.assertEqual(hooks[0]["urlSecret"], {"name": "mcpulse-alertmanager", "key": "pager-url"})
        self.assertEqual(hooks[1]["url"], "https://hooks.example.com/a")
        self.assertEqual(hooks[1]["httpConfig"]["authorization"], {"type": "Bearer", "credentials": {"name": "mcpulse-alertmanager", "key": "hook-token"}})
        # Global SMTP settings are carried into each email receiver (an AlertmanagerConfig has no global).
        mail = receivers["team"]["emailConfigs"][0]
        self.assertEqual(mail["authPassword"], {"name": "mcpulse-alertmanager", "key": "smtp-password"})
        self.assertEqual(mail["smarthost"], "smtp.example.com:587")
        self.assertIn("hook-token", amc["metadata"]["annotations"]["mcpulse.io/required-secret-keys"])
        self.assertEqual(amc["spec"]["inhibitRules"][0]["equal"], ["namespace"])
        errors: list = []
        check.validate_object(amc, check.crd_validators(SHARED / "schemas/crds"), errors)
        self.assertEqual(errors, [])

    def test_dashboard_configmap(self):
        board = json.dumps({"uid": "mcp", "title": "MCP", "panels": []}, indent=2)
        files = generate.outputs(self.pack({"dashboards/mcp-overview.json": board}))
        cm = yaml.load(files["dashboards.yaml"], Loader=check.Loader)
        self.assertEqual(cm["metadata"]["name"], "mcpulse-dashboard-mcp-overview")
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(cm["metadata"]["annotations"]["grafana_folder"], "MCPulse")
        self.assertEqual(json.loads(cm["data"]["mcp-overview.json"]), json.loads(board))

    def test_rejections(self):
        cases = [
            # (reason, files, expected error text)
            ("alerts must be routable by name", {"alerts/a.yaml": self.ALERTS.replace("McpThingDown", "ThingDown")}, "must start with"),
            ("alerts need a severity", {"alerts/a.yaml": self.ALERTS.replace("labels: {severity: critical}", "labels: {}")}, "severity"),
            ("a rule is a record or an alert", {"rules/r.yaml": "groups: [{name: g, rules: [{expr: up}]}]\n"}, "exactly one"),
            ("routes name defined receivers",
             {"alertmanager/a.yml": "route: {receiver: nobody}\nreceivers: [{name: team}]\n"}, "not defined"),
            ("unsupported receivers are refused, not dropped",
             {"alertmanager/a.yml": "route: {receiver: team}\nreceivers: [{name: team, slack_configs: [{}]}]\n"}, "slack_configs"),
            ("matchers must parse", {"alertmanager/a.yml": "route: {receiver: t, matchers: ['severity']}\nreceivers: [{name: t}]\n"}, "matcher"),
            ("secrets never inline", {"alertmanager/a.yml": "global: {smtp_auth_password: x}\nroute: {receiver: t}\nreceivers: [{name: t}]\n"}, "puts a secret in Git"),
            ("dashboards need a uid", {"dashboards/d.json": '{"title": "x"}'}, "uid"),
        ]
        for reason, files, expected in cases:
            with self.subTest(reason=reason):
                with self.assertRaises(generate.GenerateError) as raised:
                    generate.outputs(self.pack(files))
                self.assertIn(expected, str(raised.exception), reason)


if __name__ == "__main__":
    unittest.main()
