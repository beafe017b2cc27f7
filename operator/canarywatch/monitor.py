"""The detection → incident → page → switch-off pipeline for one integration.

Viewer streams hand every judged frame to `Monitor.handle`. It counts the frame,
asks the response policy what to do, and for a confirmed leak records the incident
with privacy-preserving evidence *before* anything slow happens; paging and the kill
switch then run as background tasks so the next frame is judged without waiting.
This is the pipeline of `canarywatch demo`, `canarywatch run` and the viewer pods.

In a cluster, the viewer pod's Monitor records the incident as a LeakIncident and the
operator responds to it: with the same response core — the page from
``incidents.pages`` delivered by ``incidents.client``, the kill switch of
``shutdown.KillSwitch`` — only with its state in the CRs' status instead of files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from canarywatch.delivery import DeliveryLedger
from canarywatch.incidents.client import Outcome, PagerDutyClient
from canarywatch.incidents.evidence import collect_evidence, write_evidence
from canarywatch.incidents.pages import IncidentPage, PageOptions, resolve_event, trigger_event
from canarywatch.incidents.policy import Decision, Policy, PolicyEngine
from canarywatch.incidents.records import IncidentLog, IncidentRecord
from canarywatch.metrics import Metrics
from canarywatch.shutdown import KillSwitch, KillSwitchStateError, SwitchState
from canarywatch.verdicts import Verdict
from canarywatch.viewer.judging import FrameResult

__all__ = ["Monitor"]

log = logging.getLogger(__name__)


class Monitor:
    """Owns one integration's response: policy, incidents, paging, kill switch, state."""

    def __init__(
        self,
        *,
        integration: str,
        probe: str,
        policy: Policy,
        metrics: Metrics,
        pagerduty: PagerDutyClient | None = None,
        routing_key: str | None = None,
        page_options: PageOptions | None = None,
        kill_switch: KillSwitch | None = None,
        out_dir: Path | None = None,
        on_event: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if pagerduty is not None and not routing_key:
            raise ValueError("a PagerDuty client needs a routing_key")
        self.integration = integration
        self.probe = probe
        self.engine = PolicyEngine(policy, integration=integration)
        self.metrics = metrics
        self.pagerduty = pagerduty
        self.routing_key = routing_key
        self.page_options = page_options
        self.kill_switch = kill_switch
        self.out_dir = out_dir
        self.incidents = IncidentLog(out_dir / "incidents.jsonl" if out_dir else None)
        self.on_event = on_event or (lambda message: log.info("%s", message))
        self.clock = clock
        self.verdicts: Counter[str] = Counter()
        #: published vs seen, per camera (the shell reports what its cameras published).
        self.delivery = DeliveryLedger()
        self.warnings: list[dict[str, Any]] = []
        self.pagerduty_results: Counter[str] = Counter()
        self.suspended = kill_switch is not None and kill_switch.engaged
        self._open: dict[Verdict, str] = {}  # verdict → open incident id
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial = itertools.count(1)
        self._last_storm_save = 0.0
        self.metrics.record_suspended(integration=integration, suspended=self.suspended)

    # -- frames ---------------------------------------------------------------------
    async def handle(self, result: FrameResult) -> IncidentRecord | None:
        """Account for one judged frame; returns the incident it opened, if any."""
        stream = result.stream
        self.verdicts[result.verdict.value] += 1
        self.delivery.seen(stream.tenant, result.observation, at=result.received_at)
        self.metrics.record_frame(
            integration=self.integration,
            probe=self.probe,
            tenant=stream.tenant,
            verdict=result.verdict,
            age_seconds=result.age,
        )
        self.metrics.record_decode(seconds=result.decode_seconds)
        camera = result.meta.get("camera", "*" if stream.camera is None else str(stream.camera))
        self.metrics.record_last_frame(
            integration=self.integration,
            probe=self.probe,
            tenant=stream.tenant,
            camera=camera,
            at=result.received_at,
        )
        decision = self.engine.decide(stream.key, result.verdict, result.received_at)
        if decision.warn:
            self._warn(result, decision)
        if decision.open_incident:
            return self._open_incident(result, decision)
        if decision.incident is not None and not decision.warn:
            incident_id = self._open.get(result.verdict)
            record = self.incidents.get(incident_id) if incident_id else None
            if record is not None:
                record.occurrences = decision.occurrences
                # a leak storm must not rewrite the log for every frame: at most once a
                # second here, and always on drain()
                now = time.monotonic()
                if now - self._last_storm_save >= 1.0:
                    self._last_storm_save = now
                    self.incidents.save(record)
        return None

    def _warn(self, result: FrameResult, decision: Decision) -> None:
        warning = {
            "verdict": result.verdict.value,
            "reason": result.reason,
            "viewer_tenant": result.stream.tenant,
            "stream": result.stream.key,
            "at": result.received_at,
        }
        self.warnings.append(warning)
        self.on_event(f"WARNING {result.verdict.value}: {result.reason} ({result.stream.key})")

    def _open_incident(self, result: FrameResult, decision: Decision) -> IncidentRecord:
        obs = result.observation
        payload = obs.payload if obs.tenant is not None else None
        stamp = dt.datetime.fromtimestamp(result.received_at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        incident_id = (
            f"{result.verdict.value.replace('_', '-')}-{stamp}-{next(self._serial)}-{secrets.token_hex(2)}"
        )
        evidence = self._evidence(result, incident_id)
        recorded_at = self.clock()
        record = IncidentRecord(
            id=incident_id,
            integration=self.integration,
            probe=self.probe,
            verdict=result.verdict.value,
            reason=result.reason,
            viewer_tenant=result.stream.tenant,
            viewer_camera=result.stream.camera,
            stream=result.stream.key,
            path=result.stream.kind,
            network_profile=result.stream.profile,
            observed_tenant=obs.tenant,
            observed_camera=payload.camera if payload else None,
            observed_seq=payload.seq if payload else None,
            observed_time=payload.time if payload else None,
            frame_received_at=result.received_at,
            recorded_at=recorded_at,
            detection_seconds=round(recorded_at - result.received_at, 6),
            mode=decision.mode.value,
        )
        record.evidence = evidence
        self._open[result.verdict] = incident_id
        self.incidents.save(record)
        self.metrics.record_incident(
            integration=self.integration, verdict=result.verdict, detection_seconds=record.detection_seconds
        )
        who = f"tenant {obs.tenant!r}" if obs.tenant else "unattributed content"
        self.on_event(
            f"INCIDENT {record.id}: {result.verdict.value} — viewer {result.stream.tenant!r} "
            f"({result.stream.kind}, {result.stream.profile} network) was shown {who}; "
            f"detected in {record.detection_seconds * 1000:.1f} ms [{decision.mode.value}]"
        )
        # the switch-off is scheduled first: it protects users, the page informs people
        if decision.kill and self.kill_switch is not None:
            self._spawn(self._switch_off(record))
        else:
            record.shutdown.skipped = decision.reason if decision.would_kill else "policy does not switch off"
        if decision.page and self.pagerduty is not None:
            self._spawn(self._page(record))
        elif decision.would_page:
            record.pagerduty = {"skipped": decision.reason}
        self.incidents.save(record)
        return record

    def _evidence(self, result: FrameResult, incident_id: str) -> dict[str, Any]:
        evidence = collect_evidence(result.body, verdict=result.verdict, received_at=result.received_at)
        summary = {"sha256": evidence.sha256, "size": evidence.size, "kept_whole": evidence.kept_whole}
        if self.out_dir is not None:
            files = write_evidence(evidence, self.out_dir / "evidence", name=incident_id, base=self.out_dir)
            summary |= {"metadata": files.metadata, "frame": files.frame, "thumbnail": files.thumbnail}
        return summary

    # -- slow responses -------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _page(self, record: IncidentRecord) -> None:
        assert self.pagerduty is not None and self.routing_key is not None
        page = IncidentPage.from_record(record)
        event = trigger_event(page, routing_key=self.routing_key, options=self.page_options)
        dedup_key = page.dedup_key
        record.pagerduty = {"dedup_key": dedup_key, "result": "pending"}
        result = await self.pagerduty.send(event)
        self.pagerduty_results[result.outcome.value] += 1
        record.pagerduty = {
            "dedup_key": dedup_key,
            "result": result.outcome.value,
            "attempts": result.attempts,
            "status": result.status,
        }
        if result.outcome is Outcome.DELIVERED:
            record.paged_at = self.clock()
            self.on_event(f"PAGED {record.id} (dedup_key {dedup_key}) after {result.attempts} attempt(s)")
        else:
            self.on_event(f"PAGE {record.id}: {result.outcome.value} ({result.reason or result.status})")
        self.incidents.save(record)

    async def _switch_off(self, record: IncidentRecord) -> None:
        assert self.kill_switch is not None
        try:
            ks = await self.kill_switch.engage(record.id, f"{record.verdict}: {record.reason}"[:500])
        except KillSwitchStateError:
            # every action ran; only persisting the state failed (disk full?): report
            # what happened rather than lose the switch-off
            log.exception("kill-switch state for %s not saved", self.integration)
            if self.kill_switch.record is None:
                return
            ks = self.kill_switch.record
        done = ks.state is SwitchState.ENGAGED
        finished = self.clock()
        record.shutdown.done = done
        record.shutdown.engaged_at = ks.engaged_at
        record.shutdown.seconds = round(finished - record.recorded_at, 6) if done else None
        record.shutdown.actions = [r.to_dict() for r in ks.actions]
        if done:
            self.suspended = True
            self.metrics.record_suspended(integration=self.integration, suspended=True)
            if record.shutdown.seconds is not None:
                self.metrics.record_shutdown(integration=self.integration, seconds=record.shutdown.seconds)
            self.on_event(
                f"SWITCHED OFF {self.integration} for {record.id} in {record.shutdown.seconds:.3f} s"
            )
        else:
            self.on_event(f"KILL SWITCH for {record.id} did not complete: {record.shutdown.actions}")
        self.incidents.save(record)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for pages and kill switches in flight (bounded), then persist everything."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        self.incidents.flush()

    async def resume(self, *, reason: str = "resumed") -> list[IncidentRecord]:
        """Switch the integration back on and resolve every open incident.

        Runs the kill switch's resume steps (restoring what it changed), closes the
        incidents in the policy engine so the next leak opens a new one, and sends the
        PagerDuty `resolve` for each page. Returns the incidents it resolved.
        """
        if self.kill_switch is not None and self.kill_switch.engaged:
            await self.kill_switch.resume()
        self.suspended = self.kill_switch is not None and self.kill_switch.engaged
        self.metrics.record_suspended(integration=self.integration, suspended=self.suspended)
        resolved: list[IncidentRecord] = []
        for verdict, incident_id in list(self._open.items()):
            self.engine.resolve(verdict)
            del self._open[verdict]
            record = self.incidents.get(incident_id)
            if record is None:
                continue
            record.state = "Resolved"
            dedup_key = record.pagerduty.get("dedup_key")
            if self.pagerduty is not None and self.routing_key and dedup_key:
                event = resolve_event(routing_key=self.routing_key, dedup_key=dedup_key)
                outcome = await self.pagerduty.send(event)
                record.pagerduty["resolve"] = outcome.outcome.value
            self.incidents.save(record)
            resolved.append(record)
            self.on_event(f"RESOLVED {record.id} ({reason})")
        return resolved

    # -- reporting ------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "probe": self.probe,
            "state": "Suspended" if self.suspended else "Active",
            "verdicts": dict(sorted(self.verdicts.items())),
            "frames": sum(self.verdicts.values()),
            "incidents": [
                {
                    "id": r.id,
                    "verdict": r.verdict,
                    "paged": r.paged_at is not None,
                    "shut_down": r.shutdown.done,
                }
                for r in self.incidents.records()
            ],
            "warnings": len(self.warnings),
            "pagerduty": dict(self.pagerduty_results),
            "kill_switch": None if self.kill_switch is None else self.kill_switch.describe(),
        }
