"""``levers_pending``: whether an integration asks its kill switch for what it has not
done (the level the operator acts on when kopf saw no change)."""

from __future__ import annotations

from typing import Any

import pytest

from canarywatch.api import MANUAL_INCIDENT, RESUME_ANNOTATION
from canarywatch.controller.integrations import levers_pending


def integration(
    suspended: bool, state: str | None = None, incident: str | None = None, resume: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "relay"}, "spec": {"suspended": suspended}}
    if resume:
        body["metadata"]["annotations"] = {RESUME_ANNOTATION: resume}
    if state:
        body["status"] = {"killSwitch": {"state": state, "incident": incident}}
    return body


@pytest.mark.parametrize(
    ("body", "pending"),
    [
        (integration(False), False),
        (integration(True), True),  # switched off by hand, never engaged
        (integration(True, "Resumed", MANUAL_INCIDENT), True),
        (integration(True, "EngageFailed", MANUAL_INCIDENT), False),  # the timer's (retrying)
        (integration(True, "Engaged", MANUAL_INCIDENT), False),
        (integration(True, "Engaged", "leak-1"), False),  # a leak holds it anyway
        (integration(False, "Engaged", MANUAL_INCIDENT), True),  # the hand let go
        (integration(False, "EngageFailed", MANUAL_INCIDENT), False),  # the timer's
        (integration(False, "Engaged", "leak-1"), False),  # a leak needs the annotation
        (integration(False, "Engaged", "leak-1", resume="leak-1"), True),
        (integration(False, "Engaged", "leak-2", resume="leak-1"), False),  # a stale annotation
        (integration(True, "Engaged", "leak-1", resume="leak-1"), False),  # still held by hand
        (integration(False, "Resumed", "leak-1", resume="leak-1"), False),  # done
        (integration(False, "ResumeFailed", "leak-1", resume="leak-1"), False),  # the timer's
    ],
)
def test_pending_when_a_lever_asks_for_what_the_switch_has_not_done(
    body: dict[str, Any], pending: bool
) -> None:
    assert levers_pending(body) is pending


def test_an_integration_without_spec_or_status_asks_for_nothing() -> None:
    assert levers_pending({"metadata": {"name": "relay"}}) is False


@pytest.mark.parametrize(
    "body",
    [
        integration(True, "EngageFailed", MANUAL_INCIDENT),
        integration(True, "Engaging", MANUAL_INCIDENT),  # a restart interrupted it
        integration(False, "ResumeFailed", "leak-1", resume="leak-1"),
        integration(False, "Resuming", MANUAL_INCIDENT),
    ],
)
def test_what_an_action_left_unfinished_is_pending_only_when_retrying(body: dict[str, Any]) -> None:
    """Never on every event: an action failing again would write status, whose event
    would try again, in a loop. The timer retries at its pace."""
    assert (levers_pending(body), levers_pending(body, retrying=True)) == (False, True)


def test_a_leaks_unfinished_engagement_is_not_a_lever_while_held_by_hand() -> None:
    assert levers_pending(integration(True, "EngageFailed", "leak-1"), retrying=True) is False
