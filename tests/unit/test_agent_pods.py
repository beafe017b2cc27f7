"""Install-wide options of the agent pods (``manifests.agentpods``) and how the operator
reads them (``CANARYWATCH_AGENT_*``): pull Secrets and the rest in every pod spec
(the agents run under per-probe ServiceAccounts), the operator's labels winning, and a
PodDisruptionBudget per probe and role that selects exactly that role's pods."""

from __future__ import annotations

from typing import Any

import pytest
from manifests import example

from canarywatch import api
from canarywatch.controller import manifests
from canarywatch.controller.manifests import AgentPodOptions
from canarywatch.controller.settings import OperatorSettings, SettingsError

IMAGE = "registry.example/canarywatch:0.1.0"
OPTIONS = AgentPodOptions(
    image_pull_secrets=("regcred", "mirror-creds"),
    priority_class_name="monitoring-critical",
    labels={"team": "privacy", "sidecar.istio.io/inject": "false"},
    annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
    max_unavailable="25%",
)


def built(options: AgentPodOptions) -> list[dict[str, Any]]:
    probe = example("CanaryProbe")
    probe["metadata"] |= {"namespace": "cameras", "uid": "0b7e5f7c-1111-4e21-9c0a-7d4b2e6f8a10"}
    integration = example("CameraIntegration")
    integration["metadata"] |= {"namespace": "cameras"}
    return manifests.build_probe_workloads(probe, integration, image=IMAGE, options=options)


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    absent = [e["key"] for e in selector.get("matchExpressions", []) if e["operator"] == "DoesNotExist"]
    assert len(absent) == len(selector.get("matchExpressions", [])), "only DoesNotExist is built"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items()) and not any(
        k in labels for k in absent
    )


def test_every_agent_pod_gets_the_options() -> None:
    plain = {d["metadata"]["name"]: d for d in of_kind(built(manifests.DEFAULT_OPTIONS), "Deployment")}
    deployments = of_kind(built(OPTIONS), "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == set(plain)
    for deployment in deployments:
        template = deployment["spec"]["template"]
        pod = template["spec"]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-creds"}]
        assert pod["priorityClassName"] == "monitoring-critical"
        assert template["metadata"]["labels"]["team"] == "privacy"
        assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
        assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"
        # The operator's labels and annotations are all still there, the selector too.
        before = plain[deployment["metadata"]["name"]]["spec"]["template"]["metadata"]
        assert before["labels"].items() <= template["metadata"]["labels"].items()
        assert selects(deployment["spec"]["selector"], template["metadata"]["labels"])
        assert (
            template["metadata"]["annotations"]["prometheus.io/port"]
            == before["annotations"]["prometheus.io/port"]
        )
        # A changed pod template rolls the agents: the config hash follows the options.
        assert (
            template["metadata"]["annotations"][api.CONFIG_HASH_ANNOTATION]
            != (before["annotations"][api.CONFIG_HASH_ANNOTATION])
        )
    for deployment in of_kind(built(manifests.DEFAULT_OPTIONS), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert "imagePullSecrets" not in pod and "priorityClassName" not in pod


def test_one_disruption_budget_per_probe_selects_exactly_its_agent_pods() -> None:
    objects = built(OPTIONS)
    [budget] = of_kind(objects, "PodDisruptionBudget")
    assert budget["metadata"]["name"] == "reference-relay-canaries-agents"
    assert budget["spec"]["maxUnavailable"] == "25%"
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert budget["metadata"]["ownerReferences"][0]["kind"] == "CanaryProbe"
    deployments = of_kind(objects, "Deployment")
    assert {d["metadata"]["labels"][api.LABEL_ROLE] for d in deployments} == {"camera", "viewer"}
    for deployment in deployments:
        assert selects(budget["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    other = {**deployments[0]["spec"]["template"]["metadata"]["labels"], api.LABEL_PROBE: "another-probe"}
    assert not selects(budget["spec"]["selector"], other)
    count = AgentPodOptions(max_unavailable="2")
    assert {b["spec"]["maxUnavailable"] for b in of_kind(built(count), "PodDisruptionBudget")} == {2}


def test_turning_the_budgets_off_removes_them_and_changes_every_deployment() -> None:
    on = {d["metadata"]["name"]: d for d in of_kind(built(manifests.DEFAULT_OPTIONS), "Deployment")}
    off_objects = built(AgentPodOptions(max_unavailable=None))
    assert not of_kind(off_objects, "PodDisruptionBudget")
    for deployment in of_kind(off_objects, "Deployment"):
        annotations = deployment["metadata"]["annotations"]
        before = on[deployment["metadata"]["name"]]["metadata"]["annotations"]
        assert (
            before[manifests.DISRUPTION_BUDGET_ANNOTATION],
            annotations[manifests.DISRUPTION_BUDGET_ANNOTATION],
        ) == (
            "maxUnavailable=1",
            "off",
        )
        # So the operator re-applies them, and deletes the budgets then.
        assert annotations[api.CONFIG_HASH_ANNOTATION] != before[api.CONFIG_HASH_ANNOTATION]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_unavailable": "0"},
        {"max_unavailable": "101%"},
        {"max_unavailable": "one"},
        {"labels": {"canarywatch.io/role": "camera"}},
        {"annotations": {"app.kubernetes.io/name": "x"}},
    ],
)
def test_options_the_operator_cannot_honour_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AgentPodOptions(**bad)


def test_the_operator_reads_the_options_from_its_environment() -> None:
    settings = OperatorSettings.from_env(
        {
            "CANARYWATCH_OPERATOR_NAMESPACE": "canarywatch",
            "CANARYWATCH_AGENT_IMAGE_PULL_SECRETS": "regcred, mirror-creds,regcred",
            "CANARYWATCH_AGENT_PRIORITY_CLASS_NAME": "monitoring-critical",
            "CANARYWATCH_AGENT_POD_LABELS": '{"team": "privacy", "sidecar.istio.io/inject": "false"}',
            "CANARYWATCH_AGENT_POD_ANNOTATIONS": '{"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}',
            "CANARYWATCH_AGENT_MAX_UNAVAILABLE": "25%",
        }
    )
    assert settings.agent_pod_options == OPTIONS
    default = OperatorSettings.from_env({"CANARYWATCH_OPERATOR_NAMESPACE": "canarywatch"})
    assert default.agent_pod_options == manifests.DEFAULT_OPTIONS
    off = OperatorSettings.from_env(
        {"CANARYWATCH_OPERATOR_NAMESPACE": "x", "CANARYWATCH_AGENT_MAX_UNAVAILABLE": "off"}
    )
    assert off.agent_pod_options.max_unavailable is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CANARYWATCH_AGENT_IMAGE_PULL_SECRETS", "Reg_Cred"),
        ("CANARYWATCH_AGENT_POD_LABELS", '["team"]'),
        ("CANARYWATCH_AGENT_POD_LABELS", '{"team": 1}'),
        ("CANARYWATCH_AGENT_POD_LABELS", '{"canarywatch.io/tenant": "x"}'),
        ("CANARYWATCH_AGENT_POD_ANNOTATIONS", "{not json"),
        ("CANARYWATCH_AGENT_MAX_UNAVAILABLE", "0"),
    ],
)
def test_a_bad_option_stops_the_operator_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        OperatorSettings.from_env({"CANARYWATCH_OPERATOR_NAMESPACE": "x", variable: value})
    assert raised.value.variable == variable
