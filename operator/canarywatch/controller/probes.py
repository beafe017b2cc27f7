"""CanaryProbe handlers: its keyring Secret (each tenant's key generated once), the
namespace's viewer RBAC (once per namespace) and the camera/viewer Deployments
reconciled from the pure builders, stale ones removed; the periodic status summary
(verdict counts scraped from ready viewers); and the re-roll of an integration's probes
when its endpoints or verdict rules change.

What a reconcile costs the API server, since 1,000 probes start at once after an
upgrade or a restore: a new probe is one create of its Secret, one create (POST, half
the API server's CPU of a server-side apply) of each Deployment (two, without ``tc``
profiles) and of its PodDisruptionBudget, and one status patch (kopf keeps its own
state in that same patch: ``main.kopf_settings``). A probe whose Deployments carry the
config hash the builders produce now costs nothing but, when it changed, its status
patch; a changed one, one apply of each changed Deployment and of its budget, and, the
first time after its creation, the handover of each to the apply (one patch per
Deployment, a read and a patch of the budget: ``controller.ownership``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
from prometheus_client.parser import text_string_to_metric_families

from canarywatch.api import CONFIG_HASH_ANNOTATION, LABEL_ROLE, AgentRole
from canarywatch.controller import manifests
from canarywatch.controller.cameras import observe_cameras
from canarywatch.controller.indexes import lookup, probes_by_name
from canarywatch.controller.kube import (
    CAMERA_INTEGRATIONS,
    CANARY_PROBES,
    DEPLOYMENTS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    SECRETS,
    KubeError,
    NotFound,
    bulk,
)
from canarywatch.controller.ownership import write_objects
from canarywatch.controller.runtime import (
    RETRY_DELAY,
    Runtime,
    ViewerRbac,
    epoch,
    is_degraded,
    status_condition,
)
from canarywatch.coverage import fetch_counts, summarize
from canarywatch.httpclient import client_session
from canarywatch.spec import ProbeSpec
from canarywatch.verdicts import Verdict

__all__ = ["follow_probe", "reconcile_probe", "reroll_probes", "summarize_probe", "summarize_probes"]

log = logging.getLogger(__name__)

_SCRAPE_TIMEOUT = 2.0


async def reconcile_probe(
    body: kopf.Body,
    old: Mapping[str, Any] | None,
    reason: str,
    patch: kopf.Patch,
    memo: Runtime,
    **kwargs: Any,
) -> None:
    """Create or update the probe's Secret and Deployments; remove stale ones."""
    namespace = body["metadata"]["namespace"]
    integration_name = _integration_name(body)
    found = lookup(kwargs.get("integrations_by_name"), (namespace, integration_name))
    integration = found[0] if found else await memo.kube.get(CAMERA_INTEGRATIONS, namespace, integration_name)
    existing = lookup(kwargs.get("deployments_by_probe"), (namespace, body["metadata"]["uid"]))
    try:
        async with memo.reconciles:
            await memo.kube.urgency.unhurried()  # building the objects takes the event loop too
            with bulk():
                status, keyrings = await _reconcile_probe(
                    memo,
                    dict(body),
                    integration,
                    existing,
                    old_spec=(old or {}).get("spec") if reason == "update" else None,
                    known_keyrings=memo.keyring_tenants,
                    fresh=reason == "create",
                )
    except KubeError as error:
        # The API server refused one of its objects (RBAC, a quota, an admission webhook):
        # say so where a user looks, and try again later (kopf writes the patch regardless).
        problem = f"cannot write the probe's objects: {error}"
        patch.status.update(_broken_probe_status(body, problem))
        raise kopf.TemporaryError(problem, delay=RETRY_DELAY) from error
    memo.keyring_tenants = frozenset(keyrings)
    if reason != "resume" or _changed(status, body.get("status") or {}):
        patch.status.update(status)


async def _reconcile_probe(
    rt: Runtime,
    probe: dict[str, Any],
    integration: Mapping[str, Any] | None,
    existing: Sequence[Mapping[str, Any]],
    *,
    old_spec: Mapping[str, Any] | None = None,
    known_keyrings: Iterable[str] = (),
    fresh: bool = False,
) -> tuple[dict[str, Any], set[str]]:
    """Bring the probe's objects in line with its spec; its new status and keyring tenants.

    ``existing`` are the live Deployments it owns (from the index): one whose config hash
    matches what the builders produce now is left alone. ``fresh`` (a creation) skips
    nothing, and creates the objects when none exists yet; otherwise Services and the
    budget are re-applied only if some Deployment changed. The keyring is written before
    any Deployment that mounts it.
    """
    namespace, name = probe["metadata"]["namespace"], probe["metadata"]["name"]
    problems: list[str] = []
    keyrings: set[str] = set()
    try:
        spec = manifests.parse_probe(probe)
    except manifests.BuildError as error:
        return _broken_probe_status(probe, str(error)), keyrings
    workloads: list[dict[str, Any]] = []
    if integration is None:
        problems.append(f"CameraIntegration {namespace}/{spec.integration} not found")
    else:
        try:
            workloads = manifests.build_probe_workloads(
                probe,
                integration,
                image=rt.settings.agent_image,
                image_pull_policy=rt.settings.agent_image_pull_policy,
                options=rt.settings.agent_pod_options,
            )
        except manifests.BuildError as error:
            problems.append(str(error))
    live = {str(d["metadata"]["name"]): dict(d) for d in existing}
    if not problems:
        hashes = {
            n: d["metadata"].get("annotations", {}).get(CONFIG_HASH_ANNOTATION) for n, d in live.items()
        }
        stale_deployments = [
            obj
            for obj in workloads
            if obj["kind"] == "Deployment"
            and hashes.get(obj["metadata"]["name"]) != obj["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        ]
        known = set(known_keyrings)
        if not fresh and manifests.camera_name(spec.name) not in {
            d["metadata"]["name"] for d in stale_deployments
        }:
            # The camera Deployment (whose hash covers the tenant list) was applied after
            # the keyring of those tenants was written: no need to write it again.
            known |= set(spec.tenant_ids)
        keyrings = await _ensure_keyring(rt, probe, spec.tenant_ids, known)
        if fresh or stale_deployments:
            await _ensure_viewer_rbac(rt, probe)
            others = [obj for obj in workloads if obj["kind"] in ("Service", "PodDisruptionBudget")]
            # Nothing of the probe exists yet: created, which costs the API server half
            # of an apply (``controller.ownership``).
            written = await write_objects(
                rt.kube, others + stale_deployments, create=fresh and not live, live=live
            )
            for obj in written:
                if obj.get("kind") == "Deployment":
                    live[str(obj["metadata"]["name"])] = obj
            if rt.settings.agent_pod_options.max_unavailable is None and not fresh:
                # Budgets off: remove any made while they were on (turning them off
                # changes every Deployment's annotation, so this runs then).
                for budget in manifests.disruption_budget_names(spec):
                    await rt.kube.delete(POD_DISRUPTION_BUDGETS, namespace, budget)
        expected = set(manifests.expected_workload_names(spec))
        for stale in sorted(set(live) - expected):
            await rt.kube.delete(DEPLOYMENTS, namespace, stale, uid=live[stale]["metadata"].get("uid"))
            live.pop(stale)
        if old_spec is not None:
            await _remove_tenants(rt, probe, old_spec, set(spec.tenant_ids))
    status = manifests.build_probe_status(
        probe,
        deployments=live.values(),
        keyring_tenants=keyrings,
        now=datetime.now(UTC),
        problems=problems,
        previous=probe.get("status") or {},
        maintenance=manifests.maintenance_reason(probe, integration),
    )
    # As the status summary will see them (so its first pass has nothing to write).
    status |= observe_cameras(rt, probe, spec, list(live.values()), status)
    if problems and not _has_problem_condition(probe.get("status") or {}, problems):
        rt.event(probe, "ConfigurationProblem", "; ".join(problems), warning=True)
    log.info("CanaryProbe %s/%s reconciled: %s workloads ready", namespace, name, status.get("ready"))
    return status, keyrings


async def _ensure_keyring(
    rt: Runtime, probe: Mapping[str, Any], tenants: Sequence[str], known: set[str]
) -> set[str]:
    """The probe's keyring Secret with an item for each tenant; a fresh key only for a
    tenant that has none: created with every missing tenant's key, else each missing
    one added. An existing item is never rewritten.

    A key is generated here and goes straight into the Secret: it is never logged,
    kept, or regenerated.
    """
    missing = [t for t in tenants if t not in known]
    if not missing:
        return set(tenants)
    keys = {t: secrets.token_bytes(32) for t in missing}
    if not known and await rt.kube.create_if_absent(manifests.build_keyring_secret(probe, keys)):
        return set(tenants)
    namespace, name = probe["metadata"]["namespace"], manifests.keyring_secret_name(probe["metadata"]["name"])
    current = await rt.kube.get(SECRETS, namespace, name) or {}
    present = set(current.get("data") or {})
    added = {t: key for t, key in keys.items() if manifests.keyring_item(t) not in present}
    if added:
        if current:
            await rt.kube.merge_patch(SECRETS, namespace, name, {"data": manifests.keyring_data(added)})
        else:  # deleted by hand: made again (its Deployments roll with the new keys)
            await rt.kube.create(manifests.build_keyring_secret(probe, keys))
    return set(tenants)


async def _ensure_viewer_rbac(rt: Runtime, probe: Mapping[str, Any]) -> None:
    """The namespace's viewer ServiceAccount, Role and RoleBinding, owned by each of its
    probes: applied when this probe is not yet among the owners this process applied,
    with every probe known there (``Runtime.probes``; the first time in a process, every
    probe the API server lists there too: at a cold start the watch has delivered only
    some, and one apply serves them all); probes arriving meanwhile wait for that apply."""
    namespace, uid = str(probe["metadata"]["namespace"]), str(probe["metadata"]["uid"])
    while True:
        applying = rt.viewer_rbac.get(namespace)
        if applying is not None and applying.owns(uid):
            await asyncio.shield(applying.done)
            return
        if applying is not None and not applying.done.done():
            await asyncio.wait([applying.done])  # then see whether it made this probe an owner
            continue
        owners = {(str(probe["metadata"]["name"]), uid)} | _probes_in(rt.probes, namespace)
        done = asyncio.ensure_future(_apply_viewer_rbac(rt, namespace, owners, listing=applying is None))
        apply = rt.viewer_rbac[namespace] = ViewerRbac(owners, done)
        try:
            await asyncio.shield(apply.done)
        except KubeError:
            if rt.viewer_rbac.get(namespace) is apply:
                del rt.viewer_rbac[namespace]  # the next reconcile tries again
            raise
        return


async def _apply_viewer_rbac(
    rt: Runtime, namespace: str, owners: set[tuple[str, str]], *, listing: bool
) -> None:
    """Apply the RBAC owned by ``owners`` and, with ``listing``, by every probe the API
    server lists there (names and uids only), added to ``owners`` first."""
    if listing:
        listed = await rt.kube.list_metadata(CANARY_PROBES, namespace)
        owners |= {(str(p["metadata"]["name"]), str(p["metadata"]["uid"])) for p in listed}
    for obj in manifests.build_viewer_rbac(namespace, owners):  # in order: the binding names the Role
        await rt.kube.apply(obj)


def _probes_in(probes: Mapping[tuple[str, str], Mapping[str, Any]], namespace: str) -> set[tuple[str, str]]:
    """(name, uid) of every CanaryProbe of ``namespace`` among ``probes``."""
    return {
        (str(p["metadata"]["name"]), str(p["metadata"]["uid"]))
        for (ns, _), p in list(probes.items())
        if ns == namespace
    }


async def _remove_tenants(
    rt: Runtime,
    probe: Mapping[str, Any],
    old_spec: Mapping[str, Any],
    current: set[str],
) -> None:
    """The keyring items of tenants the update removed."""
    old_probe = {**probe, "spec": dict(old_spec)}
    try:
        removed = [t for t in manifests.parse_probe(old_probe).tenant_ids if t not in current]
    except manifests.BuildError:
        return
    if removed:
        namespace, name = (
            probe["metadata"]["namespace"],
            manifests.keyring_secret_name(probe["metadata"]["name"]),
        )
        with contextlib.suppress(NotFound):
            await rt.kube.merge_patch(
                SECRETS, namespace, name, {"data": {manifests.keyring_item(t): None for t in removed}}
            )


def _broken_probe_status(probe: Mapping[str, Any], problem: str) -> dict[str, Any]:
    """The status of a probe the builders cannot even read (the CRD should prevent it),
    or whose objects the API server refuses."""
    previous = {c.get("type"): c for c in (probe.get("status") or {}).get("conditions", [])}
    generation = probe.get("metadata", {}).get("generation")
    return {
        "conditions": [
            status_condition(
                "Ready", "False", "ConfigurationProblem", "see the Degraded condition", previous, generation
            ),
            status_condition("Degraded", "True", "ConfigurationProblem", problem, previous, generation),
        ]
    }


def _has_problem_condition(status: Mapping[str, Any], problems: Sequence[str]) -> bool:
    return any(
        c.get("type") == "Degraded" and c.get("status") == "True" and c.get("message") == "; ".join(problems)
        for c in status.get("conditions", [])
    )


async def summarize_probes(
    memo: Runtime, deployments: kopf.Index[Any, Any], integrations: kopf.Index[Any, Any]
) -> None:
    """Every ``status_interval_seconds``, each probe's status summary (``summarize_probe``).

    One loop for all probes rather than a kopf timer per probe: kopf puts a finalizer on
    every object with a timer (one more patch per probe, and a probe that cannot be
    deleted while the operator is down) and keeps a task per timer. The probes are read
    from ``Runtime.probes`` (their watch events), so a summary costs no read; a probe's
    failure is logged and the others go on."""
    interval = memo.settings.status_interval_seconds
    while True:
        await asyncio.sleep(interval)
        for key, probe in list(memo.probes.items()):
            if memo.probes.get(key) is not probe:
                continue  # deleted (or changed: summarized next time) meanwhile
            try:
                await _summarize_one(memo, probe, deployments, integrations)
            except NotFound:
                pass  # deleted meanwhile
            except Exception as error:
                log.warning("status summary of CanaryProbe %s/%s failed: %s", key[0], key[1], error)
            # A summary that writes nothing never awaits: without this, 1,000 of them
            # would hold the event loop for seconds, a LeakIncident's handler waiting.
            await asyncio.sleep(0)


async def _summarize_one(
    memo: Runtime,
    probe: Mapping[str, Any],
    deployments: kopf.Index[Any, Any],
    integrations: kopf.Index[Any, Any],
) -> None:
    meta = probe["metadata"]
    summary = await summarize_probe(
        memo,
        probe,
        deployments=lookup(deployments, (meta["namespace"], meta["uid"])),
        integrations=lookup(integrations, (meta["namespace"], _integration_name(probe))),
    )
    if summary is not None:
        await memo.kube.patch_status(CANARY_PROBES, meta["namespace"], meta["name"], summary)


def _integration_name(probe: Mapping[str, Any]) -> str:
    return str(((probe.get("spec") or {}).get("integrationRef") or {}).get("name", ""))


async def summarize_probe(
    memo: Runtime,
    body: Mapping[str, Any],
    *,
    deployments: Sequence[Mapping[str, Any]],
    integrations: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """The probe's status summary: None when nothing but the summary time would change
    (and that one is not yet stale), so at most one write per probe per interval; and
    None until its reconcile has written the status of its current spec (at a cold start
    of 1,000 probes, the summaries of those still waiting were a status patch each, and
    a failed reconcile's Degraded condition is not the summary's to overwrite)."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return None
    try:
        spec = manifests.parse_probe(body)
    except manifests.BuildError:
        return None
    problems = []
    if not integrations:
        problems.append(f"CameraIntegration {namespace}/{spec.integration} not found")
    paused = manifests.maintenance_reason(body, integrations[0] if integrations else None)
    samples = await _agent_samples(memo, namespace, deployments)
    counts, last_frame = _verdict_counts(samples, name)
    # The camera Deployment is applied once the keyring of its tenants is written.
    camera_up = any(d["metadata"]["name"] == manifests.camera_name(name) for d in deployments)
    keyrings = set(spec.tenant_ids) if camera_up else set()
    summary = manifests.build_probe_status(
        body,
        deployments=deployments,
        keyring_tenants=keyrings,
        now=datetime.now(UTC),
        verdict_counts=counts,
        last_frame_time=last_frame,
        problems=problems,
        previous=status,
        maintenance=paused,
    )
    summary |= observe_cameras(memo, body, spec, deployments, summary)
    # A paused probe runs no viewer: none is expected, none is missed.
    viewers = 0 if paused else len(spec.tenant_ids) * len(spec.profiles)
    memo.metrics.record_probe(namespace=namespace, integration=spec.integration, probe=name, viewers=viewers)
    memo.metrics.record_maintenance(
        namespace=namespace, integration=spec.integration, probe=name, paused=paused is not None
    )
    if samples is not None:
        summary |= _coverage(memo, body, spec, samples, summary)
    last = epoch(status.get("lastSummaryTime"))
    fresh = last is not None and time.time() - last < 10 * memo.settings.status_interval_seconds
    return summary if _changed(summary, status) or not fresh else None


def _changed(status: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    """Whether writing ``status`` would change more than its summary time."""
    return any(previous.get(k) != v for k, v in status.items() if k != "lastSummaryTime")


Sample = tuple[str, dict[str, str], float]


async def _agent_samples(
    rt: Runtime, namespace: str, deployments: Sequence[Mapping[str, Any]]
) -> list[Sample] | None:
    """Every sample of the ready viewer pods' ``/metrics``, each labelled with its pod's
    address as ``instance``; None when no viewer is ready (the previous status stays)."""
    ready = [
        d
        for d in deployments
        if d["metadata"]["labels"].get(LABEL_ROLE) == AgentRole.VIEWER
        and d["status"].get("readyReplicas", 0) > 0
    ]
    if not ready:
        return None
    addresses: list[tuple[str, int]] = []
    for deployment in ready:
        selector = ",".join(
            f"{k}={v}" for k, v in (deployment["spec"]["selector"].get("matchLabels") or {}).items()
        )
        for pod in await rt.kube.list_objects(PODS, namespace, label_selector=selector):
            pod_status = pod.get("status") or {}
            if pod_status.get("phase") == "Running" and pod_status.get("podIP"):
                addresses.append((str(pod_status["podIP"]), _metrics_port(pod)))
    timeout = aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT)
    async with client_session(timeout=timeout) as session:

        async def scrape(address: str, port: int) -> str:
            host = f"[{address}]" if ":" in address else address
            async with session.get(f"http://{host}:{port}/metrics") as response:
                return await response.text() if response.status == 200 else ""

        pages = await asyncio.gather(*(scrape(a, p) for a, p in addresses), return_exceptions=True)
    samples: list[Sample] = []
    for (address, _), page in zip(addresses, pages, strict=True):
        if not isinstance(page, str):
            continue  # a pod that went away mid-scrape: its frames show up next time
        for family in text_string_to_metric_families(page):
            samples += [(s.name, {**s.labels, "instance": address}, float(s.value)) for s in family.samples]
    return samples


def _metrics_port(pod: Mapping[str, Any]) -> int:
    """The port a pod declares as ``metrics`` (as a PodMonitor finds it), else the agents'."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "metrics" and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return manifests.METRICS_PORT


def _verdict_counts(
    samples: Sequence[Sample] | None, probe: str
) -> tuple[dict[str, int] | None, datetime | None]:
    """Verdict counts and the last frame time of ``probe``, summed over the viewers."""
    if samples is None:
        return None, None
    counts: dict[str, int] = {}
    last_frame: float | None = None
    for sample_name, labels, value in samples:
        if labels.get("probe") != probe:
            continue
        if sample_name == "canarywatch_frames_total":
            verdict = labels.get("verdict", "")
            counts[verdict] = counts.get(verdict, 0) + int(value)
        elif sample_name == "canarywatch_viewer_last_frame_timestamp_seconds":
            last_frame = max(last_frame or 0.0, value)
    known = {v.value for v in Verdict}
    counts = {k: v for k, v in counts.items() if k in known}
    return counts, (datetime.fromtimestamp(last_frame, UTC) if last_frame else None)


def _coverage(
    rt: Runtime,
    probe: Mapping[str, Any],
    spec: ProbeSpec,
    samples: Sequence[Sample],
    summary: Mapping[str, Any],
) -> dict[str, Any]:
    """The probe's detection power since its last summary (``canarywatch.coverage``):
    status fields, metrics, and the CoverageSufficient condition when the spec sets a
    target (with a warning Event when it turns False)."""
    namespace, name = spec.namespace, spec.name
    uid = str(probe["metadata"].get("uid") or f"{namespace}/{name}")
    counts = fetch_counts(samples, probe=name, at=time.time())
    rows = rt.coverage.update(uid, counts, spec.coverage_target)
    if rows is None:
        return {}
    targeted = "coverageTarget" in (probe.get("spec") or {})
    rt.metrics.record_coverage(
        namespace=namespace, integration=spec.integration, probe=name, rows=rows, targeted=targeted
    )
    status: dict[str, Any] = {
        "coverage": [row.to_status() for row in rows][:64],
        "coverageSummary": summarize(rows),
    }
    if "coverageTarget" not in (probe.get("spec") or {}):
        return status
    short = [row for row in rows if not row.sufficient]
    conditions = {c.get("type"): c for c in summary.get("conditions", [])}
    generation = probe["metadata"].get("generation")
    if short:
        message = "; ".join(
            f"{r.statement()} (needs {r.required_fetches_per_second:.2f} fetches/s)" for r in short
        )
        condition = status_condition(
            "CoverageSufficient", "False", "ProbeTooSmall", message[:2048], conditions, generation
        )
        if (conditions.get("CoverageSufficient") or {}).get("status") != "False":
            rt.event(probe, "ProbeTooSmall", message[:1024], warning=True)
    else:
        condition = status_condition(
            "CoverageSufficient",
            "True",
            "TargetMet",
            "every path meets the coverage target",
            conditions,
            generation,
        )
    kept = [c for t, c in conditions.items() if t != "CoverageSufficient"]
    return status | {"conditions": [*kept, condition]}


async def follow_probe(body: kopf.Body, memo: Runtime, type: str | None = None, **_: Any) -> None:
    """Every watch event of a probe: ``Runtime.probes`` follows it (what the status
    summaries and the viewer RBAC's owners read), and a deleted probe's gauges go with
    it (no alert waits for viewers removed on purpose).

    Not a kopf index: kopf holds every object of an indexed kind at an operator's start
    until all of them are indexed, each waking all the others as it is (a second per
    hundred probes at a cold start before the first reconcile). Bulk work: it waits
    while a kill switch is on its way, and what kopf does next for the event with it."""
    await memo.kube.urgency.unhurried()
    meta = body["metadata"]
    if type != "DELETED":
        memo.probes.update(probes_by_name(body))
        return
    memo.probes.pop((meta["namespace"], meta["name"]), None)
    integration = str((body.get("spec", {}).get("integrationRef") or {}).get("name", ""))
    memo.metrics.forget_probe(namespace=meta["namespace"], integration=integration, probe=meta["name"])
    memo.coverage.forget(str(meta.get("uid") or f"{meta['namespace']}/{meta['name']}"))
    memo.outages.pop((meta["namespace"], meta["name"]), None)


async def reroll_probes(body: kopf.Body, reason: str, memo: Runtime, **kwargs: Any) -> None:
    """The integration's endpoints or verdict rules changed: rebuild its probes'
    workloads. Or it was just created: reconcile the probes that were waiting for it
    (Degraded); the ones never reconciled yet are their own handlers' business. A probe
    whose objects the API server refuses says so in its status; the others still roll."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    integration = {"metadata": dict(body["metadata"]), "spec": dict(body.get("spec") or {})}
    refused: list[str] = []
    for probe in await memo.kube.list_objects(CANARY_PROBES, namespace):
        if (probe.get("spec", {}).get("integrationRef") or {}).get("name") != name:
            continue
        if reason == "create" and not is_degraded(probe.get("status") or {}):
            continue
        existing = lookup(kwargs.get("deployments_by_probe"), (namespace, probe["metadata"]["uid"]))
        try:
            async with memo.reconciles:
                with bulk():
                    status, _keyrings = await _reconcile_probe(memo, probe, integration, existing)
        except KubeError as error:
            refused.append(probe["metadata"]["name"])
            status = _broken_probe_status(probe, f"cannot write the probe's objects: {error}")
        await memo.kube.patch_status(CANARY_PROBES, namespace, probe["metadata"]["name"], status)
    if refused:
        raise kopf.TemporaryError(f"objects of {', '.join(refused)} refused; retrying", delay=RETRY_DELAY)
