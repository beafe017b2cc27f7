"""The kopf handlers of ``canarywatch operator``, and what they do.

Thin where kopf meets the cluster: a handler reads the object, calls the pure
builders (``controller.manifests``), the policy (``incidents.policy``) and the kill
switch (``controller.actions``), and writes status through ``controller.kube``.
``register()`` attaches them to a kopf registry with the intervals of the settings::

    CanaryProbe        create/update/resume  keyring Secret (each key generated once),
                                             the namespace's viewer RBAC, camera/viewer
                                             Deployments, stale ones removed
                       startup: one loop     status summaries of every probe (probes from
                                             their events, workloads from an index,
                                             verdict counts and coverage scraped from
                                             ready viewers)
                       any event             the probe as the summaries read it; on
                                             DELETED its gauges forgotten (no finalizer:
                                             owner references remove its objects)
    CameraIntegration  create/update/resume  policy and kill-switch validation: phase
                                             Active or Degraded, the Degraded condition
                       spec.suspended        true by hand: engage; false: resume what it
                                             switched off (never a switch-off for a leak)
                       annotation            resume the switch-off for the incident it
                       kill-switch.canarywatch.io/resume  names (restore what it changed)
                       any event             the same two levers by level: acted on when
                                             they ask for what the switch has not done
                       spec.camera/viewer,   re-roll the probes that run against it
                       spec.policy.verdicts  (the viewers confirm with those rules)
                       timer                 resolve open incidents once clean
                       timer                 re-validate a Degraded one (a Secret created
                                             later heals it without a spec change)
    LeakIncident       create/resume         policy → page (PagerDuty) and kill switch

The handlers live in ``probes``, ``integrations`` and ``incidents``; below them
``suspension`` (the kill switch in status) and ``paging``; ``indexes`` and ``runtime``
are shared by all.

State lives in status, not in the operator: ``CameraIntegration.status.phase`` is the
state machine (Active ⇄ Suspended, Degraded while the configuration cannot run), driven
by ``status.killSwitch.state`` (Engaging → Engaged | EngageFailed → Resuming → Resumed |
ResumeFailed); a LeakIncident's status says what was decided, whether the page was
delivered (``paged.result``: Pending before each attempt, Accepted after) and whether
the integration is shut down. Every handler is idempotent against that state, so a
restarted operator (or a kopf retry) finishes a half-done response and never repeats a
finished one. All writes about one integration happen under one lock, against a fresh
read of it: only the elected leader runs these handlers, so a process lock suffices.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from canarywatch.api import (
    API_GROUP,
    PLURAL_INCIDENTS,
    PLURAL_INTEGRATIONS,
    PLURAL_PROBES,
    RESUME_ANNOTATION,
    VERSION,
)
from canarywatch.controller.incidents import respond_to_incident
from canarywatch.controller.indexes import (
    awaits_response,
    deployments_by_probe,
    incidents_by_integration,
    integrations_by_name,
)
from canarywatch.controller.integrations import (
    configure_integration,
    recheck_degraded,
    resolve_incidents,
    suspend_or_resume,
    suspend_or_resume_on_event,
)
from canarywatch.controller.probes import follow_probe, reconcile_probe, reroll_probes, summarize_probes
from canarywatch.controller.runtime import Runtime
from canarywatch.controller.settings import OperatorSettings

__all__ = ["liveness", "register"]

GROUP = API_GROUP
_PROBES = (GROUP, VERSION, PLURAL_PROBES)
_INTEGRATIONS = (GROUP, VERSION, PLURAL_INTEGRATIONS)
_INCIDENTS = (GROUP, VERSION, PLURAL_INCIDENTS)
MANAGED_BY = {"app.kubernetes.io/managed-by": "canarywatch-operator"}


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Attach every handler to ``registry`` (see the module docstring).

    kopf names a handler after its function (``__qualname__``, without the module) unless
    given an ``id``, and keeps its progress in annotations under that id: renaming a
    handler function orphans the progress of in-flight objects."""
    on = kopf.on
    on.login(registry=registry)(kopf.login_via_client)
    on.probe(id="canarywatch", registry=registry)(liveness)
    deployments = ("apps", "v1", "deployments")
    for resource, labels, index, bulk in (
        (deployments, MANAGED_BY, deployments_by_probe, True),
        (_INTEGRATIONS, None, integrations_by_name, False),
        (_INCIDENTS, None, incidents_by_integration, False),
    ):
        indexed = _on_the_loop(index, bulk=bulk)
        kopf.index(*resource, id=index.__name__, labels=labels, registry=registry)(indexed)

    for cause in (on.create, on.update, on.resume):
        cause(*_PROBES, registry=registry)(reconcile_probe)
    on.startup(registry=registry)(start_summaries)
    # Every event (not an index: see follow_probe); a deletion on the watch's DELETED
    # event, not on.delete: that would need a finalizer (a patch per probe, and no
    # deletion while the operator is down).
    on.event(*_PROBES, registry=registry)(follow_probe)

    for cause in (on.create, on.update, on.resume):
        cause(*_INTEGRATIONS, registry=registry)(configure_integration)
    on.field(*_INTEGRATIONS, field="spec.suspended", registry=registry)(suspend_or_resume)
    on.field(
        *_INTEGRATIONS,
        id="resume_on_annotation",
        field=("metadata", "annotations", RESUME_ANNOTATION),
        registry=registry,
    )(suspend_or_resume)
    on.resume(*_INTEGRATIONS, id="suspend_or_resume_on_start", registry=registry)(suspend_or_resume)
    # the same levers by their level, on every event: kopf folds a change that lands
    # while the object's earlier handlers run into its last-handled configuration
    on.event(*_INTEGRATIONS, registry=registry)(suspend_or_resume_on_event)
    on.create(*_INTEGRATIONS, registry=registry)(reroll_probes)
    for path in ("spec.camera", "spec.viewer", "spec.policy.verdicts", "spec.maintenance"):
        on.update(*_INTEGRATIONS, field=path, registry=registry)(reroll_probes)
    kopf.timer(*_INTEGRATIONS, interval=settings.resolve_check_seconds, registry=registry)(resolve_incidents)
    kopf.timer(*_INTEGRATIONS, interval=settings.status_interval_seconds, registry=registry)(recheck_degraded)

    on.create(*_INCIDENTS, registry=registry)(respond_to_incident)
    on.resume(*_INCIDENTS, registry=registry)(respond_to_incident)


def _on_the_loop(
    index: Callable[..., dict[Any, Any]], *, bulk: bool
) -> Callable[..., Awaitable[dict[Any, Any]]]:
    """``index`` (a pure function of the body, microseconds) as a coroutine: kopf runs a
    plain function in its thread pool, a hop to a thread and back for every watch event
    of every object (thousands at a cold start, and on a LeakIncident's way).

    kopf runs an object's index functions first when handling its watch events; for
    ``bulk`` kinds (the probes' Deployments) the handling waits there while a kill
    switch is on its way (``controller.urgency``). A LeakIncident that needs a response
    makes bulk work wait from the moment it is seen."""

    async def indexed(body: kopf.Body, memo: Runtime, **_: Any) -> dict[Any, Any]:
        if bulk:
            await memo.kube.urgency.unhurried()
        elif awaits_response(body):
            memo.kube.urgency.expect()
        return index(body)

    return indexed


async def start_summaries(memo: Runtime, **kwargs: Any) -> None:
    """Start the probes' status summaries (``probes.summarize_probes``) over kopf's
    indexes (live views: filled as the watches deliver); they stop with the operator."""
    indexes = (kwargs["deployments_by_probe"], kwargs["integrations_by_name"])
    memo.background(summarize_probes(memo, *indexes), "the probes' status summaries")


async def liveness(memo: Runtime, **_: Any) -> dict[str, Any]:
    """kopf's /healthz answer; failing once leadership is lost makes the pod restart."""
    if memo.elector is not None and not memo.elector.leading:
        raise RuntimeError("this replica lost its leader lease")
    return {"leading": memo.elector is not None, "apiRequests": sum(memo.kube.requests.values())}
