"""The Helm chart (charts/canarywatch) with the real ``helm`` and the real API server.

* ``helm lint --strict`` with every ``ci/*-values.yaml`` scenario.
* ``helm template`` per scenario, and what renders: secure defaults, standard labels,
  one replica + ``Recreate`` or HA with leader election, RBAC scope (Roles per watched
  namespace or one ClusterRole; nothing wider), the operator's environment as
  ``OperatorSettings.from_env`` reads it, the monitoring switches (ServiceMonitor,
  PodMonitor, PrometheusRule = the promtool-tested rule file, dashboards = the JSON files
  byte for byte), the PagerDuty Secret, and the demo objects as the relay, the CLI and
  the operator's builders accept them.
* ``values.schema.json`` rejects unknown keys and wrong types/values with a message
  naming the key; every values key is documented with ``## @param``.
* ``charts/canarywatch/crds/`` is a byte-identical copy of ``crds/``.
* Against a real kube-apiserver (``tests/support/controlplane.py``, with the
  canarywatch CRDs and the prometheus-operator CRDs from their pinned upstream module,
  ``hack/fetch-prometheus-operator-crds.sh``): every scenario's manifests pass a
  server-side dry-run apply; a real ``helm install`` / ``upgrade`` / ``uninstall`` of
  the demo; and, impersonating the operator's ServiceAccount, RBAC lets it do what its
  code does (including creating the viewers' Role, which RBAC escalation prevention
  only allows when the operator holds those permissions itself) and nothing wider.

``helm``, ``kubectl``, ``etcd`` and ``kube-apiserver`` come from ``hack/build-tools.sh``
(``$CANARYWATCH_TOOLS_DIR/bin``). Without them these tests skip on a developer machine
and fail under CI (``CI`` set) or with ``CANARYWATCH_REQUIRE_CHART_TOOLS=1``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

import canarywatch
from canarywatch.api import LABEL_ROLE
from canarywatch.cli import build_parser
from canarywatch.controller import kube, permissions, settings
from canarywatch.controller.manifests import (
    VIEWER_ACCOUNT,
    build_keyring_secret,
    build_probe_workloads,
    build_viewer_rbac,
    keyring_data,
    parse_probe,
)
from canarywatch.controller.settings import OperatorSettings
from canarywatch.relay import RelayConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import controlplane
from availability import unavailable
from cluster_fixtures import start_control_plane
from manifests import leak
from polling import eventually

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "canarywatch"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RULES = CHART / "files" / "canarywatch-alerts.rules.yaml"
DASHBOARDS = sorted((CHART / "files" / "dashboards").glob("*.json"))
FETCH_PROMETHEUS_CRDS = REPO / "hack" / "fetch-prometheus-operator-crds.sh"
RELEASE = "cw"
NAMESPACE = "canarywatch"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
DEFAULT_IMAGE = f"ghcr.io/canarywatch/canarywatch:{canarywatch.__version__}"
# The chart tier runs with Helm 4 (the current major) and Helm 3 (hack/build-tools.sh).
HELMS = ("helm4", "helm")
# A routing key shaped like a real one (random hex); the chart refuses placeholders.
ROUTING_KEY = "3d335ad3f2e62de6525f67b1dce035f2"


def _missing(message: str) -> NoReturn:
    unavailable(message)


def tool(name: str) -> Path:
    """A pinned binary from hack/build-tools.sh; skips without it, or fails under CI."""
    try:
        return controlplane.find_binary(name)
    except controlplane.ToolsMissingError as error:
        _missing(str(error))


# ---------------------------------------------------------------------------------------
# helm
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: Mapping[str, str]

    def run(self, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=120, env=env, check=False
        )

    def template_args(self, *values: Path, sets: Sequence[str] = (), namespace: str = NAMESPACE) -> list[str]:
        args = ["template", RELEASE, str(CHART), "--namespace", namespace]
        for path in values:
            args += ["--values", str(path)]
        for assignment in sets:
            args += ["--set", assignment]
        return args

    def template(self, *values: Path, sets: Sequence[str] = (), namespace: str = NAMESPACE) -> str:
        result = self.run(*self.template_args(*values, sets=sets, namespace=namespace))
        assert result.returncode == 0, result.stderr
        return result.stdout

    def render(self, *values: Path, sets: Sequence[str] = (), namespace: str = NAMESPACE) -> Manifests:
        return Manifests.parse(self.template(*values, sets=sets, namespace=namespace))

    def refused(self, *sets: str) -> str:
        """``helm template`` with ``sets`` must fail; its error output."""
        result = self.run(*self.template_args(sets=sets))
        assert result.returncode != 0, f"helm template accepted --set {' '.join(sets)}"
        return result.stderr


@dataclass(frozen=True)
class Manifests:
    objects: tuple[dict[str, Any], ...]

    @classmethod
    def parse(cls, text: str) -> Manifests:
        return cls(tuple(doc for doc in yaml.safe_load_all(text) if doc))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str | None = None, namespace: str | None = None) -> dict[str, Any]:
        found = [
            obj
            for obj in self.of_kind(kind)
            if (name is None or obj["metadata"]["name"] == name)
            and (namespace is None or obj["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata'] for o in found]}"
        return found[0]

    def kinds(self) -> set[str]:
        return {obj["kind"] for obj in self.objects}

    def operator_roles(self, kind: str) -> list[dict[str, Any]]:
        """Roles or ClusterRoles of the operator (not the aggregated user-facing ones)."""
        return [
            r for r in self.of_kind(kind) if r["metadata"]["labels"]["app.kubernetes.io/component"] != "rbac"
        ]


@pytest.fixture(scope="session", params=HELMS)
def helm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = tool(request.param)
    home = tmp_path_factory.mktemp(f"{request.param}-home")
    # Helm's own state in a throwaway dir; no kubeconfig unless a test passes one.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    return Helm(binary, env)


@pytest.fixture(scope="session")
def renders(helm: Helm) -> dict[str, Manifests]:
    """Each ci scenario rendered once: file stem ("01-default-values") -> manifests."""
    return {path.stem: helm.render(path) for path in CI_VALUES}


def scenario(name: str) -> Path:
    matches = [path for path in CI_VALUES if path.stem.split("-", 1)[1] == f"{name}-values"]
    assert len(matches) == 1, f"no single ci/NN-{name}-values.yaml: {CI_VALUES}"
    return matches[0]


def rendered(renders: Mapping[str, Manifests], name: str) -> Manifests:
    return renders[scenario(name).stem]


def operator_deployment(manifests: Manifests) -> dict[str, Any]:
    return manifests.one("Deployment", f"{RELEASE}-canarywatch-operator")


def operator_container(manifests: Manifests) -> dict[str, Any]:
    containers = operator_deployment(manifests)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return dict(containers[0])


def operator_settings(manifests: Manifests) -> OperatorSettings:
    """The rendered environment as the operator reads it (downward API filled in)."""
    downward = {"metadata.namespace": NAMESPACE, "metadata.name": f"{RELEASE}-canarywatch-operator-0"}
    environ = {}
    for var in operator_container(manifests)["env"]:
        if "value" in var:
            environ[var["name"]] = var["value"]
        else:
            environ[var["name"]] = downward[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return OperatorSettings.from_env(environ)


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + In/NotIn/Exists/DoesNotExist) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------------------------
# RBAC evaluation (what a set of PolicyRules allows)
# ---------------------------------------------------------------------------------------


def allows(rules: Sequence[Mapping[str, Any]], group: str, resource: str, verb: str, name: str = "") -> bool:
    for rule in rules:
        if (
            group in rule.get("apiGroups", [])
            and resource in rule.get("resources", [])
            and verb in rule.get("verbs", [])
            and (not rule.get("resourceNames") or name in rule["resourceNames"])
        ):
            return True
    return False


def operator_rules(manifests: Manifests, namespace: str | None) -> list[dict[str, Any]]:
    """The rules bound to the operator's ServiceAccount in ``namespace`` (None: cluster)."""
    account = f"{RELEASE}-canarywatch-operator"
    rules: list[dict[str, Any]] = []
    for binding in manifests.of_kind("RoleBinding") + manifests.of_kind("ClusterRoleBinding"):
        if binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]):
            continue
        role_namespace = binding["metadata"]["namespace"] if binding["roleRef"]["kind"] == "Role" else None
        role = manifests.one(binding["roleRef"]["kind"], binding["roleRef"]["name"], role_namespace)
        rules += role["rules"]
    return rules


def sample_probe(namespace: str = NAMESPACE) -> tuple[dict[str, Any], dict[str, Any]]:
    """examples/canaryprobe.yaml and examples/cameraintegration.yaml as the API serves them."""
    [probe] = [
        d
        for d in yaml.safe_load_all((REPO / "examples" / "canaryprobe.yaml").read_text())
        if d["kind"] == "CanaryProbe"
    ]
    [integration] = [
        d
        for d in yaml.safe_load_all((REPO / "examples" / "cameraintegration.yaml").read_text())
        if d["kind"] == "CameraIntegration"
    ]
    for obj in (probe, integration):
        obj["metadata"] |= {"namespace": namespace, "uid": str(uuid.uuid4())}
    return probe, integration


def built_agent_objects(probe: dict[str, Any], integration: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything the operator creates for a probe (controller/manifests.py): its keyring
    Secret, the namespace's viewer RBAC, its workloads."""
    spec = parse_probe(probe)
    secret = build_keyring_secret(probe, {tenant: os.urandom(32) for tenant in spec.tenant_ids})
    rbac = build_viewer_rbac(spec.namespace)
    return [secret, *rbac, *build_probe_workloads(probe, integration, image=DEFAULT_IMAGE)]


# ---------------------------------------------------------------------------------------
# lint, metadata, files
# ---------------------------------------------------------------------------------------


def test_the_ci_scenarios_exist() -> None:
    names = {path.stem.split("-", 1)[1] for path in CI_VALUES}
    assert {
        "default-values",
        "ha-values",
        "cluster-wide-values",
        "monitoring-values",
        "demo-values",
    } <= names
    assert all(re.fullmatch(r"\d\d-[a-z-]+-values\.yaml", p.name) for p in CI_VALUES)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_helm_lint_strict(helm: Helm, values: Path) -> None:
    result = helm.run("lint", "--strict", str(CHART), "--values", str(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_chart_metadata_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"] == canarywatch.__version__
    assert chart["kubeVersion"].startswith(">=1.30")
    # The chart's default image is the one the operator gives its agents by default.
    assert OperatorSettings(operator_namespace="x").agent_image == DEFAULT_IMAGE


def test_chart_crds_are_identical_copies_of_crds() -> None:
    source = {path.name: path.read_bytes() for path in (REPO / "crds").glob("*.yaml")}
    copies = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert source, "no CRDs in crds/"
    assert copies.keys() == source.keys(), "charts/canarywatch/crds/ must hold exactly the files of crds/"
    stale = sorted(name for name in source if copies[name] != source[name])
    assert not stale, f"out of date: cp crds/{{{','.join(stale)}}} charts/canarywatch/crds/"


def test_helm_renders_the_crds_from_the_crds_folder(helm: Helm) -> None:
    result = helm.run("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds")
    assert result.returncode == 0, result.stderr
    with_crds = Manifests.parse(result.stdout)
    names = {crd["metadata"]["name"] for crd in with_crds.of_kind("CustomResourceDefinition")}
    assert names == {
        "cameraintegrations.canarywatch.io",
        "canaryprobes.canarywatch.io",
        "leakincidents.canarywatch.io",
    }


def test_dockerfile_is_what_the_chart_assumes(renders: dict[str, Manifests]) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert len(stages) >= 2, "multi-stage build expected"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, re.M)
    assert base is not None and re.fullmatch(
        r"python:3\.11[.\d]*-slim-bookworm(@sha256:[0-9a-f]{64})?", base[1]
    )
    assert all(stage.startswith("${PYTHON_IMAGE}") for stage in stages), "every stage on the pinned base"
    # The chart passes only args (`operator`, `relay`, ...) and runs as uid 65532.
    assert re.search(r'^ENTRYPOINT \["canarywatch"\]$', dockerfile, re.M)
    [user] = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    pod = operator_deployment(rendered(renders, "default"))["spec"]["template"]["spec"]
    assert (int(user[0]), int(user[1])) == (
        pod["securityContext"]["runAsUser"],
        pod["securityContext"]["runAsGroup"],
    )
    assert "HOME=/tmp" in dockerfile and "PYTHONDONTWRITEBYTECODE=1" in dockerfile


# ---------------------------------------------------------------------------------------
# values.yaml and values.schema.json
# ---------------------------------------------------------------------------------------


def _leaf_paths(values: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def test_every_value_is_documented_with_a_param_comment() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    documented = set(re.findall(r"^\s*## @param (\S+) \S", text, re.M))
    leaves = set(_leaf_paths(values))
    # A key is documented itself or through a documented parent (a map like resources).
    undocumented = sorted(
        leaf for leaf in leaves if not any(leaf == d or leaf.startswith(d + ".") for d in documented)
    )
    assert not undocumented, f"values without a `## @param` comment: {undocumented}"
    stale = sorted(d for d in documented if not any(leaf == d or leaf.startswith(d + ".") for leaf in leaves))
    assert not stale, f"`## @param` comments for keys values.yaml does not have: {stale}"


def _object_nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if "properties" in schema:
        yield path or "<root>", schema
        for key, sub in schema["properties"].items():
            yield from _object_nodes(sub, f"{path}.{key}" if path else key)
    for key in ("items",):
        if isinstance(schema.get(key), dict):
            yield from _object_nodes(schema[key], f"{path}[]")


def test_the_schema_is_closed_at_every_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    nodes = list(_object_nodes(schema))
    assert len(nodes) > 20
    # `global` is shared with a parent chart and its other subcharts: open on purpose.
    open_nodes = [
        path for path, node in nodes if node.get("additionalProperties") is not False and path != "global"
    ]
    assert not open_nodes, f"schema objects that accept unknown keys: {open_nodes}"
    # Every key of values.yaml has a schema.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for leaf in _leaf_paths(values):
        node: Mapping[str, Any] = schema
        for part in leaf.split("."):
            if "properties" not in node:
                break  # a free-form Kubernetes object or map (resources, labels, ...)
            assert part in node["properties"], f"values key {leaf} has no schema"
            node = node["properties"][part]


SCHEMA_REJECTIONS = [
    # (--set, what the message must name)
    ("replicaCount=2", ["additional properties 'replicaCount' not allowed"]),
    ("operator.replica=2", ["/operator", "additional properties 'replica' not allowed"]),
    ("metrics.serviceMonitor.enable=true", ["/metrics/serviceMonitor", "'enable' not allowed"]),
    ("operator.replicas=three", ["/operator/replicas", "want integer"]),
    ("operator.replicas=0", ["/operator/replicas", "minimum"]),
    ("operator.logLevel=LOUD", ["/operator/logLevel", "DEBUG"]),
    ("rbac.clusterWide=yes", ["/rbac/clusterWide", "want boolean"]),
    ("image.pullPolicy=Sometimes", ["/image/pullPolicy", "IfNotPresent"]),
    ("demo.relay.fault=heisenbug", ["/demo/relay/fault", "xiaomi-2019"]),
    ("demo.policyMode=panic", ["/demo/policyMode", "alert-only"]),
    ("metrics.serviceMonitor.interval=soon", ["/metrics/serviceMonitor/interval", "pattern"]),
    ("pagerduty.routingKey=short", ["/pagerduty/routingKey", "pattern"]),
    ("operator.watchNamespaces={Not_A_Namespace}", ["/operator/watchNamespaces/0", "pattern"]),
]


@pytest.mark.parametrize(
    ("assignment", "fragments"), SCHEMA_REJECTIONS, ids=[a for a, _ in SCHEMA_REJECTIONS]
)
def test_the_schema_rejects_with_a_message_naming_the_key(
    helm: Helm, assignment: str, fragments: list[str]
) -> None:
    message = helm.refused(assignment)
    assert "values don't meet the specifications of the schema" in message
    for fragment in fragments:
        assert fragment in message, message


TEMPLATE_REJECTIONS = [
    (
        ("operator.replicas=2", "operator.leaderElection.enabled=false"),
        "operator.leaderElection.enabled is false",
    ),
    (
        ("operator.leaderElection.renewDeadlineSeconds=20",),
        "retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds",
    ),
    (
        ("rbac.clusterWide=true", "operator.watchNamespaces={team-a}"),
        "operator.watchNamespaces: leave it empty",
    ),
    (
        ("pagerduty.existingSecret=pd", f"pagerduty.routingKey={ROUTING_KEY}"),
        "set either existingSecret",
    ),
    (
        ("metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"),
        "metrics.serviceMonitor.enabled needs metrics.service.enabled",
    ),
    (("serviceAccount.create=false",), "serviceAccount.name: name the existing ServiceAccount"),
]


@pytest.mark.parametrize(
    ("assignments", "fragment"), TEMPLATE_REJECTIONS, ids=[",".join(a) for a, _ in TEMPLATE_REJECTIONS]
)
def test_contradictory_values_fail_with_a_message(
    helm: Helm, assignments: tuple[str, ...], fragment: str
) -> None:
    assert fragment in helm.refused(*assignments)


# ---------------------------------------------------------------------------------------
# what renders
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_every_object_carries_the_standard_labels(renders: dict[str, Manifests], values: Path) -> None:
    manifests = renders[values.stem]
    for obj in manifests.objects:
        meta = obj["metadata"]
        where = f"{obj['kind']}/{meta['name']}"
        missing = [label for label in STANDARD_LABELS if label not in meta.get("labels", {})]
        assert not missing, f"{where} lacks {missing}"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert len(meta["name"]) <= 63, where
        assert (obj["kind"] in CLUSTER_SCOPED) == ("namespace" not in meta), where
    for workload in manifests.of_kind("Deployment"):
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selects(workload["spec"]["selector"], pod_labels)
        assert all(label in pod_labels for label in STANDARD_LABELS)


def test_default_install_is_one_locked_down_operator(renders: dict[str, Manifests]) -> None:
    manifests = rendered(renders, "default")
    deployment = operator_deployment(manifests)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == f"{RELEASE}-canarywatch-operator"
    assert "hostNetwork" not in pod and "hostPID" not in pod
    container = operator_container(manifests)
    assert container["image"] == DEFAULT_IMAGE
    assert container["args"][0] == "operator"
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in context
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys()
    # /tmp, the one writable path, is an emptyDir.
    [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert {"name": tmp["name"], "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    # Both probes hit /healthz on the port the operator's settings listen on.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    current = operator_settings(manifests)
    assert ports == {"metrics": current.metrics_port, "health": current.liveness_port}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Optional objects stay off.
    assert manifests.kinds().isdisjoint(
        {
            "ServiceMonitor",
            "PodMonitor",
            "PrometheusRule",
            "ConfigMap",
            "Secret",
            "PodDisruptionBudget",
            "CameraIntegration",
            "CanaryProbe",
        }
    )
    assert len(manifests.of_kind("Deployment")) == 1


def test_no_rule_is_a_wildcard_or_cluster_admin(renders: dict[str, Manifests]) -> None:
    for name, manifests in renders.items():
        for role in manifests.of_kind("Role") + manifests.of_kind("ClusterRole"):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], f"{name}: {role['metadata']['name']} {rule}"
                assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
                assert "impersonate" not in rule["verbs"]
        for binding in manifests.of_kind("RoleBinding") + manifests.of_kind("ClusterRoleBinding"):
            assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit"), name


def test_the_operator_command_line_is_one_the_cli_accepts(renders: dict[str, Manifests]) -> None:
    for name, manifests in renders.items():
        args = operator_container(manifests)["args"]
        try:
            parsed = build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{name}: `canarywatch {' '.join(args)}` is refused by cli.py", pytrace=False)
        assert parsed.command == "operator", name


def test_the_operator_environment_is_what_its_settings_read(renders: dict[str, Manifests]) -> None:
    documented = set(re.findall(r"\b(CANARYWATCH_[A-Z_]+)\b", settings.__doc__ or ""))
    for name, manifests in renders.items():
        variables = {v["name"] for v in operator_container(manifests)["env"]}
        unknown = {v for v in variables if v.startswith("CANARYWATCH_")} - documented
        assert not unknown, f"{name}: the operator reads no {sorted(unknown)}"
        operator_settings(manifests)  # parses: every value is one the operator accepts

    default = operator_settings(rendered(renders, "default"))
    assert default.namespaces == (NAMESPACE,)
    assert default.operator_namespace == NAMESPACE
    assert default.leader_election is True
    assert default.lease_name == f"{RELEASE}-canarywatch-operator"
    assert default.agent_image == DEFAULT_IMAGE
    assert default.identity == f"{RELEASE}-canarywatch-operator-0"  # the pod name
    assert operator_settings(rendered(renders, "cluster-wide")).clusterwide is True
    assert operator_settings(rendered(renders, "cluster-wide")).log_level == "DEBUG"


def test_ha_runs_several_replicas_with_one_leader(renders: dict[str, Manifests]) -> None:
    manifests = rendered(renders, "ha")
    deployment = operator_deployment(manifests)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    current = operator_settings(manifests)
    assert current.leader_election is True
    assert current.lease_name == "canarywatch-ha-leader"
    assert (current.lease_retry_seconds, current.lease_renew_deadline_seconds) == (3.0, 12.0)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = manifests.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    assert selects(pdb["spec"]["selector"], pod_labels)
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert selects(term["labelSelector"], pod_labels)
    # The Lease the operator renews is the one its Role names.
    lease_role = manifests.one("Role", f"{RELEASE}-canarywatch-operator-leader-election")
    rules = lease_role["rules"]
    for verb in ("get", "update"):
        assert allows(rules, "coordination.k8s.io", "leases", verb, "canarywatch-ha-leader")
        assert not allows(rules, "coordination.k8s.io", "leases", verb, "someone-elses-lease")
    assert allows(rules, "coordination.k8s.io", "leases", "create")


def _difference(rendered: set[tuple[str, str, str]], module: set[tuple[str, str, str]]) -> str:
    return (
        f"only in the chart: {sorted(rendered - module)}; only in permissions.py: {sorted(module - rendered)}"
    )


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_rbac_is_exactly_the_operators_permissions_module(
    renders: dict[str, Manifests], values: Path
) -> None:
    """Each rendered Role/ClusterRole grants the (group, resource, verb)s of
    controller/permissions.py, no more and no fewer: NAMESPACE_RULES + KILL_SWITCH_RULES
    where the operator watches, KILL_SWITCH_RULES alone in rbac.killSwitchNamespaces,
    LEADER_ELECTION_RULES for the Lease; plus rbac.extraRules where kill switches act."""
    manifests = renders[values.stem]
    extra = permissions.expand(
        (yaml.safe_load(values.read_text()) or {}).get("rbac", {}).get("extraRules", [])
    )
    watched = permissions.expand(permissions.NAMESPACE_RULES) | permissions.expand(
        permissions.KILL_SWITCH_RULES
    )
    expected = {
        "-leader-election": permissions.expand(permissions.LEADER_ELECTION_RULES),
        "-kill-switch": permissions.expand(permissions.KILL_SWITCH_RULES) | extra,
        "-unwatched": permissions.expand(permissions.UNWATCHED_RULES),
        "": watched | extra,
    }
    roles = manifests.operator_roles("Role") + manifests.operator_roles("ClusterRole")
    assert roles
    for role in roles:
        name = role["metadata"]["name"]
        suffix = next(s for s in expected if name.endswith(s))
        granted = permissions.expand(role["rules"])
        assert granted == expected[suffix], f"{name}: {_difference(granted, expected[suffix])}"
        if suffix == "-leader-election":
            # get/update narrowed to the one Lease the operator renews.
            named = [rule for rule in role["rules"] if rule.get("resourceNames")]
            assert [set(rule["verbs"]) for rule in named] == [{"get", "update"}]
            assert named[0]["resourceNames"] == [operator_settings(manifests).lease_name]


def test_namespaced_rbac_is_a_role_per_watched_namespace(renders: dict[str, Manifests]) -> None:
    manifests = rendered(renders, "default")
    assert [r["metadata"]["namespace"] for r in manifests.of_kind("Role")] == [NAMESPACE, NAMESPACE]
    # kopf's CRD and namespace scanning is off.
    # Cluster-scoped: only `list` of the two kinds, to report the ones it does not watch.
    [unwatched] = manifests.operator_roles("ClusterRole")
    assert unwatched["metadata"]["name"].endswith("-unwatched")
    assert permissions.expand(unwatched["rules"]) == permissions.expand(permissions.UNWATCHED_RULES)
    assert operator_settings(manifests).report_unwatched is True
    assert allows(operator_rules(manifests, NAMESPACE), "", "secrets", "get")
    assert not allows(operator_rules(manifests, None), "", "secrets", "get")

    several = rendered(renders, "watch-namespaces")
    watched = ["cw-chart-team-a", "cw-chart-team-b"]
    assert operator_settings(several).namespaces == tuple(watched)
    for namespace in watched:
        assert allows(operator_rules(several, namespace), "canarywatch.io", "canaryprobes", "watch")
    # Where only kill switches act: scale, NetworkPolicy, patch; no Secrets, no watching.
    relay_rules = operator_rules(several, "cw-chart-relay")
    assert allows(relay_rules, "apps", "deployments/scale", "patch")
    assert not allows(relay_rules, "", "secrets", "get")
    assert not allows(relay_rules, "canarywatch.io", "canaryprobes", "watch")
    # The release namespace keeps only the Lease; it is not watched.
    release_rules = operator_rules(several, NAMESPACE)
    assert allows(release_rules, "coordination.k8s.io", "leases", "create")
    assert not allows(release_rules, "", "secrets", "get")


def test_cluster_wide_rbac_is_one_cluster_role(renders: dict[str, Manifests]) -> None:
    manifests = rendered(renders, "cluster-wide")
    [cluster_role] = manifests.operator_roles("ClusterRole")
    assert cluster_role["metadata"]["name"] == f"{RELEASE}-canarywatch-operator-{NAMESPACE}"
    cluster_rules = operator_rules(manifests, None)
    assert allows(cluster_rules, "canarywatch.io", "cameraintegrations", "watch")
    assert allows(cluster_rules, "flags.example.com", "featureflags", "patch")  # rbac.extraRules
    # Only the Lease's Role is namespaced.
    assert [r["metadata"]["name"] for r in manifests.of_kind("Role")] == [
        f"{RELEASE}-canarywatch-operator-leader-election"
    ]
    assert all(obj["metadata"]["labels"]["team"] == "privacy" for obj in manifests.objects)  # commonLabels


def test_the_kill_switch_allowlist_reaches_the_operator_and_admission(helm: Helm) -> None:
    """rbac.killSwitchNamespaces is one allowlist: the operator's setting, the admission
    policy's, and a kill-switch Role where the operator is not watching already (a
    watched namespace in it, or any with rbac.clusterWide, needs no Role of its own)."""
    sets = [f"operator.watchNamespaces={{{NAMESPACE},team-a}}", "rbac.killSwitchNamespaces={team-a,shop}"]
    manifests = helm.render(sets=sets)
    assert operator_settings(manifests).kill_switch_namespaces == ("team-a", "shop")
    kill_switch_roles = [
        r for r in manifests.of_kind("Role") if r["metadata"]["name"].endswith("-kill-switch")
    ]
    assert [r["metadata"]["namespace"] for r in kill_switch_roles] == ["shop"]
    policies = {p["metadata"]["name"]: p for p in manifests.of_kind("ValidatingAdmissionPolicy")}
    targets = policies[f"{RELEASE}-canarywatch-operator-{NAMESPACE}-kill-switch-namespaces"]
    variables = {v["name"]: v["expression"] for v in targets["spec"]["variables"]}
    assert json.loads(variables["allowed"]) == ["team-a", "shop"]
    # Bound where the operator watches: another release's namespaces are its own business.
    for binding in manifests.of_kind("ValidatingAdmissionPolicyBinding"):
        [selector] = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
        assert selector["values"] == [NAMESPACE, "team-a"]

    wide = helm.render(sets=["rbac.clusterWide=true", "rbac.killSwitchNamespaces={shop}"])
    assert operator_settings(wide).kill_switch_namespaces == ("shop",)
    assert not [r for r in wide.of_kind("Role") if r["metadata"]["name"].endswith("-kill-switch")]
    assert all("matchResources" not in b["spec"] for b in wide.of_kind("ValidatingAdmissionPolicyBinding"))


def test_admission_policies_guard_leak_incidents_and_kill_switch_targets(helm: Helm) -> None:
    manifests = helm.render()
    policies = {p["metadata"]["name"]: p for p in manifests.of_kind("ValidatingAdmissionPolicy")}
    prefix = f"{RELEASE}-canarywatch-operator-{NAMESPACE}"
    assert set(policies) == {f"{prefix}-leakincident-creators", f"{prefix}-kill-switch-namespaces"}
    [rule] = policies[f"{prefix}-leakincident-creators"]["spec"]["matchConstraints"]["resourceRules"]
    assert (rule["resources"], rule["operations"]) == (["leakincidents"], ["CREATE"])
    bindings = {b["spec"]["policyName"]: b for b in manifests.of_kind("ValidatingAdmissionPolicyBinding")}
    assert set(bindings) == set(policies)
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings.values())
    assert all(p["spec"]["failurePolicy"] == "Fail" for p in policies.values())
    off = helm.render(sets=["admission.enabled=false"])
    assert not off.of_kind("ValidatingAdmissionPolicy") and not off.of_kind(
        "ValidatingAdmissionPolicyBinding"
    )


def test_without_leader_election_there_is_no_lease_role(helm: Helm) -> None:
    manifests = helm.render(sets=["operator.leaderElection.enabled=false"])
    assert [r["metadata"]["name"] for r in manifests.of_kind("Role")] == [f"{RELEASE}-canarywatch-operator"]
    assert operator_settings(manifests).leader_election is False


def test_metrics_service_selects_the_operator(renders: dict[str, Manifests]) -> None:
    manifests = rendered(renders, "default")
    service = manifests.one("Service", f"{RELEASE}-canarywatch-operator-metrics")
    pod_labels = operator_deployment(manifests)["spec"]["template"]["metadata"]["labels"]
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels)
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == "metrics"
    assert any(p["name"] == "metrics" for p in operator_container(manifests)["ports"])


def test_monitoring_objects_scrape_the_operator_and_agents(renders: dict[str, Manifests]) -> None:
    manifests = rendered(renders, "monitoring")
    service = manifests.one("Service", f"{RELEASE}-canarywatch-operator-metrics")
    monitor = manifests.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    # The operator's series carry the integration's namespace; the rules join on it.
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    # job= the Service's label named by jobLabel, and CanarywatchOperatorDown matches it.
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    [job_regex] = set(re.findall(r'up\{job=~"([^"]+)"\}', RULES.read_text()))
    assert re.fullmatch(job_regex, job), (job, job_regex)

    # The PodMonitor selects the agent pods the operator builds, on their metrics port.
    pod_monitor = manifests.one("PodMonitor")
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    probe, integration = sample_probe()
    agents = [o for o in built_agent_objects(probe, integration) if o["kind"] == "Deployment"]
    assert {a["metadata"]["labels"][LABEL_ROLE] for a in agents} == {"camera", "viewer"}
    for agent in agents:
        template = agent["spec"]["template"]
        assert selects(pod_monitor["spec"]["selector"], template["metadata"]["labels"]), agent["metadata"][
            "name"
        ]
        ports = [p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])]
        assert endpoint["port"] in ports
    # ... and nothing of the chart's own (operator, relay).
    for deployment in manifests.of_kind("Deployment") + rendered(renders, "demo").of_kind("Deployment"):
        assert not selects(
            pod_monitor["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
        )


def _notes(helm: Helm, tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` prints it, without a cluster: `helm template` skips
    NOTES.txt and wants YAML, so a copy of the chart defines it and renders it as a string."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_zz-notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + notes + "{{- end }}\n"
    )
    (chart / "templates" / "zz-notes.yaml").write_text('notes: |\n{{ include "test.notes" . | indent 2 }}\n')
    args = [
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--show-only",
        "templates/zz-notes.yaml",
    ]
    for assignment in sets:
        args += ["--set", assignment]
    result = helm.run(*args)
    assert result.returncode == 0, result.stderr
    text: str = yaml.safe_load(result.stdout)["notes"]
    return text


def test_notes_warn_when_the_alert_rules_cannot_see_what_they_need(helm: Helm, tmp_path: Path) -> None:
    # Before: a PrometheusRule without the PodMonitor could never fire the leak alerts,
    # and NOTES.txt said nothing.
    rules_only = _notes(helm, tmp_path / "a", "prometheusRule.enabled=true")
    assert "metrics.podMonitor.enabled=false" in rules_only
    assert "metrics.serviceMonitor.enabled=false" in rules_only
    everything = _notes(
        helm,
        tmp_path / "b",
        "prometheusRule.enabled=true",
        "metrics.podMonitor.enabled=true",
        "metrics.serviceMonitor.enabled=true",
    )
    assert "WARNING" not in everything
    assert "WARNING" not in _notes(helm, tmp_path / "c")


def test_prometheus_rule_is_the_tested_rule_file_verbatim(renders: dict[str, Manifests]) -> None:
    rule = rendered(renders, "monitoring").one("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    annotations = [r["annotations"] for g in rule["spec"]["groups"] for r in g["rules"] if "annotations" in r]
    assert any("{{ $labels." in a.get("summary", "") for a in annotations), (
        "Prometheus templates were expanded"
    )


def test_dashboards_are_config_maps_with_the_sidecar_label(renders: dict[str, Manifests]) -> None:
    assert DASHBOARDS, "no dashboards in charts/canarywatch/files/dashboards"
    maps = rendered(renders, "monitoring").of_kind("ConfigMap")
    assert len(maps) == len(DASHBOARDS)
    by_file = {name: cm for cm in maps for name in cm["data"]}
    for path in DASHBOARDS:
        cm = by_file[path.name]
        assert cm["data"][path.name] == path.read_text(), f"{path.name} changed on the way into the ConfigMap"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Privacy"}
        assert len(cm["data"]) == 1
    assert not rendered(renders, "monitoring").of_kind("Secret"), "existingSecret: the chart creates none"


def test_dashboard_label_and_namespace_are_configurable(helm: Helm) -> None:
    maps = helm.render(
        sets=[
            "dashboards.enabled=true",
            "dashboards.label=grafana_dashboards",
            "dashboards.labelValue=canary",
            "dashboards.namespace=monitoring",
        ]
    ).of_kind("ConfigMap")
    assert maps and all(cm["metadata"]["labels"]["grafana_dashboards"] == "canary" for cm in maps)
    assert all(cm["metadata"]["namespace"] == "monitoring" for cm in maps)


def test_pagerduty_routing_key_secret_from_a_value(renders: dict[str, Manifests]) -> None:
    manifests = rendered(renders, "watch-namespaces")
    secret = manifests.one("Secret", f"{RELEASE}-canarywatch-pagerduty", NAMESPACE)
    assert base64.b64decode(secret["data"]["routing-key"]).decode() == ROUTING_KEY
    assert operator_settings(manifests).pagerduty_events_url == "https://events.eu.pagerduty.com/v2/enqueue"
    assert operator_container(manifests)["image"] == (DEFAULT_IMAGE + "@sha256:" + "0" * 64), (
        "image.digest pins the reference"
    )


def _decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_demo_objects_fit_together_and_the_code_accepts_them(renders: dict[str, Manifests]) -> None:
    manifests = rendered(renders, "demo")
    tenants = ["acme-7", "bravo-2", "charlie-3"]
    relay = manifests.one("Deployment", f"{RELEASE}-canarywatch-demo-relay")
    relay_service = manifests.one("Service", f"{RELEASE}-canarywatch-demo-relay")
    relay_pod = relay["spec"]["template"]
    assert selects({"matchLabels": relay_service["spec"]["selector"]}, relay_pod["metadata"]["labels"])
    [container] = relay_pod["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The relay's command line parses, and its config Secret is a valid relay config.
    args = build_parser().parse_args(container["args"])
    assert args.command == "relay"
    assert args.fault == "xiaomi-2019" and args.host == "0.0.0.0"
    config_secret = manifests.one("Secret", f"{RELEASE}-canarywatch-demo-relay-config")
    config = RelayConfig.from_mapping(yaml.safe_load(_decoded(config_secret)["relay.yaml"]))
    assert sorted(config.tenants) == tenants
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert args.config == f"{mount['mountPath']}/relay.yaml"
    # Tenants' tokens: what the relay accepts is what the canaries are given.
    tokens = _decoded(manifests.one("Secret", f"{RELEASE}-canarywatch-demo-relay-tokens"))
    assert tokens == dict(config.tenants)
    admin = _decoded(manifests.one("Secret", f"{RELEASE}-canarywatch-demo-relay-admin"))
    assert admin["authorization"] == f"Bearer {config.admin_token}"
    assert len(set(tokens.values()) | {config.admin_token}) == len(tenants) + 1

    integration = manifests.one("CameraIntegration")
    probe = manifests.one("CanaryProbe")
    assert probe["spec"]["integrationRef"]["name"] == integration["metadata"]["name"]
    relay_url = f"http://{relay_service['metadata']['name']}.{NAMESPACE}.svc:{relay_service['spec']['ports'][0]['port']}/"
    urls = [integration["spec"]["camera"]["push"]["url"]] + [
        e["url"] for e in integration["spec"]["viewer"].values() if isinstance(e, dict)
    ]
    assert urls and all(url.startswith(relay_url) for url in urls), urls
    secret_names = {s["metadata"]["name"] for s in manifests.of_kind("Secret")}
    for tenant in probe["spec"]["tenants"]:
        assert tenant["tokenSecretRef"]["name"] in secret_names and tenant["tokenSecretRef"]["key"] in tokens
    actions = {a["name"]: a for a in integration["spec"]["killSwitch"]["actions"]}
    webhook = actions["relay-admin-kill"]["webhook"]
    assert webhook["url"] == relay_url + "v3/admin/kill"
    assert webhook["headersFrom"][0]["secretKeyRef"]["name"] in secret_names
    isolate = actions["isolate-relay"]["networkPolicy"]["podSelector"]
    assert selects(isolate, relay_pod["metadata"]["labels"])
    # No routing key configured: the local receiver is paged.
    receiver_service = manifests.one("Service", f"{RELEASE}-canarywatch-demo-pd-receiver")
    assert integration["spec"]["pagerduty"]["url"] == (
        f"http://{receiver_service['metadata']['name']}.{NAMESPACE}.svc:8765/v2/enqueue"
    )
    receiver = manifests.one("Deployment", f"{RELEASE}-canarywatch-demo-pd-receiver")
    receiver_args = build_parser().parse_args(receiver["spec"]["template"]["spec"]["containers"][0]["args"])
    assert receiver_args.port == 8765 and receiver_args.host == "0.0.0.0"
    # The operator's builders turn the demo probe into workloads: one camera Deployment
    # for every tenant's cameras, one viewer Deployment for every tenant on every profile.
    probe["metadata"]["uid"] = str(uuid.uuid4())
    integration["metadata"]["uid"] = str(uuid.uuid4())
    workloads = build_probe_workloads(probe, integration, image=DEFAULT_IMAGE)
    roles = sorted(w["metadata"]["labels"][LABEL_ROLE] for w in workloads if w["kind"] == "Deployment")
    assert roles == ["camera", "viewer"]


def test_demo_pages_the_configured_pagerduty_secret_when_there_is_one(helm: Helm) -> None:
    manifests = helm.render(scenario("demo"), sets=[f"pagerduty.routingKey={ROUTING_KEY}"])
    integration = manifests.one("CameraIntegration")
    assert integration["spec"]["pagerduty"]["routingKeySecretRef"] == {
        "name": f"{RELEASE}-canarywatch-pagerduty",
        "key": "routing-key",
    }
    assert "url" not in integration["spec"]["pagerduty"]
    assert not [d for d in manifests.of_kind("Deployment") if "pd-receiver" in d["metadata"]["name"]]


# ---------------------------------------------------------------------------------------
# against a real API server
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    plane: controlplane.ControlPlane
    kubectl_path: Path

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            # A discovery cache of this API server's own: the default one in ~/.kube is
            # keyed by host:port, and a port an earlier test's API server used (without
            # the CRDs) answers "no resource type canarywatch" from a stale cache.
            [
                str(self.kubectl_path),
                "--kubeconfig",
                str(self.plane.kubeconfig),
                "--cache-dir",
                str(self.plane.kubeconfig.parent / "kubectl-cache"),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.kubectl(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def dry_run(self, manifests: str) -> subprocess.CompletedProcess[str]:
        """A server-side dry-run apply of ``manifests`` (YAML documents)."""
        return self.kubectl(
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=canarywatch-tests",
            "-f",
            "-",
            stdin=manifests,
        )

    def namespace(self, name: str | None = None) -> str:
        name = name or f"cw-chart-{uuid.uuid4().hex[:8]}"
        if self.kubectl("get", "namespace", name).returncode != 0:
            self.ok("create", "namespace", name)
        return name

    def can(self, account: str, verb: str, resource: str, namespace: str | None) -> bool:
        """A SubjectAccessReview for ServiceAccount ``account`` (``system:serviceaccount:NS:NAME``);
        ``resource`` is ``plural[.group][:subresource][/name]``, ``namespace`` None for
        cluster scope."""
        resource, _, name = resource.partition("/")
        resource, _, subresource = resource.partition(":")
        plural, _, group = resource.partition(".")
        attributes = {
            "verb": verb,
            "group": group,
            "resource": plural,
            "subresource": subresource,
            "name": name,
        }
        if namespace is not None:
            attributes["namespace"] = namespace
        account_namespace = account.split(":")[2]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": account,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{account_namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": attributes,
            },
        }
        answer = json.loads(self.ok("create", "--output=json", "-f", "-", stdin=json.dumps(review)))
        return bool(answer["status"].get("allowed"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    kubectl = tool("kubectl")
    # No controller manager: nothing here needs Pods or garbage collection (2.5 s start).
    plane = start_control_plane(controller_manager=False)
    try:
        result = subprocess.run(
            [str(FETCH_PROMETHEUS_CRDS)], capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            _missing(f"{FETCH_PROMETHEUS_CRDS.name} failed: {result.stderr.strip()[-2000:]}")
        prometheus_crds = Path(result.stdout.strip().splitlines()[-1])
        cluster = Cluster(plane, kubectl)
        for folder in (REPO / "crds", prometheus_crds):
            cluster.ok("apply", "--server-side", "--field-manager=canarywatch-tests", "-f", str(folder))
        cluster.ok("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        # Established is not yet discovered: the API server's discovery document lags a
        # little, and kubectl caches the one it read (which `wait` just did) until a
        # lookup fails. Look the category up until kubectl's cache has it.
        for _ in range(60):
            if cluster.kubectl("get", "canarywatch", "--all-namespaces").returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the canarywatch category never appeared in discovery")
        yield cluster
    finally:
        plane.stop()


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_rendered_manifests_pass_a_server_side_dry_run(helm: Helm, cluster: Cluster, values: Path) -> None:
    namespace = cluster.namespace()
    chosen = yaml.safe_load(values.read_text()) or {}
    others = (
        chosen.get("operator", {}).get("watchNamespaces", [])
        + chosen.get("rbac", {}).get("killSwitchNamespaces", [])
        + chosen.get("pagerduty", {}).get("secretNamespaces", [])
        + [chosen.get("prometheusRule", {}).get("namespace") or NAMESPACE]
    )
    for other in others:
        cluster.namespace(other)
    manifests = helm.template(values, namespace=namespace)
    result = cluster.dry_run(manifests)
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(Manifests.parse(manifests).objects), result.stdout


def assert_only_the_demo_viewer_may_report(cluster: Cluster, namespace: str) -> None:
    """The installed admission policy admits a LeakIncident from the namespace's viewer
    ServiceAccount (the name the operator gives it) and refuses one from anyone else
    (impersonated by the admin: the policy sees the impersonated user)."""
    probe = f"{RELEASE}-canarywatch-demo-relay-canaries"
    viewer = VIEWER_ACCOUNT
    for account in (viewer, "intruder"):
        cluster.ok("create", "serviceaccount", account, "-n", namespace)
        cluster.ok(
            "create",
            "role",
            account,
            "--verb=create",
            "--resource=leakincidents.canarywatch.io",
            "-n",
            namespace,
        )
        cluster.ok(
            "create",
            "rolebinding",
            account,
            f"--role={account}",
            f"--serviceaccount={namespace}:{account}",
            "-n",
            namespace,
        )

    def report(account: str, name: str) -> subprocess.CompletedProcess[str]:
        body = leak(name, f"{RELEASE}-canarywatch-demo-relay")
        body["spec"]["probeRef"]["name"] = probe
        who = f"--as=system:serviceaccount:{namespace}:{account}"
        return cluster.kubectl("create", who, "-n", namespace, "-f", "-", stdin=json.dumps(body))

    def refused() -> subprocess.CompletedProcess[str] | None:
        answer = report("intruder", f"intruder-{uuid.uuid4().hex[:6]}")
        return answer if answer.returncode != 0 and "ValidatingAdmissionPolicy" in answer.stderr else None

    answer = eventually(refused, what="the admission policy to refuse another account")
    assert f"only the viewer ServiceAccount of namespace {namespace} ({VIEWER_ACCOUNT})" in answer.stderr
    admitted = report(viewer, "demo-leak-1")
    assert admitted.returncode == 0, admitted.stderr
    cluster.ok("delete", "leakincident", "demo-leak-1", "-n", namespace)
    for kind in ("rolebinding", "role", "serviceaccount"):
        cluster.ok("delete", kind, viewer, "intruder", "-n", namespace)


def test_install_upgrade_and_uninstall_the_demo(helm: Helm, cluster: Cluster) -> None:
    namespace = cluster.namespace()
    kubeconfig = cluster.plane.kubeconfig
    install = helm.run(
        "install",
        RELEASE,
        str(CHART),
        # The cluster fixture applied the CRDs already; Helm 4 would server-side apply
        # them again and conflict with that field manager (README, "Install on a cluster").
        "--skip-crds",
        "--namespace",
        namespace,
        "--values",
        str(scenario("demo")),
        "--set",
        "dashboards.enabled=true",
        "--wait=false",
        kubeconfig=kubeconfig,
    )
    assert install.returncode == 0, install.stderr
    # NOTES.txt tells the user what to look at next.
    notes = install.stdout.split("NOTES:", 1)[1]
    for expected in (
        f"kubectl get canarywatch -n {namespace}",
        f"port-forward service/{RELEASE}-canarywatch-operator-metrics 9090:9090",
        f"logs -f deployment/{RELEASE}-canarywatch-demo-pd-receiver",
        "kill-switch.canarywatch.io/resume=<incident>",
        "kubectl apply --server-side --force-conflicts -f crds/",
        *(f'- "{json.loads(path.read_text())["title"]}"' for path in DASHBOARDS),
    ):
        assert expected in notes, notes
    listing = cluster.ok("get", "canarywatch", "--namespace", namespace, "--output", "name")
    assert f"cameraintegration.canarywatch.io/{RELEASE}-canarywatch-demo-relay" in listing
    assert f"canaryprobe.canarywatch.io/{RELEASE}-canarywatch-demo-relay-canaries" in listing
    assert_only_the_demo_viewer_may_report(cluster, namespace)

    # Upgrades keep the generated tokens (lookup), and the relay restarts with the new fault.
    def tokens() -> str:
        return cluster.ok(
            "get",
            "secret",
            f"{RELEASE}-canarywatch-demo-relay-tokens",
            "--namespace",
            namespace,
            "--output",
            "jsonpath={.data}",
        )

    before = tokens()
    upgrade = helm.run(
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--reuse-values",
        "--set",
        "demo.relay.fault=none",
        kubeconfig=kubeconfig,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert tokens() == before
    args = cluster.ok(
        "get",
        "deployment",
        f"{RELEASE}-canarywatch-demo-relay",
        "--namespace",
        namespace,
        "--output",
        "jsonpath={.spec.template.spec.containers[0].args}",
    )
    assert "--fault=none" in args

    uninstall = helm.run("uninstall", RELEASE, "--namespace", namespace, kubeconfig=kubeconfig)
    assert uninstall.returncode == 0, uninstall.stderr
    assert (
        cluster.ok(
            "get", "deployments,secrets,roles,canarywatch", "--namespace", namespace, "--output", "name"
        )
        == ""
    )
    # Helm never deletes (or upgrades) CRDs.
    assert cluster.kubectl("get", "crd", "canaryprobes.canarywatch.io").returncode == 0


def test_the_operator_account_can_do_what_its_code_does_and_no_more(helm: Helm, cluster: Cluster) -> None:
    namespace, other = cluster.namespace(), cluster.namespace()
    install = helm.run(
        "install",
        RELEASE,
        str(CHART),
        # The cluster fixture applied the CRDs already; Helm 4 would server-side apply
        # them again and conflict with that field manager (README, "Install on a cluster").
        "--skip-crds",
        "--namespace",
        namespace,
        "--set",
        "demo.enabled=true",
        kubeconfig=cluster.plane.kubeconfig,
    )
    assert install.returncode == 0, install.stderr
    account = f"system:serviceaccount:{namespace}:{RELEASE}-canarywatch-operator"

    # As the operator, make what it makes for the installed demo probe (as the API server
    # stored it) the way controller/probes.py does: create the keyring Secret,
    # server-side apply the rest (twice: create, then update), add a tenant's key to the
    # Secret, delete what goes stale.
    # The viewers' Role and RoleBinding pass RBAC escalation prevention only because the
    # operator holds their rules itself.
    probe = json.loads(cluster.ok("get", "canaryprobe", "--namespace", namespace, "--output", "json"))
    integration = json.loads(
        cluster.ok("get", "cameraintegration", "--namespace", namespace, "--output", "json")
    )
    objects = built_agent_objects(probe["items"][0], integration["items"][0])
    assert {o["kind"] for o in objects} >= {"Secret", "ServiceAccount", "Role", "RoleBinding", "Deployment"}
    [secret] = [o for o in objects if o["kind"] == "Secret"]
    applied = yaml.safe_dump_all([o for o in objects if o["kind"] != "Secret"])
    deleted = yaml.safe_dump_all([o for o in objects if o["kind"] == "Deployment"])
    apply = ["apply", "--server-side", "--force-conflicts", f"--field-manager={kube.FIELD_MANAGER}"]
    added = {"data": keyring_data({"new-tenant": os.urandom(32)})}
    patch = ["patch", "secret", secret["metadata"]["name"], "--namespace", namespace, "--type=merge"]
    for command, document in (
        (["create"], yaml.safe_dump(secret)),
        (apply, applied),
        (apply, applied),
        ([*patch, f"--patch={json.dumps(added)}"], ""),
        (["delete", "--wait=false"], deleted),
    ):
        files = ["-f", "-"] if document else []
        result = cluster.kubectl(*command, f"--as={account}", *files, stdin=document)
        assert result.returncode == 0, f"{command[0]}: {result.stderr}"

    for verb, resource in [
        ("watch", "cameraintegrations.canarywatch.io"),
        ("patch", "canaryprobes.canarywatch.io:status"),
        ("create", "leakincidents.canarywatch.io"),
        ("get", "secrets"),
        ("list", "pods"),
        ("patch", "deployments.apps:scale"),
        ("patch", "statefulsets.apps:scale"),
        ("create", "networkpolicies.networking.k8s.io"),
        ("delete", "networkpolicies.networking.k8s.io"),
        ("patch", "configmaps"),
        ("create", "events"),
        ("create", "leases.coordination.k8s.io"),
    ]:
        assert cluster.can(account, verb, resource, namespace), f"cannot {verb} {resource}"
    assert cluster.can(
        account, "update", f"leases.coordination.k8s.io/{RELEASE}-canarywatch-operator", namespace
    )
    for verb, resource, where in [
        ("get", "secrets", other),  # namespaced install: the namespaces it handles only
        ("watch", "canaryprobes.canarywatch.io", other),
        ("list", "secrets", namespace),  # Secrets are read by name only
        ("create", "pods", namespace),
        ("create", "pods:exec", namespace),
        ("patch", "statefulsets.apps", namespace),  # only their scale subresource
        ("update", "leases.coordination.k8s.io/kube-controller-manager", namespace),
        ("create", "clusterroles.rbac.authorization.k8s.io", None),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("get", "secrets", None),
    ]:
        assert not cluster.can(account, verb, resource, where), f"can {verb} {resource} in {where}"

    # Cluster-wide: the same in every namespace, still nothing cluster-admin-like.
    wide = cluster.namespace()
    install = helm.run(
        "install",
        RELEASE,
        str(CHART),
        # The cluster fixture applied the CRDs already; Helm 4 would server-side apply
        # them again and conflict with that field manager (README, "Install on a cluster").
        "--skip-crds",
        "--namespace",
        wide,
        "--values",
        str(scenario("cluster-wide")),
        kubeconfig=cluster.plane.kubeconfig,
    )
    assert install.returncode == 0, install.stderr
    wide_account = f"system:serviceaccount:{wide}:{RELEASE}-canarywatch-operator"
    assert cluster.can(wide_account, "get", "secrets", other)
    assert cluster.can(wide_account, "watch", "canaryprobes.canarywatch.io", None)
    assert cluster.can(wide_account, "patch", "featureflags.flags.example.com", other)  # rbac.extraRules
    assert not cluster.can(wide_account, "create", "pods", other)
    assert not cluster.can(wide_account, "create", "clusterrolebindings.rbac.authorization.k8s.io", None)
