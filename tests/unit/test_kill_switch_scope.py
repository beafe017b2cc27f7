"""The confused-deputy guard: a CameraIntegration's kill-switch actions act in its own
namespace, or in one the install allowlists (CANARYWATCH_KILL_SWITCH_NAMESPACES)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from manifests import integration

from canarywatch.controller.actions import ActionSpecError, build_actions
from canarywatch.controller.settings import OperatorSettings, SettingsError


def aimed_at(namespace: str | None) -> dict[str, Any]:
    body = integration("relay")
    body["metadata"]["namespace"] = "cameras"
    for action in body["spec"]["killSwitch"]["actions"]:
        settings = action.get(action["type"])
        if namespace is not None and action["type"] == "patch":
            settings["namespace"] = namespace
    return body


def build(body: dict[str, Any], settings: OperatorSettings) -> list[Any]:
    scope = functools.partial(settings.kill_switch_may_act_in, integration_namespace="cameras")
    return asyncio.run(build_actions(body, kube=None, may_act_in=scope))  # type: ignore[arg-type]


def test_another_namespace_is_refused_naming_the_field_unless_allowlisted() -> None:
    plain = OperatorSettings(leader_election=False)
    assert {a.target for a in build(aimed_at(None), plain)} >= {"ConfigMap cameras/relay-feature-flags"}
    with pytest.raises(ActionSpecError) as refused:
        build(aimed_at("payments"), plain)
    assert refused.value.field == "spec.killSwitch.actions[2].patch.namespace"
    assert "'payments'" in refused.value.message and "rbac.killSwitchNamespaces" in refused.value.message

    environ = {"CANARYWATCH_LEADER_ELECTION": "false", "CANARYWATCH_KILL_SWITCH_NAMESPACES": "payments, shop"}
    allowed = OperatorSettings.from_env(environ)
    assert allowed.kill_switch_namespaces == ("payments", "shop")
    assert "ConfigMap payments/relay-feature-flags" in {
        a.target for a in build(aimed_at("payments"), allowed)
    }
    anywhere = OperatorSettings.from_env(environ | {"CANARYWATCH_KILL_SWITCH_NAMESPACES": "*"})
    assert build(aimed_at("elsewhere"), anywhere)
    # Without a scope (None) only the integration's own namespace.
    with pytest.raises(ActionSpecError):
        asyncio.run(build_actions(aimed_at("payments"), kube=None))  # type: ignore[arg-type]


def test_a_bad_allowlist_names_the_variable() -> None:
    with pytest.raises(SettingsError) as bad:
        OperatorSettings.from_env(
            {"CANARYWATCH_LEADER_ELECTION": "false", "CANARYWATCH_KILL_SWITCH_NAMESPACES": "Shop!"}
        )
    assert bad.value.variable == "CANARYWATCH_KILL_SWITCH_NAMESPACES"
