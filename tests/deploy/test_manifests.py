"""deploy/: both overlays render and pass the Kubernetes schemas and the
consistency checks, the linters are clean, and the settings the manifests give
a model server really start one that answers its probes and exports the
series the autoscalers' prometheus-adapter rules read.

The checks live in deploy/validate.py (also `python -m deploy.validate`); a
test whose tool is not installed is skipped and says which one.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any, Callable, TypeVar

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML missing: pip install -r requirements/deploy.txt")

from deploy import validate  # noqa: E402  (needs PyYAML)
from tests.cluster import free_port  # noqa: E402

T = TypeVar("T")
Obj = dict[str, Any]


def need(check: Callable[..., T], *args: Any) -> T:
    """Run one check, skipping the test when its tool is not installed."""
    try:
        return check(*args)
    except validate.ToolMissing as missing:
        pytest.skip(str(missing))


def report(problems: list[validate.Problem]) -> str:
    return "\n".join(map(str, problems))


@pytest.fixture(scope="module", params=["gpu", "cpu"])
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, need(validate.render, request.param)


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def pod(objects: list[Obj], name: str) -> Obj:
    return find(objects, "Deployment", name)["spec"]["template"]["spec"]


def test_the_two_overlays_are_there() -> None:
    assert {"gpu", "cpu"} <= set(validate.overlays())


def test_every_object_matches_the_kubernetes_schemas(overlay: tuple[str, list[Obj]]) -> None:
    _, objects = overlay
    for version in validate.KUBERNETES_VERSIONS:
        problems = need(validate.schema_problems, objects, version)
        assert not problems, report(problems)


def test_objects_are_consistent(overlay: tuple[str, list[Obj]]) -> None:
    name, objects = overlay
    problems = validate.consistency_problems(objects, name in validate.GPU_OVERLAYS, validate.adapter_metric_names())
    assert not problems, report(problems)


def test_each_service_has_its_objects(overlay: tuple[str, list[Obj]]) -> None:
    _, objects = overlay
    for service in ("detector", "generator", "upscaler", "gateway"):
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
            find(objects, kind, f"revive-{service}")
    assert find(objects, "Ingress", "revive-gateway")["spec"]["rules"][0]["http"]["paths"]


def test_gpu_overlay_puts_model_servers_on_gpus_with_a_kept_engine_cache() -> None:
    objects = need(validate.render, "gpu")
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    for service in ("detector", "generator", "upscaler"):
        spec = pod(objects, f"revive-{service}")
        container = spec["containers"][0]
        assert container["resources"]["limits"][validate.GPU_RESOURCE] == 1
        assert container["image"].endswith(":0.1.0-gpu")
        cache = next(m for m in container["volumeMounts"] if m["mountPath"] == config["REVIVE_TRT_CACHE_DIR"])
        volume = next(v for v in spec["volumes"] if v["name"] == cache["name"])
        assert volume == {"name": cache["name"], "persistentVolumeClaim": {"claimName": "revive-trt-cache"}}
    assert validate.GPU_RESOURCE not in pod(objects, "revive-gateway")["containers"][0]["resources"]["limits"]
    assert config["REVIVE_PROVIDERS"].startswith("tensorrt")
    assert any(o["kind"] == "ServiceMonitor" for o in objects)


def test_cpu_overlay_asks_for_no_gpu_and_no_operator() -> None:
    objects = need(validate.render, "cpu")
    rendered = yaml.safe_dump_all(objects)
    assert validate.GPU_RESOURCE + ":" not in rendered
    assert "nodeSelector" not in rendered
    assert not any(o["kind"] == "ServiceMonitor" for o in objects)
    assert next(o for o in objects if o["kind"] == "ConfigMap")["data"]["REVIVE_PROVIDERS"] == "cpu"


def test_consistency_checks_catch_mistakes() -> None:
    objects = copy.deepcopy(need(validate.render, "gpu"))
    container = pod(objects, "revive-detector")["containers"][0]
    # A gRPC probe, for a service no .proto defines, on a mutual-TLS server (the gpu overlay's mtls component).
    container["readinessProbe"] = {"grpc": {"port": 50051, "service": "revive.v1.Nope"}}
    container["securityContext"]["readOnlyRootFilesystem"] = False
    del container["resources"]["limits"][validate.GPU_RESOURCE]
    del find(objects, "Service", "revive-generator")["spec"]["clusterIP"]
    find(objects, "HorizontalPodAutoscaler", "revive-upscaler")["spec"]["metrics"][0]["pods"]["metric"]["name"] = "x"
    objects.remove(find(objects, "PodDisruptionBudget", "revive-gateway"))
    problems = report(validate.consistency_problems(objects, True, validate.adapter_metric_names()))
    for expected in (
        "'revive.v1.Nope', which no .proto defines",
        "readinessProbe of a mutual-TLS server must probe /healthz or /readyz on its metrics port",
        "needs readOnlyRootFilesystem",
        "needs a nvidia.com/gpu limit",
        "Service/revive-generator: a model server's Service must be headless",
        "metric 'x' is served by no prometheus-adapter rule",
        "Deployment/revive-gateway: no PodDisruptionBudget covers it",
    ):
        assert expected in problems


def test_schema_check_is_strict() -> None:
    objects = copy.deepcopy(need(validate.render, "cpu"))
    pod(objects, "revive-detector")["containers"][0]["bogus"] = True
    problems = report(need(validate.schema_problems, objects, validate.KUBERNETES_VERSIONS[0]))
    assert "'bogus' was unexpected" in problems


def test_dockerfiles_pass_hadolint() -> None:
    assert validate.DOCKERFILES, "no Dockerfile under deploy/docker"
    problems = need(validate.hadolint_problems)
    assert not problems, report(problems)


def test_yaml_passes_yamllint() -> None:
    problems = need(validate.yamllint_problems)
    assert not problems, report(problems)


# --- The manifests' settings against the real code ------------------------------

def manifest_env(objects: list[Obj], deployment: str) -> dict[str, str]:
    """REVIVE_* as the pod would see them: the ConfigMap, then the container's own env."""
    container = pod(objects, deployment)["containers"][0]
    configmap = (container["envFrom"][0]["configMapRef"]["name"])
    env = dict(find(objects, "ConfigMap", configmap)["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def adapter_series() -> set[str]:
    """Metric names the prometheus-adapter rules query."""
    values = yaml.safe_load(validate.ADAPTER_VALUES.read_text())
    return {re.match(r"\w+", rule["seriesQuery"]).group(0) for rule in values["rules"]["custom"]}


@pytest.mark.parametrize("service", ["detector", "generator", "upscaler"])
def test_manifest_settings_start_a_service_that_passes_its_probes(service: str, tmp_path) -> None:
    grpc = pytest.importorskip("grpc")
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
    if not (validate.ROOT / "build" / "gen" / "revive").is_dir():
        pytest.skip("generated protos missing: run `make protos`")
    objects = need(validate.render, "cpu")
    name = f"revive-{service}"
    container = pod(objects, name)["containers"][0]
    env = manifest_env(objects, name)
    assert env["REVIVE_PORT"] == str(container["readinessProbe"]["grpc"]["port"])
    # What cannot be the pod's here: loopback and free ports on a shared
    # machine, one thread, a writable stand-in for the cache volume.
    grpc_port, metrics_port = free_port(), free_port()
    env.update(REVIVE_HOST="127.0.0.1", REVIVE_PORT=str(grpc_port), REVIVE_METRICS_PORT=str(metrics_port),
               REVIVE_THREADS="1", REVIVE_TRT_CACHE_DIR=str(tmp_path / "trt"))
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        cwd=validate.ROOT,
        # Nothing REVIVE_* from this shell: the pod gets only what the manifests give.
        env={**{k: v for k, v in os.environ.items() if not k.startswith("REVIVE_")}, **env,
             "PYTHONPATH": f"{validate.ROOT}{os.pathsep}{validate.ROOT / 'build' / 'gen'}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                request = health_pb2.HealthCheckRequest(service=container[probe]["grpc"].get("service", ""))
                deadline = time.monotonic() + 120
                while True:
                    try:
                        status = stub.Check(request, timeout=5).status
                    except grpc.RpcError:
                        status = None
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                    assert process.poll() is None, process.stderr.read().decode()[-2000:]
                    assert time.monotonic() < deadline, f"{probe} never saw SERVING"
                    time.sleep(0.5)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        for series in adapter_series() - {"revive_gateway_queue_depth"}:
            assert re.search(rf"^{series}\b", metrics, re.M), f"{series} not exported; the HPA would go blind"
        # Kubernetes sends SIGTERM after the preStop sleep; an idle server must
        # be gone well within terminationGracePeriodSeconds.
        grace = pod(objects, name)["terminationGracePeriodSeconds"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(grace) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stderr.close()
