"""The operator parses an integration's response policy once per spec, not per incident."""

from __future__ import annotations

from typing import Any

from canarywatch.controller.runtime import integration_policy
from canarywatch.controller.settings import OperatorSettings
from canarywatch.incidents.policy import Confirmation, Mode
from canarywatch.verdicts import Verdict

SETTINGS = OperatorSettings(leader_election=False)


def integration(policy: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "relay", "namespace": "shop"}, "spec": {"policy": policy}}


def test_one_parse_per_spec() -> None:
    spec = {"mode": "alert-only", "verdicts": {"foreign": {"confirmation": {"frames": 3, "ofLast": 5}}}}
    first, problem = integration_policy(integration(spec), SETTINGS)
    again, _ = integration_policy(integration(dict(spec)), SETTINGS)
    assert problem is None and first.mode is Mode.ALERT_ONLY
    assert again is first, "the same spec is not parsed again"
    changed, _ = integration_policy(integration({**spec, "mode": "dry-run"}), SETTINGS)
    assert changed is not first and changed.mode is Mode.DRY_RUN


def test_a_leak_incident_is_already_confirmed() -> None:
    spec = {"verdicts": {"foreign": {"confirmation": {"frames": 3, "ofLast": 5}}}}
    confirmed, _ = integration_policy(integration(spec), SETTINGS, confirmed=True)
    assert all(rule.confirmation == Confirmation() for rule in confirmed.rules.values())
    assert integration_policy(integration(spec), SETTINGS)[0].rules[Verdict.FOREIGN].confirmation != (
        Confirmation()
    )


def test_an_unreadable_policy_pages_only() -> None:
    policy, problem = integration_policy(integration({"mode": "shout"}), SETTINGS)
    assert policy.mode is Mode.ALERT_ONLY and problem is not None and "spec.policy" in problem
