"""``canarywatch viewer``: a probe's hub viewers, every tenant on every network profile, in a pod.

Its environment (``agents.env``) becomes the ``ViewerSpec`` of every tenant of the
probe on each network profile, and the viewer core plans and runs its streams exactly
as ``canarywatch run`` does (``viewer.plan``, ``viewer.runner``): per tenant and
profile one viewer stream per camera and transport (snapshot polls, MJPEG, the event
feed's thumbnails) plus, with several tenants, an authorization prober, each with its
own HTTP session (its own connections and cookies, its own tenant's token), each
profile through its own in-process ``Shaper``, MJPEG opened once the link is measured.
A profile shaped by the kernel (``shaper: tc``) runs in a pod of its own, since netem
shapes the whole pod. Every frame is decoded and judged; ``Monitor``
counts it in the metrics and applies the incident policy, locally and only to confirm
(k of the last n frames of a stream) and to de-duplicate (one incident per verdict
while the leak lasts, not one per frame).

A confirmed leak becomes one ``LeakIncident`` created through the Kubernetes API with
the pod's ServiceAccount (in-cluster config; ``KUBECONFIG`` for local runs), which may
do exactly that and nothing else. The operator reads it and pages, switches the
integration off and keeps the status. Creating is retried with backoff for as long as
the API is unavailable or refuses (an RBAC binding not yet in effect); the incidents
wait in a bounded queue meanwhile. Counts go to ``/metrics`` only, which the operator
aggregates into the probe's status; the log gets a periodic summary.

The viewer cannot read LeakIncidents back, so it cannot see an incident resolved. It
closes its open incident locally once no frame of its verdict has arrived for
``CANARYWATCH_INCIDENT_QUIET_SECONDS`` (the leak coming back after that, say after the
integration was switched off and resumed, is a new LeakIncident), or once it has been
open for ``CANARYWATCH_INCIDENT_REPEAT_SECONDS``: a leak that goes on is reported again
at that rate, so the operator, which attaches it to its open incident, never takes the
integration for clean while it still leaks.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canarywatch.agents.env import (
    EnvError,
    ViewerSettings,
    configure_logging,
    load_keyring,
    run_until_signalled,
)
from canarywatch.agents.kubeapi import ReportRejected, in_cluster_creator
from canarywatch.agents.reporting import LEAK_INCIDENT_PLURAL, build_leak_incident
from canarywatch.api import API_GROUP, VERSION
from canarywatch.incidents.evidence import collect_evidence
from canarywatch.markers.payload import pack_signed
from canarywatch.retrying import Backoff, RetryLater, retry

# The viewer core (decoder, numpy, aiohttp, metrics) is imported by ``ViewerAgent``, once
# the environment is read: a bad one exits 2 without loading it.
if TYPE_CHECKING:
    from canarywatch.incidents.records import IncidentRecord
    from canarywatch.markers import Keyring
    from canarywatch.metrics import Metrics
    from canarywatch.verdicts import Verdict
    from canarywatch.viewer.judging import FrameResult
    from canarywatch.viewer.plan import ViewerSpec

__all__ = [
    "IncidentReporter",
    "ReportRejected",
    "ViewerAgent",
    "kubernetes_creator",
    "main",
    "run_viewer_agent",
    "viewer_spec",
]

log = logging.getLogger(__name__)

Manifest = Mapping[str, Any]
#: Creates one LeakIncident (blocking); returns when it exists, also when an earlier
#: attempt created it. Raises ``ReportRejected`` when retrying cannot help.
Creator = Callable[[Manifest], None]

# A viewer has terminationGracePeriodSeconds 10: pending reports get most of it.
_SHUTDOWN_FLUSH_SECONDS = 6.0
_API_TIMEOUT = (3.0, 5.0)  # connect, read: an attempt must fit in the shutdown flush


class IncidentReporter:
    """Creates LeakIncidents in order, retrying until each is in, from a bounded queue.

    ``submit`` never blocks the viewer; ``run`` is the background loop. Any failure
    but ``ReportRejected`` (the API server down, a timeout, 403 while an RBAC binding
    propagates, 429, 5xx) keeps the incident at the head of the queue and retries it
    (``canarywatch.retrying.retry``, backing off from ``base_delay`` to ``max_delay``).
    When the queue is full the newest incident is dropped and logged: the ones already
    waiting are the earliest evidence of the leak.
    """

    def __init__(
        self,
        create: Creator,
        *,
        capacity: int = 64,
        base_delay: float = 0.5,
        max_delay: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._create = create
        self.capacity = capacity
        self.backoff = Backoff(base=base_delay, cap=max_delay, rng=rng or random.Random())
        self._queue: collections.deque[Manifest] = collections.deque()
        self._wake = asyncio.Event()
        self.created = 0
        self.rejected = 0
        self.dropped = 0
        self.attempts = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, manifest: Manifest) -> bool:
        """Queue ``manifest`` for creation; False (and logged) when the queue is full."""
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            log.error(
                "LeakIncident %s dropped: %d incidents are already waiting for the API server",
                _name(manifest),
                len(self._queue),
            )
            return False
        self._queue.append(manifest)
        self._wake.set()
        return True

    async def run(self) -> None:
        """Create queued incidents until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._drain(deadline=None)

    async def flush(self, timeout: float) -> None:
        """Try what is queued until it is all in or ``timeout`` seconds have passed."""
        await self._drain(deadline=time.monotonic() + timeout)
        for manifest in self._queue:
            log.error(
                "LeakIncident %s was never created: the API server did not accept it in time", _name(manifest)
            )

    async def _drain(self, *, deadline: float | None) -> None:
        """Settle the head of the queue (created or rejected), then the next, in order."""

        async def sleep(delay: float) -> None:
            if deadline is not None and delay >= deadline - time.monotonic():
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                raise _DeadlinePassed
            await asyncio.sleep(delay)

        while self._queue and (deadline is None or time.monotonic() < deadline):
            manifest = self._queue[0]
            try:
                await retry(
                    functools.partial(self._attempt, manifest),
                    backoff=self.backoff,
                    max_attempts=None,
                    what=f"creating LeakIncident {_name(manifest)}",
                    sleep=sleep,
                )
            except _DeadlinePassed:
                return
            self._queue.popleft()

    async def _attempt(self, manifest: Manifest, _attempt_number: int) -> None:
        """One try; returns when ``manifest`` is settled, raises ``RetryLater`` otherwise."""
        self.attempts += 1
        try:
            await asyncio.to_thread(self._create, manifest)
        except ReportRejected as error:
            self.rejected += 1
            log.error("LeakIncident %s rejected by the API server: %s", _name(manifest), error)
            return
        except Exception as error:  # every other failure is worth another try
            raise RetryLater(_describe(error)) from error
        self.created += 1
        log.info("created LeakIncident %s", _name(manifest))


class _DeadlinePassed(Exception):
    """The flush's time is up while an incident still waits for its next try."""


def _name(manifest: Manifest) -> str:
    return str(manifest.get("metadata", {}).get("name", "?"))


def _describe(error: BaseException) -> str:
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    if status:  # an ApiException; its body can be long, and the reason says enough
        return f"HTTP {status} {reason or ''}".strip()
    return type(error).__name__


def kubernetes_creator(
    environ: Mapping[str, str], namespace: str, *, service_account_dir: Path | None = None
) -> Creator:
    """A ``Creator`` with the pod's ServiceAccount (in-cluster: ``agents.kubeapi``, no
    client library) or, outside a cluster, ``KUBECONFIG`` (the Kubernetes client).

    Raises ``EnvError`` when neither gives a usable configuration.
    """
    if environ.get("KUBERNETES_SERVICE_HOST"):
        path = f"/apis/{API_GROUP}/{VERSION}/namespaces/{{namespace}}/{LEAK_INCIDENT_PLURAL}"
        return in_cluster_creator(environ, namespace, path=path, account_dir=service_account_dir)
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        kubeconfig = environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    except (ConfigException, OSError) as error:
        raise EnvError("KUBECONFIG", f"no Kubernetes API credentials: {error}") from None
    api = client.CustomObjectsApi(client.ApiClient(configuration))

    def create(manifest: Manifest) -> None:
        try:
            api.create_namespaced_custom_object(
                API_GROUP,
                VERSION,
                namespace,
                LEAK_INCIDENT_PLURAL,
                dict(manifest),
                _request_timeout=_API_TIMEOUT,
            )
        except ApiException as error:
            if error.status == 409:  # an earlier attempt got through; its answer was lost
                return
            if error.status in (400, 422):
                raise ReportRejected(f"HTTP {error.status}: {str(error.body)[:500]}") from error
            raise

    return create


# -- the agent ------------------------------------------------------------------------------


def viewer_spec(settings: ViewerSettings) -> ViewerSpec:
    """The pod's viewers as the plan's input: every tenant, on each of its networks."""
    from canarywatch.viewer.plan import ViewerSpec, Watcher

    s = settings
    return ViewerSpec(
        integration=s.integration,
        probe=s.probe,
        tenants=s.tenants,
        watchers=tuple(Watcher(tenant, s.token(tenant)) for tenant in s.tenants),
        cameras=s.cameras,
        endpoints=s.endpoints,
        profiles=s.profiles,
        freshness_seconds=s.freshness_seconds,
        freshness_by_path=s.freshness_by_path,
        poll_interval=s.poll_interval,
        hub_device=s.hub_device,
        hub_protocol=s.hub_protocol,
        kernel_shaped=s.shaper == "tc",
    )


class ViewerAgent:
    """The viewer pod's work; ``run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        settings: ViewerSettings,
        *,
        keyring: Keyring,
        reporter: IncidentReporter,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from canarywatch.markers import Decoder
        from canarywatch.metrics import Metrics
        from canarywatch.monitor import Monitor
        from canarywatch.viewer.plan import plan_streams
        from canarywatch.viewer.runner import ViewerRunner

        self.settings = settings
        self.keyring = keyring
        self.reporter = reporter
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.monitor = Monitor(
            integration=settings.integration,
            probe=settings.probe,
            policy=settings.policy,
            metrics=self.metrics,
            responds=False,
            on_event=lambda message: log.info("%s", message),
            clock=clock,
        )
        self.viewers = ViewerRunner(
            plan_streams(viewer_spec(settings)),
            decoder=Decoder(keyring),
            metrics=self.metrics,
            handle=self.handle,
            clock=clock,
        )
        self.metrics_url: str | None = None
        self._last_seen: dict[Verdict, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- running -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        from canarywatch.metrics import serve_metrics

        s = self.settings
        server = await serve_metrics(self.metrics, s.metrics_host, s.metrics_port, health=self.healthy)
        self.metrics_url = server.url
        self._tasks = self.viewers.start()
        log.info(
            "viewer %s of tenants %s on networks %s (%s shaper): %d streams; metrics on %s",
            s.pod_name,
            ", ".join(s.tenants),
            ", ".join(p.name for p in s.profiles),
            s.shaper,
            len(self.viewers.streams),
            server.url,
        )
        self._tasks += [asyncio.create_task(self.reporter.run()), asyncio.create_task(self._housekeeping())]
        try:
            await stop.wait()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.viewers.stop()
            await self.reporter.flush(_SHUTDOWN_FLUSH_SECONDS)
            await server.stop()
            self._summary()

    def healthy(self) -> bool:
        """Alive while every stream, the reporter and the housekeeping still run."""
        return not any(task.done() for task in self._tasks)

    async def handle(self, result: FrameResult) -> IncidentRecord | None:
        """Count one judged frame, apply the policy, and report the incident it opens."""
        self._last_seen[result.verdict] = result.received_at
        record = await self.monitor.handle(result)
        if record is not None:
            self._report(record, result)
        return record

    def _report(self, record: IncidentRecord, result: FrameResult) -> None:
        s = self.settings
        try:
            evidence = collect_evidence(result.body, verdict=result.verdict, received_at=result.received_at)
        except Exception:  # the incident matters more than its picture
            log.exception("no evidence for incident %s", record.id)
            evidence = None
        self.reporter.submit(
            build_leak_incident(
                record,
                evidence=evidence,
                namespace=s.namespace,
                pod=s.pod_name,
                signed_payload=self._signed_payload(result),
            )
        )

    def _signed_payload(self, result: FrameResult) -> bytes | None:
        """The signed payload of a frame attributed to a tenant: its fields and MAC, as
        the frame carried them (the MAC is deterministic, so re-signing the decoded
        fields with the key that verified them gives the frame's own bytes)."""
        obs = result.observation
        if obs.tenant is None or obs.payload is None or obs.tenant not in self.keyring:
            return None
        return pack_signed(obs.payload, self.keyring.key(obs.tenant))

    async def _housekeeping(self) -> None:
        """Close incidents that went quiet or are due to be reported again; a status
        summary in the log now and then."""
        s = self.settings
        tick = min(5.0, s.incident_quiet_seconds / 2, s.incident_repeat_seconds / 2, s.summary_seconds)
        next_summary = time.monotonic() + s.summary_seconds
        while True:
            await asyncio.sleep(tick)
            self.expire_incidents(self.clock())
            if time.monotonic() >= next_summary:
                next_summary += s.summary_seconds
                self._summary()

    def expire_incidents(self, now: float) -> None:
        """Close the open incidents without a frame of their verdict for the quiet
        period, or open for the repeat period; the next confirmed frame opens a new one."""
        s = self.settings
        engine = self.monitor.engine
        for incident in engine.open_incidents:
            verdict = incident.key.verdict
            quiet = now - max(incident.opened_at, self._last_seen.get(verdict, incident.opened_at))
            if quiet >= s.incident_quiet_seconds:
                why = f"no {verdict} frame for {quiet:.0f} s"
            elif now - incident.opened_at >= s.incident_repeat_seconds:
                why = f"open for {now - incident.opened_at:.0f} s: a leak still going on is reported again"
            else:
                continue
            engine.resolve(verdict)
            log.info(
                "%s incident closed locally after %d occurrences: %s", verdict, incident.occurrences, why
            )

    def _summary(self) -> None:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(self.monitor.verdicts.items())) or "none yet"
        r = self.reporter
        log.info(
            "summary: frames %s; incidents opened %d; LeakIncidents created %d, pending %d, "
            "rejected %d, dropped %d",
            verdicts,
            len(self.monitor.incidents),
            r.created,
            r.pending,
            r.rejected,
            r.dropped,
        )


# -- entry points ----------------------------------------------------------------------------


def run_viewer_agent(environ: Mapping[str, str]) -> int:
    """Run the viewer until SIGTERM/SIGINT: 0 when stopped, 2 on bad configuration, 1 on failure."""
    try:
        settings = ViewerSettings.from_environ(environ)
        keyring = load_keyring(settings.keyring_dir, require=settings.tenants)
        create = kubernetes_creator(environ, settings.namespace)
    except EnvError as error:
        log.error("bad configuration: %s", error)
        return 2
    agent = ViewerAgent(settings, keyring=keyring, reporter=IncidentReporter(create))
    try:
        asyncio.run(run_until_signalled(agent.run))
    except Exception:
        log.exception("viewer failed")
        return 1
    return 0


def main() -> None:
    """``python -m canarywatch.agents.viewer``: the viewer with this process's environment."""
    configure_logging(os.environ)
    sys.exit(run_viewer_agent(os.environ))


if __name__ == "__main__":
    main()
