#!/usr/bin/env python3
"""Validates what deploy/ installs: rendered kustomize overlays and the Helm values files.

  check.py manifests --crds DIR OVERLAY=FILE...   every object of each rendered overlay:
      built-in kinds against Kubernetes' OpenAPI schemas (kubernetes-validate, strict, pinned version),
      monitoring.coreos.com objects against the openAPIV3Schema of the CRDs in DIR (unknown fields rejected),
      KEDA ScaledObjects by the hand-written checks below (no KEDA CRD in DIR), and then the wiring between
      objects: selectors, port names, labels the stack selects on, resources, probes, grace periods, one
      autoscaler per Deployment, VPAs that never apply what an HPA scales on, PodDisruptionBudgets and
      PriorityClasses for what the cluster-autoscaler moves.
  check.py values REFERENCE VALUES ALLOWED       every key set in VALUES exists in the chart's REFERENCE
      values, or lies under a path of the documented allow-list ALLOWED.

Exits 0 when all is well and 1 with one line per problem otherwise.
"""

from __future__ import annotations

import copy
import functools
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.33.0"
RELEASE_LABEL = ("release", "kube-prometheus-stack")
# The agent drains for up to 30 s (its default --drain-timeout); its pod must outlive that.
AGENT_DRAIN_SECONDS = 30
# The pause image serves nothing, so it has no probe to answer (the overprovisioning placeholders run it).
PAUSE_IMAGE = "registry.k8s.io/pause:"
# Priority classes every cluster has; any other priorityClassName must be defined by the overlay.
BUILTIN_PRIORITY_CLASSES = {"system-cluster-critical", "system-node-critical"}
# The job names monitoring/rules and monitoring/alerts select on.
JOBS = {"mcpulse-registry", "mcpulse-meter", "mcpulse-agent", "mcpulse-scaler"}


class Loader(yaml.SafeLoader):
    """YAML 1.1 reads a bare `=` as the obsolete `value` tag; Kubernetes (YAML 1.2) reads a string."""


Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_all(path: Path) -> list:
    return [doc for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader) if doc is not None]


def name_of(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name')}"


# ---------------------------------------------------------------------------------------------- schemas


def strict_schema(schema):
    """Rejects fields a CRD does not declare, as `kubectl apply` (field validation Strict) does."""
    if isinstance(schema, dict):
        schema = {k: strict_schema(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict_schema(v) for v in schema]
    return schema


@functools.cache
def crd_validators(folder: Path) -> dict:
    validators = {}
    # A file may hold several CRDs (the VPA's holds its checkpoints CRD first), so every document counts.
    for crd in (doc for path in sorted(folder.glob("*.yaml")) for doc in load_all(path)):
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = strict_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            # Metadata is Kubernetes' own and checked separately; the CRD only says "object".
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            validators[key] = jsonschema.Draft4Validator(schema)
    return validators


def check_metadata(obj: dict, errors: list) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name or "") or len(name) > 253:
        errors.append(f"{name_of(obj)}: metadata.name {name!r} is not a valid DNS subdomain")
    for field in ("labels", "annotations"):
        for key, value in (meta.get(field) or {}).items():
            if not isinstance(value, str):
                errors.append(f"{name_of(obj)}: metadata.{field}.{key} must be a string, is {value!r}; quote it")
    for key, value in (meta.get("labels") or {}).items():
        if isinstance(value, str) and (len(value) > 63 or not re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", value)):
            errors.append(f"{name_of(obj)}: label {key}={value!r} is not a valid label value")


KEDA_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
    "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}
KEDA_TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
KEDA_PROMETHEUS = {
    "serverAddress", "query", "threshold", "activationThreshold", "namespace", "customHeaders",
    "ignoreNullValues", "unsafeSsl", "queryParameters",
}


def check_scaled_object(obj: dict, errors: list) -> None:
    """KEDA's CRD is not among the shared schemas, so its shape (keda.sh/v1alpha1) is checked field by field."""
    where = name_of(obj)
    if obj.get("apiVersion") != "keda.sh/v1alpha1":
        errors.append(f"{where}: apiVersion must be keda.sh/v1alpha1")
    spec = obj.get("spec") or {}
    for key in sorted(set(spec) - KEDA_SPEC):
        errors.append(f"{where}: spec.{key} is not a ScaledObject field")
    target = spec.get("scaleTargetRef") or {}
    if not target.get("name"):
        errors.append(f"{where}: spec.scaleTargetRef.name is required")
    for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        if key in spec and (not isinstance(spec[key], int) or spec[key] < 0):
            errors.append(f"{where}: spec.{key} must be a non-negative integer")
    if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
        errors.append(f"{where}: minReplicaCount exceeds maxReplicaCount")
    fallback = spec.get("fallback")
    if fallback is not None:
        if not all(isinstance(fallback.get(k), int) and fallback[k] > 0 for k in ("failureThreshold", "replicas")):
            errors.append(f"{where}: spec.fallback needs positive integers failureThreshold and replicas")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        errors.append(f"{where}: spec.triggers must be a non-empty list")
        return
    for i, trigger in enumerate(triggers):
        twhere = f"{where}: spec.triggers[{i}]"
        for key in sorted(set(trigger) - KEDA_TRIGGER):
            errors.append(f"{twhere}.{key} is not a trigger field")
        if trigger.get("metricType", "AverageValue") not in ("AverageValue", "Value", "Utilization"):
            errors.append(f"{twhere}.metricType must be AverageValue, Value or Utilization")
        if fallback is not None and trigger.get("metricType", "AverageValue") != "AverageValue":
            errors.append(f"{twhere}: KEDA's fallback works only with metricType AverageValue")
        metadata = trigger.get("metadata") or {}
        for key, value in metadata.items():
            if not isinstance(value, str):
                errors.append(f"{twhere}.metadata.{key} must be a string (KEDA reads metadata as strings)")
        if trigger.get("type") == "prometheus":
            for key in sorted(set(metadata) - KEDA_PROMETHEUS):
                errors.append(f"{twhere}.metadata.{key} is not a prometheus scaler setting")
            for key in ("serverAddress", "query", "threshold"):
                if not metadata.get(key):
                    errors.append(f"{twhere}.metadata.{key} is required by the prometheus scaler")
            try:
                float(metadata.get("threshold", ""))
            except ValueError:
                errors.append(f"{twhere}.metadata.threshold must be a number")


def validate_object(obj: dict, crds: dict, errors: list) -> None:
    api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group = api.split("/")[0] if "/" in api else ""
    check_metadata(obj, errors)
    if (api, kind) in crds:
        for err in sorted(crds[(api, kind)].iter_errors(obj), key=lambda e: list(e.path)):
            path = ".".join(str(p) for p in err.path)
            errors.append(f"{name_of(obj)}: {path}: {err.message}")
    elif group == "keda.sh":
        check_scaled_object(obj, errors)
    elif "." not in group or group.endswith(".k8s.io"):
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            errors.append(f"{name_of(obj)}: {path}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name_of(obj)}: {api} {kind} is not in Kubernetes {KUBERNETES_VERSION}")
    else:
        errors.append(f"{name_of(obj)}: no schema for {api} {kind}; add its CRD to the shared schemas or a check here")


# ---------------------------------------------------------------------------------------------- wiring


def matches(selector: dict, labels: dict) -> bool:
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist) as Kubernetes evaluates them."""
    labels = labels or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_templates(objects: list) -> list[tuple[dict, dict]]:
    return [(o, o["spec"]["template"]) for o in objects if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")]


def containers(template: dict) -> list[dict]:
    spec = template.get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def port_names(template: dict) -> set[str]:
    return {p.get("name") for c in containers(template) for p in c.get("ports") or [] if p.get("name")}


def check_workloads(objects: list, errors: list) -> None:
    for workload, template in pod_templates(objects):
        where = name_of(workload)
        if not matches(workload["spec"]["selector"], template["metadata"].get("labels")):
            errors.append(f"{where}: spec.selector does not match the pod template's labels")
        for c in containers(template):
            cwhere = f"{where}: container {c['name']}"
            resources = c.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if not {"cpu", "memory"} <= set(requests):
                errors.append(f"{cwhere}: set resources.requests.cpu and .memory so the scheduler can place it")
            if "memory" not in limits:
                errors.append(f"{cwhere}: set resources.limits.memory so a leak cannot take the node down")
            if not c.get("image", "").startswith(PAUSE_IMAGE) and ("livenessProbe" not in c or "readinessProbe" not in c):
                errors.append(f"{cwhere}: needs a livenessProbe and a readinessProbe")
            security = c.get("securityContext") or {}
            if security.get("allowPrivilegeEscalation") is not False or security.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{cwhere}: set allowPrivilegeEscalation false and readOnlyRootFilesystem true")
        labels = template["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/name") == "mcpulse":
            for c in containers(template):
                for probe in ("livenessProbe", "readinessProbe"):
                    path = ((c.get(probe) or {}).get("httpGet") or {}).get("path")
                    if path not in ("/healthz", "/readyz"):
                        errors.append(f"{where}: container {c['name']} {probe} should use /healthz or /readyz, uses {path!r}")
        if labels.get("app.kubernetes.io/component") == "agent":
            grace = template["spec"].get("terminationGracePeriodSeconds", 30)
            pre_stop = max(
                ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0) for c in containers(template)
            )
            if grace < pre_stop + AGENT_DRAIN_SECONDS:
                errors.append(
                    f"{where}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} s + drain {AGENT_DRAIN_SECONDS} s; "
                    "Kubernetes would kill agents mid-drain"
                )


def check_services(objects: list, errors: list) -> None:
    templates = pod_templates(objects)
    for svc in (o for o in objects if o.get("kind") == "Service"):
        selected = [t for _, t in templates if matches({"matchLabels": svc["spec"].get("selector") or {}}, t["metadata"].get("labels"))]
        if not selected:
            errors.append(f"{name_of(svc)}: selects no pod template")
            continue
        for port in svc["spec"].get("ports") or []:
            target = port.get("targetPort")
            if isinstance(target, str) and not all(target in port_names(t) for t in selected):
                errors.append(f"{name_of(svc)}: targetPort {target!r} is not a named port of the pods it selects")


def check_monitors(objects: list, errors: list) -> None:
    services = [o for o in objects if o.get("kind") == "Service"]
    templates = pod_templates(objects)
    for obj in objects:
        kind = obj.get("kind")
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule", "AlertmanagerConfig"):
            if labels.get(RELEASE_LABEL[0]) != RELEASE_LABEL[1]:
                errors.append(f"{name_of(obj)}: needs the label {RELEASE_LABEL[0]}: {RELEASE_LABEL[1]} for the stack to select it")
        if kind == "ServiceMonitor":
            selected = [s for s in services if matches(obj["spec"]["selector"], s["metadata"].get("labels"))]
            if not selected:
                errors.append(f"{name_of(obj)}: selects no Service")
            endpoints = obj["spec"]["endpoints"]
            for ep in endpoints:
                if not all(ep.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in selected):
                    errors.append(f"{name_of(obj)}: port {ep.get('port')!r} is not a named port of the selected Services")
        if kind == "PodMonitor":
            selected = [t for _, t in templates if matches(obj["spec"]["selector"], t["metadata"].get("labels"))]
            if not selected:
                errors.append(f"{name_of(obj)}: selects no pod template")
            endpoints = obj["spec"]["podMetricsEndpoints"]
            for ep in endpoints:
                if not all(ep.get("port") in port_names(t) for t in selected):
                    errors.append(f"{name_of(obj)}: port {ep.get('port')!r} is not a named port of the selected pods")
        if kind in ("ServiceMonitor", "PodMonitor"):
            for ep in endpoints:
                jobs = [r.get("replacement") for r in ep.get("relabelings") or [] if r.get("targetLabel") == "job"]
                if len(jobs) != 1 or jobs[0] not in JOBS:
                    errors.append(f"{name_of(obj)}: port {ep.get('port')!r} must set job to one of {sorted(JOBS)} (monitoring/ selects on it)")
        if kind == "ConfigMap" and labels.get("grafana_dashboard") == "1":
            if not (obj["metadata"].get("annotations") or {}).get("grafana_folder"):
                errors.append(f"{name_of(obj)}: dashboard ConfigMaps need the grafana_folder annotation")


def owns_replicas(obj: dict) -> bool:
    """HPAs and ScaledObjects own their target's replicas; an McpAutoscaler only in Direct mode (Floor writes the HPA)."""
    kind = obj.get("kind")
    return kind in ("HorizontalPodAutoscaler", "ScaledObject") or (
        kind == "McpAutoscaler" and (obj.get("spec") or {}).get("mode") == "Direct"
    )


def scaled_resources(obj: dict) -> set[str]:
    """The container resources (cpu, memory) whose usage drives a horizontal autoscaler's replica count."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "ScaledObject":
        return {t.get("type") for t in spec.get("triggers") or []} & {"cpu", "memory"}
    names = set()
    for metric in spec.get("metrics") or []:
        for field in ("resource", "containerResource"):
            if metric.get("type", "").lower() == field.lower():
                names.add((metric.get(field) or {}).get("name"))
    return names & {"cpu", "memory"}


def check_vpas(objects: list, deployments: dict, scalers: dict, errors: list) -> None:
    """A VPA that applies requests on a resource an HPA scales on changes the HPA's utilization under it: they fight."""
    for vpa in (o for o in objects if o.get("kind") == "VerticalPodAutoscaler"):
        where = name_of(vpa)
        spec = vpa.get("spec") or {}
        target = (spec.get("targetRef") or {}).get("name")
        if target not in deployments:
            errors.append(f"{where}: targets {target!r}, which is not a Deployment of this overlay")
            continue
        if (spec.get("updatePolicy") or {}).get("updateMode", "Recreate") == "Off":
            continue
        applied = set()
        policies = (spec.get("resourcePolicy") or {}).get("containerPolicies") or [{}]
        names = {p.get("containerName") for p in policies}
        if "*" not in names and any(c["name"] not in names for c in containers(deployments[target]["spec"]["template"])):
            # Containers without a policy of their own get the defaults: cpu and memory.
            policies = [*policies, {}]
        for policy in policies:
            if policy.get("mode", "Auto") != "Off":
                applied |= set(policy.get("controlledResources") or ["cpu", "memory"])
        for scaler in scalers.get(target, []):
            fought = sorted(applied & scaled_resources(scaler))
            if fought:
                errors.append(
                    f"{where}: applies {fought} requests while {name_of(scaler)} scales on them; "
                    "set updateMode Off or leave those resources out of controlledResources"
                )


def check_disruption(objects: list, deployments: dict, errors: list) -> None:
    """Node drains and the cluster-autoscaler evict through PodDisruptionBudgets; unknown priority classes fail admission."""
    budgets = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    classes = {o["metadata"]["name"] for o in objects if o.get("kind") == "PriorityClass"} | BUILTIN_PRIORITY_CLASSES
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        labels = template["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/name") == "mcpulse" and not any(
            matches(b["spec"].get("selector") or {}, labels) for b in budgets
        ):
            errors.append(f"Deployment/{name}: no PodDisruptionBudget selects its pods; a drain could take them all at once")
        priority = (template.get("spec") or {}).get("priorityClassName")
        if priority is not None and priority not in classes:
            errors.append(f"Deployment/{name}: priorityClassName {priority!r} is not a PriorityClass of this overlay")


def check_autoscaling(objects: list, errors: list) -> None:
    deployments = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "Deployment"}
    scaled: dict[str, list[str]] = {}
    scalers: dict[str, list[dict]] = {}
    for obj in objects:
        if obj.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject", "McpAutoscaler"):
            scalers.setdefault(obj["spec"]["scaleTargetRef"]["name"], []).append(obj)
        if owns_replicas(obj):
            target = obj["spec"]["scaleTargetRef"]["name"]
            scaled.setdefault(target, []).append(name_of(obj))
            if target not in deployments:
                errors.append(f"{name_of(obj)}: scales {target!r}, which is not a Deployment of this overlay")
            elif "replicas" in deployments[target]["spec"]:
                errors.append(f"Deployment/{target}: drop spec.replicas; every apply would reset what {name_of(obj)} chose")
    for target, owners in scaled.items():
        if len(owners) > 1:
            errors.append(f"Deployment/{target}: scaled by {owners}; autoscalers on one Deployment fight, keep one")
    check_vpas(objects, deployments, scalers, errors)
    check_disruption(objects, deployments, errors)


def check_manifests(args: list[str]) -> int:
    if len(args) < 3 or args[0] != "--crds":
        print("usage: check.py manifests --crds DIR OVERLAY=FILE...", file=sys.stderr)
        return 2
    crds = crd_validators(Path(args[1]))
    failed = 0
    for spec in args[2:]:
        overlay, _, file = spec.partition("=")
        objects = load_all(Path(file))
        errors: list[str] = []
        for obj in objects:
            validate_object(obj, crds, errors)
        if not errors:
            check_workloads(objects, errors)
            check_services(objects, errors)
            check_monitors(objects, errors)
            check_autoscaling(objects, errors)
        kinds = sorted({o["kind"] for o in objects})
        if errors:
            failed += 1
            for err in errors:
                print(f"{overlay}: {err}")
        else:
            print(f"{overlay}: {len(objects)} objects valid ({', '.join(kinds)})")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------- helm values


def walk(values, reference, path: str, allowed: dict, errors: list) -> None:
    """Every key of `values` must exist in `reference` unless its path is allow-listed (subtree free-form)."""
    if path in allowed:
        return
    if not isinstance(values, dict):
        # Lists and scalars are leaves: their contents are the chart's to interpret.
        if isinstance(reference, dict) and reference:
            errors.append(f"{path}: the chart expects a mapping here, not {type(values).__name__}")
        return
    if reference is not None and not isinstance(reference, dict):
        errors.append(f"{path}: the chart expects {type(reference).__name__} here, not a mapping")
        return
    for key, value in values.items():
        child = f"{path}.{key}" if path else str(key)
        if child in allowed:
            continue
        if not isinstance(reference, dict) or key not in reference:
            errors.append(f"{child}: not a key of the chart's values; fix the typo or allow-list it with a reason")
            continue
        walk(value, reference[key], child, allowed, errors)


def check_values(args: list[str]) -> int:
    if len(args) != 3:
        print("usage: check.py values REFERENCE VALUES ALLOWED", file=sys.stderr)
        return 2
    reference, values, allowed_file = (Path(a) for a in args)
    allowed_doc = yaml.load(allowed_file.read_text(encoding="utf-8"), Loader=Loader) or {}
    section = allowed_doc.get(reference.name)
    if not isinstance(section, dict):
        print(f"{allowed_file}: no section {reference.name!r}; add one (an empty mapping is fine)", file=sys.stderr)
        return 1
    errors = [f"{allowed_file}: {path}: give a reason" for path, reason in section.items() if not reason]
    walk(load_all(values)[0], load_all(reference)[0], "", section, errors)
    for err in errors:
        print(f"{values}: {err}")
    if not errors:
        print(f"{values}: every key is in {reference.name} or allow-listed")
    return 1 if errors else 0


def main() -> int:
    commands = {"manifests": check_manifests, "values": check_values}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
