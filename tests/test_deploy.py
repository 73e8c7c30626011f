"""The Helm chart renders and validates, the Dockerfile lints clean, each check fails on a broken input,
and the image's entrypoint and health check work when run outside Docker."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flipkd.service.server import free_port, wait_ready
from scripts.check_deploy import (
    CHART,
    DOCKERFILE,
    SCENARIOS,
    DeployCheckError,
    lint_chart,
    lint_dockerfile,
    render,
    validate,
)

from .conftest import THREADS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_renders_valid_objects(scenario):
    objects = render(SCENARIOS[scenario])
    validate(objects)
    lint_chart(SCENARIOS[scenario])
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    for item in objects:
        labels = item["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == labels["app.kubernetes.io/instance"] == "flipkd"


def test_deployment_probes_shutdown_and_security():
    deployment = next(o for o in render() if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # room for loading the model
    assert pod["terminationGracePeriodSeconds"] > int(server["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}}
    assert {"name": "models", "mountPath": "/var/lib/flipkd", "readOnly": True} in server["volumeMounts"]


def test_gpu_autoscaling_and_monitoring_values_take_effect():
    queue_depth = {"autoscaling": {"enabled": True, "queueDepth": {"enabled": True}}}
    objects = render(SCENARIOS["everything"] | queue_depth)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert server["image"].endswith("-cuda") and server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "replicas" not in deployment["spec"]
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "flipkd_queue_depth"
    assert any(o["kind"] == "ServiceMonitor" for o in objects)


def configmap(values: dict) -> dict[str, str]:
    """The rendered ConfigMap's data (the server's FLIPKD_* settings)."""
    return next(o for o in render(values) if o["kind"] == "ConfigMap")["data"]


def init_containers(values: dict) -> dict[str, dict]:
    """The rendered Deployment's init containers by name."""
    deployment = next(o for o in render(values) if o["kind"] == "Deployment")
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"].get("initContainers", [])}


def test_an_onnx_student_is_exported_into_the_cache_before_the_server_starts():
    assert "export-student" not in init_containers({})
    onnx = {"settings": {"FLIPKD_STUDENT_RUNTIME": "onnx-int8"}, "bundles": ["atec", "/models/bundles/faq"]}
    export = init_containers(onnx)["export-student"]
    assert export["command"] == ["flipkd", "export-student", "--bundle", "atec",
                                 "--bundle", "/models/bundles/faq"]
    assert {"name": "models", "mountPath": "/var/lib/flipkd"} in export["volumeMounts"]
    default_bundle = init_containers({"settings": {"FLIPKD_STUDENT_RUNTIME": "onnx"}})["export-student"]
    assert default_bundle["command"][2:] == ["--bundle", "atec"]


def test_the_teachers_bundles_carry_are_exported_into_the_cache_and_nothing_is_trained():
    default = init_containers({})
    assert default["export-teachers"]["command"] == ["flipkd", "export-teachers", "--bundle", "atec"]
    assert not [name for name, container in default.items() if "train" in " ".join(container["command"])]
    export = init_containers({"bundles": ["atec", "mqp"]})["export-teachers"]
    assert export["command"] == ["flipkd", "export-teachers", "--bundle", "atec", "--bundle", "mqp"]
    assert {"name": "models", "mountPath": "/var/lib/flipkd"} in export["volumeMounts"]
    assert "export-teachers" not in init_containers({"bundles": ["mqp"], "teacher": {"enabled": False}})


MINE = "/var/lib/flipkd/teachers/mine-onnx"


@pytest.mark.parametrize("teacher, expected", [
    ({}, {}),                                                             # the bundles' own teachers
    ({"path": MINE}, {"FLIPKD_TEACHER": MINE}),
    ({"enabled": False}, {"FLIPKD_TEACHER_ENABLED": "false"}),
])
def test_the_teacher_settings_reach_the_server(teacher, expected):
    data = configmap({"teacher": teacher})
    assert {key: data[key] for key in ("FLIPKD_TEACHER", "FLIPKD_TEACHER_ENABLED") if key in data} == expected


@pytest.mark.parametrize("values, message", [
    ({"replicaCount": "three"}, "replicaCount"),            # refused by values.schema.json
    ({"resources": {"limits": {"cpu": "two"}}}, "cpu"),     # refused by values.schema.json
])
def test_a_broken_value_fails_rendering(values, message):
    with pytest.raises(DeployCheckError, match=message):
        render(values)


def test_a_value_the_kubernetes_schema_refuses_fails_validation():
    objects = render({"podSecurityContext": {"runAsUser": "root"}})
    with pytest.raises(DeployCheckError, match="runAsUser"):
        validate(objects)


def test_a_broken_template_fails(tmp_path):
    chart = tmp_path / "flipkd"
    shutil.copytree(CHART, chart)
    service = chart / "templates" / "service.yaml"
    service.write_text(service.read_text().replace("targetPort: http", "targetPort: {{ .Values.nope.port }}"))
    with pytest.raises(DeployCheckError, match="does not render"):
        render(chart=chart)


def test_dockerfile_lints_clean_and_a_broken_one_does_not(tmp_path):
    lint_dockerfile()
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm",
                                                      "ARG PYTHON_IMAGE=python:latest")
                      .replace("FROM ${PYTHON_IMAGE} AS runtime", "FROM python AS runtime"))
    with pytest.raises(DeployCheckError, match="DL3006"):
        lint_dockerfile(broken)


def dockerfile_final_stage(path: Path = DOCKERFILE) -> dict[str, object]:
    """ENV, USER, EXPOSE, ENTRYPOINT and HEALTHCHECK of the Dockerfile's last stage."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    stage = logical[max(i for i, line in enumerate(logical) if line.startswith("FROM ")):]
    found: dict[str, object] = {"ENV": {}}
    for line in stage:
        instruction, _, rest = line.partition(" ")
        if instruction == "ENV":
            for assignment in rest.split():
                key, _, value = assignment.partition("=")
                found["ENV"][key] = value
        elif instruction in ("ENTRYPOINT", "USER", "EXPOSE"):
            found[instruction] = json.loads(rest) if instruction == "ENTRYPOINT" else rest
        elif instruction == "HEALTHCHECK":
            found[instruction] = json.loads(rest[rest.index("CMD ") + 4:])
    return found


@pytest.mark.slow
def test_image_entrypoint_and_healthcheck_run_outside_docker(student_bundle, exported_teacher):
    stage = dockerfile_final_stage()
    assert stage["USER"].split(":")[0] != "0" and stage["EXPOSE"] == stage["ENV"]["FLIPKD_PORT"]
    assert stage["ENTRYPOINT"][0] == "flipkd" and stage["HEALTHCHECK"][0] == "flipkd"
    port = free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, **{k: v for k, v in stage["ENV"].items() if k.startswith("FLIPKD_")},
           # what the container gets from its volume and network, here on this machine
           "FLIPKD_HOME": os.environ.get("FLIPKD_HOME", str(Path.home() / ".cache" / "flipkd")),
           "FLIPKD_HOST": "127.0.0.1", "FLIPKD_PORT": str(port), "FLIPKD_BUNDLES": str(student_bundle),
           "FLIPKD_TEACHER": str(exported_teacher), "FLIPKD_TORCH_THREADS": str(THREADS),
           "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}
    assert subprocess.run(stage["HEALTHCHECK"], env=env, capture_output=True).returncode != 0  # not up yet
    process = subprocess.Popen(stage["ENTRYPOINT"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        health = subprocess.run(stage["HEALTHCHECK"], env=env, capture_output=True, text=True, timeout=30)
        assert health.returncode == 0, health.stderr
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, -signal.SIGTERM)
