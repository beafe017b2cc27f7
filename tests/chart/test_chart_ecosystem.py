"""The chart as a platform team adopts it next to the charts it copies from (bitnami,
kube-prometheus-stack), with Helm 4 and Helm 3 (``test_chart.HELMS``):

* ``global.imageRegistry`` / ``global.imagePullSecrets`` reach every pod, and the agent
  pods through the operator's settings (they run under per-probe ServiceAccounts);
* the agents' priority class, labels, annotations and disruption budgets, as the
  operator reads them and as its builders apply them;
* the operator's NetworkPolicy, extra volumes, egress proxy environment;
* PrometheusRule knobs (namespace, disabled alerts, extra labels, runbook base), and
  the tuned rules still pass ``promtool check rules``;
* the PagerDuty Secret in every namespace whose integrations read it, no placeholder key;
* against a real API server: the aggregated ``view``/``edit`` ClusterRoles (with the
  controller manager's aggregation), and the documented CRD upgrade path
  (``kubectl apply --server-side`` then ``helm upgrade``) with a changed CRD.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from canarywatch.api import LABEL_ROLE
from canarywatch.controller.manifests import build_probe_workloads
from canarywatch.incidents.pagerduty import EVENTS_URL, placeholder_routing_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from cluster_fixtures import start_control_plane
from polling import eventually
from test_chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROUTING_KEY,
    Cluster,
    Helm,
    Manifests,
    built_agent_objects,
    helm,  # noqa: F401  (the fixture, one per Helm major)
    operator_container,
    operator_deployment,
    operator_settings,
    sample_probe,
    scenario,
    selects,
    tool,
)
from test_rules import require_binary

OPERATOR_LABELS = {
    "app.kubernetes.io/name": "canarywatch",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/component": "operator",
}


@pytest.fixture(scope="module")
def ecosystem(helm: Helm) -> Manifests:  # noqa: F811
    return helm.render(scenario("ecosystem"))


# ---------------------------------------------------------------------------------------
# images and agent pods
# ---------------------------------------------------------------------------------------


def test_global_registry_and_pull_secrets_reach_every_pod(ecosystem: Manifests, helm: Helm) -> None:  # noqa: F811
    expected = [{"name": "corp-mirror"}, {"name": "canarywatch-pull"}]
    pod = operator_deployment(ecosystem)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == expected
    assert operator_container(ecosystem)["image"].startswith("registry.corp.example/canarywatch/canarywatch:")
    settings = operator_settings(ecosystem)
    assert settings.agent_image == operator_container(ecosystem)["image"]
    assert settings.agent_pod_options.image_pull_secrets == ("corp-mirror", "canarywatch-pull")
    # The demo's pods too; names and {name: ...} entries alike, duplicates once.
    demo = helm.render(
        scenario("demo"),
        sets=[
            "global.imageRegistry=mirror.example",
            "global.imagePullSecrets={shared,corp}",
            "imagePullSecrets[0].name=corp",
        ],
    )
    for deployment in demo.of_kind("Deployment"):
        template = deployment["spec"]["template"]["spec"]
        assert template["imagePullSecrets"] == [{"name": "shared"}, {"name": "corp"}], deployment["metadata"]
        assert all(c["image"].startswith("mirror.example/") for c in template["containers"])
    # Without any: no imagePullSecrets key at all.
    plain = helm.render(scenario("default"))
    assert "imagePullSecrets" not in operator_deployment(plain)["spec"]["template"]["spec"]
    assert operator_settings(plain).agent_pod_options.image_pull_secrets == ()


def test_the_agent_pods_get_the_charts_options_through_the_operator(ecosystem: Manifests) -> None:
    options = operator_settings(ecosystem).agent_pod_options
    assert options.priority_class_name == "monitoring-critical"
    assert dict(options.labels) == {"team": "privacy"}
    assert dict(options.annotations) == {"sidecar.istio.io/inject": "false"}
    assert options.max_unavailable == "25%"
    probe, integration = sample_probe()
    objects = build_probe_workloads(probe, integration, image="x/y:z", options=options)
    # one budget for the probe's agent pods, cameras and viewers alike
    [budget] = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["maxUnavailable"] == "25%"
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        template = deployment["spec"]["template"]
        assert template["spec"]["imagePullSecrets"] == [{"name": "corp-mirror"}, {"name": "canarywatch-pull"}]
        assert template["spec"]["priorityClassName"] == "monitoring-critical"
        assert template["metadata"]["labels"]["team"] == "privacy"
        assert selects(budget["spec"]["selector"], template["metadata"]["labels"])


def test_agent_disruption_budgets_can_be_turned_off(helm: Helm) -> None:  # noqa: F811
    manifests = helm.render(sets=["agents.podDisruptionBudget.enabled=false"])
    assert operator_settings(manifests).agent_pod_options.max_unavailable is None
    assert operator_settings(helm.render()).agent_pod_options.max_unavailable == "1"


# ---------------------------------------------------------------------------------------
# the operator pod: network policy, volumes, proxy
# ---------------------------------------------------------------------------------------


def test_the_network_policy_selects_the_operator_and_narrows_its_egress(ecosystem: Manifests) -> None:
    policy = ecosystem.one("NetworkPolicy")["spec"]
    pod_labels = operator_deployment(ecosystem)["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["podSelector"], pod_labels)
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    metrics, health = policy["ingress"]
    assert metrics["ports"] == [{"port": 9090, "protocol": "TCP"}]
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert health == {"ports": [{"port": 8080, "protocol": "TCP"}]}
    egress = policy["egress"]
    assert {} not in egress, "allowExternalEgress=false: no allow-all rule"
    ports = {(p["port"], p["protocol"]) for rule in egress for p in rule.get("ports", [])}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP"), (9100, "TCP"), (3128, "TCP")} <= ports
    viewers = next(rule for rule in egress if any(p["port"] == 9100 for p in rule["ports"]))
    assert viewers["to"][0]["podSelector"] == {"matchLabels": {LABEL_ROLE: "viewer"}}


def test_network_policy_defaults_allow_egress_anywhere(helm: Helm) -> None:  # noqa: F811
    assert not helm.render().of_kind("NetworkPolicy")
    policy = helm.render(sets=["networkPolicy.enabled=true"]).one("NetworkPolicy")["spec"]
    assert policy["egress"] == [{}]
    assert policy["ingress"][0]["from"] == [{"namespaceSelector": {}}]


def test_extra_volumes_env_and_the_proxy_reach_the_operator(ecosystem: Manifests) -> None:
    container = operator_container(ecosystem)
    pod = operator_deployment(ecosystem)["spec"]["template"]["spec"]
    assert {"name": "corp-ca", "configMap": {"name": "corp-ca-bundle"}} in pod["volumes"]
    assert {"name": "corp-ca", "mountPath": "/etc/corp-ca", "readOnly": True} in container["volumeMounts"]
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["SSL_CERT_FILE"] == "/etc/corp-ca/ca.crt"
    assert env["HTTPS_PROXY"] == "http://proxy.corp.example:3128"
    assert "HTTP_PROXY" not in env
    # In-cluster webhooks and the local host never go through the proxy.
    assert set(env["NO_PROXY"].split(",")) >= {
        ".svc",
        ".cluster.local",
        "localhost",
        "127.0.0.1",
        ".corp.example",
    }


def test_no_proxy_environment_unless_asked(helm: Helm) -> None:  # noqa: F811
    env = {v["name"] for v in operator_container(helm.render())["env"]}
    assert not env & {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}


# ---------------------------------------------------------------------------------------
# monitoring objects
# ---------------------------------------------------------------------------------------


def _alerts(manifests: Manifests) -> dict[str, dict[str, Any]]:
    rule = manifests.one("PrometheusRule")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


def test_prometheus_rule_knobs(ecosystem: Manifests, tmp_path: Path) -> None:
    rule = ecosystem.one("PrometheusRule")
    assert rule["metadata"]["namespace"] == "cw-chart-monitoring"
    alerts = _alerts(ecosystem)
    assert "CanarywatchStaleFrames" not in alerts
    assert "CanarywatchCrossTenantLeak" in alerts
    for name, alert in alerts.items():
        assert alert["labels"]["team"] == "privacy", name
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), name  # the rule's own kept
        assert alert["annotations"]["runbook_url"] == (
            f"https://wiki.corp.example/canarywatch/runbook-{name.lower()}"
        ), name
    # The Prometheus templates reach Prometheus untouched, and the tuned file is valid.
    assert "{{ $labels.integration }}" in json.dumps(alerts["CanarywatchCrossTenantLeak"]["annotations"])
    promtool = require_binary("promtool")
    path = tmp_path / "tuned.rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_unknown_disabled_alert_is_refused_naming_the_alerts(helm: Helm) -> None:  # noqa: F811
    message = helm.refused("prometheusRule.enabled=true", "prometheusRule.disabledAlerts={CanarywatchTypo}")
    assert "prometheusRule.disabledAlerts: no alert named CanarywatchTypo" in message
    assert "CanarywatchCrossTenantLeak" in message


# ---------------------------------------------------------------------------------------
# PagerDuty Secret
# ---------------------------------------------------------------------------------------


def test_the_routing_key_secret_is_where_the_integrations_read_it(helm: Helm) -> None:  # noqa: F811
    manifests = helm.render(scenario("watch-namespaces"), sets=["pagerduty.secretNamespaces={cameras}"])
    secrets = manifests.of_kind("Secret")
    assert sorted(s["metadata"]["namespace"] for s in secrets) == sorted(
        [NAMESPACE, "cw-chart-team-a", "cw-chart-team-b", "cameras"]
    )
    for secret in secrets:
        assert secret["metadata"]["name"] == f"{RELEASE}-canarywatch-pagerduty"
        assert base64.b64decode(secret["data"]["routing-key"]).decode() == ROUTING_KEY


@pytest.mark.parametrize("key", ["R0UT1NGKEY0000000000000000000001", "PLACEHOLDER000000000000000000000"])
def test_a_placeholder_routing_key_is_refused(helm: Helm, key: str) -> None:  # noqa: F811
    message = helm.refused(f"pagerduty.routingKey={key}")
    assert "pagerduty.routingKey looks like a placeholder" in message


def test_the_example_secret_holds_no_working_looking_key() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "cameraintegration.yaml"
    [secret] = [
        d
        for d in yaml.safe_load_all(example.read_text())
        if d["kind"] == "Secret" and d["metadata"]["name"] == "pagerduty"
    ]
    assert placeholder_routing_key(secret["stringData"]["routing-key"], EVENTS_URL) is not None


# ---------------------------------------------------------------------------------------
# against a real API server (with the controller manager: ClusterRole aggregation)
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    kubectl = tool("kubectl")
    plane = start_control_plane(controller_manager=True)
    try:
        yield Cluster(plane, kubectl)
    finally:
        plane.stop()


def _user_bound_to(cluster: Cluster, role: str, namespace: str) -> str:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    user = f"{name}@example.com"
    cluster.ok("create", "rolebinding", name, f"--clusterrole={role}", f"--user={user}", "-n", namespace)
    return user


def _user_can(cluster: Cluster, user: str, verb: str, resource: str, namespace: str, *extra: str) -> bool:
    result = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={user}", *extra)
    return result.stdout.strip() == "yes"


def test_crd_upgrade_path_and_aggregated_roles(helm: Helm, cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    """An install of an older chart (its CRDs lack a field and a printer column), then
    the README's upgrade: ``kubectl apply --server-side --force-conflicts -f crds/`` and
    ``helm upgrade``. Helm alone leaves the old CRD; the apply brings the new one while
    the existing objects stay. Then `view`/`edit` users see the canarywatch resources."""
    namespace = cluster.namespace()
    kubeconfig = cluster.plane.kubeconfig
    old_chart = tmp_path / "canarywatch-old"
    shutil.copytree(CHART, old_chart)
    crd_path = old_chart / "crds" / "canaryprobes.yaml"
    crd = yaml.safe_load(crd_path.read_text())
    version = crd["spec"]["versions"][0]
    removed_column = version["additionalPrinterColumns"].pop()
    spec_properties = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    removed_field = sorted(
        set(spec_properties)
        - set(version["schema"]["openAPIV3Schema"]["properties"]["spec"].get("required", []))
    )[-1]
    spec_properties.pop(removed_field)
    crd_path.write_text(yaml.safe_dump(crd))

    def live_crd() -> dict[str, Any]:
        return json.loads(cluster.ok("get", "crd", "canaryprobes.canarywatch.io", "-o", "json"))

    def has_new_schema() -> bool:
        live = live_crd()["spec"]["versions"][0]
        names = [c["name"] for c in live.get("additionalPrinterColumns", [])]
        fields = live["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        return removed_column["name"] in names and removed_field in fields

    if cluster.kubectl("get", "crd", "canaryprobes.canarywatch.io").returncode == 0:
        cluster.ok(
            "delete",
            "crd",
            "canaryprobes.canarywatch.io",
            "cameraintegrations.canarywatch.io",
            "leakincidents.canarywatch.io",
        )
    install = helm.run(
        "install",
        RELEASE,
        str(old_chart),
        "-n",
        namespace,
        "--set",
        "demo.enabled=true",
        kubeconfig=kubeconfig,
    )
    assert install.returncode == 0, install.stderr
    cluster.ok("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    assert not has_new_schema()
    probes_before = cluster.ok("get", "canaryprobes", "-n", namespace, "-o", "name")
    assert probes_before

    upgrade = helm.run(
        "upgrade", RELEASE, str(CHART), "-n", namespace, "--reuse-values", kubeconfig=kubeconfig
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert not has_new_schema(), "Helm upgraded a CRD: the README's upgrade section is wrong"
    assert "kubectl apply --server-side --force-conflicts -f crds/" in upgrade.stdout  # NOTES say how

    cluster.ok("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.ok("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    assert has_new_schema()
    assert cluster.ok("get", "canaryprobes", "-n", namespace, "-o", "name") == probes_before
    upgrade = helm.run(
        "upgrade", RELEASE, str(CHART), "-n", namespace, "--reuse-values", kubeconfig=kubeconfig
    )
    assert upgrade.returncode == 0, upgrade.stderr

    # Aggregated roles: the controller manager folds them into view/edit.
    viewer = _user_bound_to(cluster, "view", namespace)
    editor = _user_bound_to(cluster, "edit", namespace)
    eventually(
        lambda: _user_can(cluster, viewer, "list", "leakincidents.canarywatch.io", namespace),
        60,
        "view aggregation",
    )
    eventually(
        lambda: _user_can(cluster, editor, "create", "canaryprobes.canarywatch.io", namespace),
        60,
        "edit aggregation",
    )
    assert _user_can(cluster, viewer, "get", "cameraintegrations.canarywatch.io", namespace)
    assert not _user_can(cluster, viewer, "create", "canaryprobes.canarywatch.io", namespace)
    assert not _user_can(cluster, viewer, "get", "secrets", namespace)
    assert _user_can(cluster, editor, "patch", "leakincidents.canarywatch.io", namespace)
    assert not _user_can(cluster, editor, "create", "leakincidents.canarywatch.io", namespace)  # viewers' job
    assert not _user_can(
        cluster, editor, "patch", "cameraintegrations.canarywatch.io", namespace, "--subresource=status"
    )
    # The agents the operator would build here pass a server-side dry run: budgets included.
    probe = json.loads(cluster.ok("get", "canaryprobe", "-n", namespace, "-o", "json"))["items"][0]
    integration = json.loads(cluster.ok("get", "cameraintegration", "-n", namespace, "-o", "json"))["items"][
        0
    ]
    objects = [o for o in built_agent_objects(probe, integration) if o["kind"] == "PodDisruptionBudget"]
    assert objects
    dry_run = cluster.dry_run(yaml.safe_dump_all(objects))
    assert dry_run.returncode == 0, dry_run.stderr
    uninstall = helm.run("uninstall", RELEASE, "-n", namespace, kubeconfig=kubeconfig)
    assert uninstall.returncode == 0, uninstall.stderr
