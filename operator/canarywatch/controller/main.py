"""``canarywatch operator``: kopf with canarywatch's handlers, /metrics, liveness, leadership.

``run_operator()`` is the whole process: it reads ``OperatorSettings`` from the
environment (keyword arguments, from command-line options, take precedence), serves
``/metrics``, waits to be elected leader (unless standalone), then runs kopf until
SIGTERM/SIGINT or until leadership is lost.

Standby replicas answer their liveness probe (``/healthz`` on the liveness port) while
they wait, so a Deployment with two replicas keeps both alive; only the leader runs
handlers. kopf's own peering is off: it pauses *every* operator when two have the same
priority, which identical replicas always have, so a Lease elects the leader instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import kopf
from aiohttp import web

from canarywatch.api import API_GROUP
from canarywatch.controller.handlers import register
from canarywatch.controller.kopfstate import KindDiffBaseStorage, KindProgressStorage
from canarywatch.controller.kube import Kube
from canarywatch.controller.leadership import LeaderElector
from canarywatch.controller.runtime import Runtime
from canarywatch.controller.settings import OperatorSettings, SettingsError
from canarywatch.controller.unwatched import report_unwatched
from canarywatch.metrics import Metrics, serve_metrics
from canarywatch.serving import ServedApp

__all__ = ["LIVENESS_PATH", "kopf_settings", "run_operator"]

log = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
_ANNOTATION_PREFIX = API_GROUP


def run_operator(
    *,
    namespaces: Sequence[str] | None = None,
    liveness_port: int | None = None,
    metrics_port: int | None = None,
    standalone: bool | None = None,
    peering: str | None = None,
    settings: OperatorSettings | None = None,
) -> int:
    """Run the operator until stopped; the process exit code.

    ``namespaces`` to watch (empty: all), the ports of kopf's liveness endpoint and of
    ``/metrics``, ``standalone`` (no leader election: for exactly one replica) and
    ``peering`` (the name of the leader-election Lease) override the ``CANARYWATCH_*``
    settings; None keeps them. ``settings`` replaces reading the environment.

    Returns 0 after SIGTERM/SIGINT, 1 when leadership was lost (the pod restarts and
    stands by) or kopf failed, 2 when the settings are unusable (the message names the
    variable).
    """
    overrides: dict[str, Any] = {}
    if namespaces is not None:
        overrides["namespaces"] = tuple(namespaces)
    if liveness_port is not None:
        overrides["liveness_port"] = liveness_port
    if metrics_port is not None:
        overrides["metrics_port"] = metrics_port
    if standalone is not None:
        overrides["leader_election"] = not standalone
    if peering is not None:
        overrides["lease_name"] = peering
    try:
        if settings is None:
            settings = OperatorSettings.from_env(**overrides)
        elif overrides:
            settings = OperatorSettings(**{**_fields(settings), **overrides})
    except SettingsError as error:
        print(f"canarywatch operator: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # A line per liveness probe, scrape or timer run would bury the ones that matter.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name in ("kopf.objects", "kopf.activities.probe"):
        logging.getLogger(name).addFilter(_quiet_routine)
    try:
        return asyncio.run(_operate(settings))
    except KeyboardInterrupt:
        return 0


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """kopf's settings for canarywatch: its state in a CanaryProbe's status and in other
    objects' ``canarywatch.io/`` annotations (``kopfstate``), no CRD or namespace
    scanning (nothing cluster-wide to read), warnings posted as Events.

    kopf puts a finalizer on objects with timers (CameraIntegration) to stop them on
    deletion; it is named ``canarywatch.io/operator`` so ``kubectl get -o yaml`` says
    whose it is. Without a running operator, remove it by hand to delete one. A
    CanaryProbe has none (its status summaries are one loop, not a timer each): a
    probe's owner references remove its objects, and kopf removes the finalizer an
    older version put on it."""
    config = kopf.OperatorSettings()
    config.peering.standalone = True
    config.scanning.disabled = True
    config.persistence.finalizer = f"{_ANNOTATION_PREFIX}/operator"
    config.persistence.progress_storage = KindProgressStorage(prefix=_ANNOTATION_PREFIX)
    config.persistence.diffbase_storage = KindDiffBaseStorage(prefix=_ANNOTATION_PREFIX)
    # A deleted object waits for its timers to stop: give them a moment to do so at once
    # (kopf's default is a few event-loop cycles, then re-checking once a minute).
    config.background.instant_exit_timeout = 0.5
    config.background.cancellation_polling = 5
    config.posting.level = logging.WARNING
    config.posting.reporting_component = "canarywatch-operator"
    config.posting.reporting_instance = settings.identity
    # The index of the probes' Deployments needs only the operator's own.
    config.watching.label_selectors["apps", "v1", "deployments"] = (
        "app.kubernetes.io/managed-by=canarywatch-operator"
    )
    return config


async def _operate(settings: OperatorSettings) -> int:
    try:
        kube = Kube.from_environment(
            concurrency=settings.api_concurrency, bulk_concurrency=settings.reconcile_concurrency
        )
    except Exception as error:  # the client's ConfigException, or a file it cannot read
        log.error("no Kubernetes credentials (in-cluster ServiceAccount or $KUBECONFIG): %s", error)
        return 1
    metrics = Metrics()
    server = await serve_metrics(metrics, settings.listen_host, settings.metrics_port)
    log.info("metrics on %s", server.url)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    elector: LeaderElector | None = None
    holding: asyncio.Task[None] | None = None
    try:
        if settings.leader_election:
            assert settings.operator_namespace is not None  # OperatorSettings checks it
            elector = LeaderElector(
                kube,
                namespace=settings.operator_namespace,
                name=settings.lease_name,
                identity=settings.identity,
                duration=settings.lease_duration_seconds,
                renew_deadline=settings.lease_renew_deadline_seconds,
                retry=settings.lease_retry_seconds,
            )
            async with _standby_liveness(settings):
                if not await _first(elector.acquire(), stopping.wait()):
                    return 0
        stop_flag = asyncio.Event()
        lost = asyncio.Event()

        def on_lost() -> None:
            lost.set()
            stop_flag.set()

        ready = asyncio.Event()

        async def take_signals() -> None:
            # kopf handles SIGTERM itself, but then leaves the waiter of stop_flag
            # behind and waits 5 s for it at exit; a signal that sets stop_flag does not.
            await ready.wait()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop_flag.set)
            if stopping.is_set():
                stop_flag.set()

        # Created before kopf starts, so kopf does not cancel them as its own leftovers.
        relay = asyncio.ensure_future(take_signals())
        if elector is not None:
            holding = asyncio.ensure_future(elector.hold(on_lost))
        reporting: asyncio.Future[None] | None = None
        if settings.report_unwatched and not settings.clusterwide:
            reporting = asyncio.ensure_future(
                report_unwatched(
                    kube, metrics, settings.namespaces, interval=settings.status_interval_seconds
                )
            )
        registry = kopf.OperatorRegistry()
        register(registry, settings)
        try:
            await kopf.operator(
                registry=registry,
                settings=kopf_settings(settings),
                memo=Runtime(
                    settings=settings,
                    kube=kube,
                    metrics=metrics,
                    elector=elector,
                    reconciles=asyncio.Semaphore(settings.reconcile_concurrency),
                ),
                namespaces=list(settings.namespaces),
                clusterwide=settings.clusterwide,
                standalone=True,
                liveness_endpoint=f"http://{settings.listen_host}:{settings.liveness_port}{LIVENESS_PATH}",
                stop_flag=stop_flag,
                ready_flag=ready,
            )
        finally:
            relay.cancel()
            if reporting is not None:
                reporting.cancel()
                await asyncio.gather(reporting, return_exceptions=True)
        return 1 if lost.is_set() else 0
    except Exception:
        log.exception("the operator failed")
        return 1
    finally:
        if holding is not None:
            holding.cancel()
            await asyncio.gather(holding, return_exceptions=True)
        if elector is not None:
            await elector.release()
        await server.stop()
        kube.close()


async def _first(wanted: Any, cancel: Any) -> bool:
    """Await ``wanted`` unless ``cancel`` finishes first; True if ``wanted`` did."""
    wanted_task, cancel_task = asyncio.ensure_future(wanted), asyncio.ensure_future(cancel)
    done, pending = await asyncio.wait({wanted_task, cancel_task}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if wanted_task in done:
        wanted_task.result()
        return True
    return False


@contextlib.asynccontextmanager
async def _standby_liveness(settings: OperatorSettings) -> AsyncIterator[None]:
    """``/healthz`` of a replica waiting for the lease (kopf serves it once leading)."""

    async def healthy(request: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.router.add_get(LIVENESS_PATH, healthy)
    async with await ServedApp.start(
        app, settings.listen_host, settings.liveness_port, shutdown_timeout=1.0, access_log=None
    ):
        yield


def _quiet_routine(record: logging.LogRecord) -> bool:
    """Drop kopf's "Timer '…' succeeded." and liveness "Activity '…' succeeded." lines
    (one per probe every few seconds, one per liveness check)."""
    message = record.getMessage()
    routine = message.startswith(("Timer ", "Activity ")) and message.endswith("succeeded.")
    return not (record.levelno <= logging.INFO and routine)


def _fields(settings: OperatorSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}
