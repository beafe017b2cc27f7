"""The detection → incident → page → switch-off pipeline for one integration.

Viewer streams hand every judged frame to `Monitor.handle`. It counts the frame,
asks the response policy what to do, and for a confirmed leak records the incident
with privacy-preserving evidence and what it intends (page, kill switch) in one durable
write *before* anything slow happens; paging and the kill switch then run as background
tasks so the next frame is judged without waiting. This is the pipeline of
`canarywatch demo`, `canarywatch run` and the viewer pods.

Crash-safe with an ``out_dir``: a new Monitor recovers the incident journal (open
incidents keep absorbing the same leak, past kills still count against the cap) and
``finish_recovered`` completes what a crash interrupted: pages not delivered, kill
switches not engaged (an interrupted one is not taken for engaged). A kill switch that
fails is retried with backoff until it holds; leaked frames arriving while it is
engaged are counted and make it run its actions again (``shutdown.Holding``).

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
from canarywatch.incidents.client import DeliveryResult, Outcome, PagerDutyClient
from canarywatch.incidents.events import PagerDutyError
from canarywatch.incidents.evidence import KEPT, collect_evidence, write_evidence
from canarywatch.incidents.pages import IncidentPage, PageOptions, resolve_event, trigger_event
from canarywatch.incidents.policy import Decision, IncidentKey, Mode, OpenIncident, Policy, PolicyEngine
from canarywatch.incidents.records import IncidentLog, IncidentRecord, Intent
from canarywatch.metrics import Metrics
from canarywatch.outages import CameraOutages
from canarywatch.retrying import Backoff
from canarywatch.shutdown import (
    Holding,
    KillSwitch,
    KillSwitchRecord,
    KillSwitchStateError,
    Result,
    SwitchState,
)
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
        responds: bool = True,
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
        # A viewer pod (responds=False) confirms and reports; the operator responds, and
        # counts the incident once, when it decides the LeakIncident is a new one.
        self.responds = responds
        self.integration = integration
        self.probe = probe
        self.metrics = metrics
        self.pagerduty = pagerduty
        self.routing_key = routing_key
        self.page_options = page_options
        self.kill_switch = kill_switch
        self.out_dir = out_dir
        self.incidents = IncidentLog(out_dir / "incidents.jsonl" if out_dir else None)
        # what a previous run left open: the same leak attaches to it, and its kills count
        recovered = [r for r in self.incidents.recovered if r.integration == integration]
        still_open = {Verdict(r.verdict): r for r in recovered if r.state == "Open"}
        self.engine = PolicyEngine(
            policy,
            integration=integration,
            open_incidents=[
                OpenIncident(IncidentKey(integration, verdict), r.frame_received_at, r.occurrences)
                for verdict, r in still_open.items()
            ],
            recent_kills=[r.frame_received_at for r in recovered if r.intent.kill],
        )
        self.on_event = on_event or (lambda message: log.info("%s", message))
        self.clock = clock
        self.verdicts: Counter[str] = Counter()
        #: published vs seen, per camera (the shell reports what its cameras published).
        self.delivery = DeliveryLedger()
        #: "path/network profile" -> verdict counts: which integration path showed what.
        self.by_path: dict[str, Counter[str]] = {}
        self.warnings: list[dict[str, Any]] = []
        #: Cameras the shell knows are down: their tenants' stale frames are only counted.
        self.outages = CameraOutages()
        #: Frames counted and not acted on because their camera was down, by tenant.
        self.excused: Counter[str] = Counter()
        self.pagerduty_results: Counter[str] = Counter()
        # Engaged only: an engagement a crash interrupted is not holding anything off.
        self.suspended = _holds(kill_switch)
        self.holding = Holding()
        self.retry_backoff = Backoff(1.0, 30.0)  # between attempts of a failing kill switch
        self._open: dict[Verdict, str] = {v: r.id for v, r in still_open.items()}  # verdict → incident id
        self._switching = 0  # switch-off (or re-assertion) loops running
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial = itertools.count(1)
        self._last_storm_save = 0.0
        if responds:
            self.metrics.record_suspended(namespace="", integration=integration, suspended=self.suspended)
            self._record_open()

    # -- frames ---------------------------------------------------------------------
    async def handle(self, result: FrameResult) -> IncidentRecord | None:
        """Account for one judged frame; returns the incident it opened, if any."""
        stream = result.stream
        self.verdicts[result.verdict.value] += 1
        new = self.delivery.seen(stream.tenant, result.observation, at=result.received_at)
        if new is not None:
            self.metrics.delivery.record_seen(
                integration=stream.integration, probe=stream.probe, tenant=new.tenant, camera=new.camera
            )
        self.by_path.setdefault(f"{stream.kind}/{stream.profile}", Counter())[result.verdict.value] += 1
        self.metrics.record_frame(
            integration=self.integration,
            probe=self.probe,
            tenant=stream.tenant,
            path=stream.kind,
            network_profile=stream.profile,
            verdict=result.verdict,
            age_seconds=result.age,
            verdict_latency_seconds=result.verdict_latency,
        )
        self.metrics.record_decode(seconds=result.decode_seconds)
        camera = result.meta.get("camera", "*" if stream.camera is None else str(stream.camera))
        self.metrics.record_last_frame(
            integration=self.integration,
            probe=self.probe,
            tenant=stream.tenant,
            camera=camera,
            path=stream.kind,
            network_profile=stream.profile,
            at=result.received_at,
        )
        if self.outages.explains(result.verdict, stream.tenant, result.received_at) is not None:
            # Kept out of the confirmation window too: frames from the outage must not
            # confirm a warning once the camera is back.
            self.excused[stream.tenant] += 1
            return None
        decision = self.engine.decide(stream.key, result.verdict, result.received_at)
        if decision.incident is not None and self.engine.policy.rule(result.verdict).incident:
            self._leaked(result, decision.mode)
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
        page = decision.page and self.pagerduty is not None
        kill = decision.kill and self.kill_switch is not None
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
        record.intent = Intent(page=page, kill=kill)
        if not kill:
            record.shutdown.skipped = decision.reason if decision.would_kill else "policy does not switch off"
        if not page and decision.would_page:
            record.pagerduty = {"skipped": decision.reason}
        self._open[result.verdict] = incident_id
        # one durable write holds the incident and what it intends: a crash from here on
        # leaves the page and the kill switch for the next run to finish
        self.incidents.save(record)
        self.metrics.record_report(integration=self.integration, probe=self.probe, verdict=result.verdict)
        if self.responds:
            self.metrics.record_incident(
                namespace="",
                integration=self.integration,
                verdict=result.verdict,
                detection_seconds=record.detection_seconds,
            )
            self._record_open()
            cap = self.engine.policy.kill_cap
            until = cap.exhausted_until(self.engine.recent_kills(recorded_at), recorded_at)
            self.metrics.record_kill_cap(namespace="", integration=self.integration, exhausted_until=until)
        who = f"tenant {obs.tenant!r}" if obs.tenant else "unattributed content"
        self.on_event(
            f"INCIDENT {record.id}: {result.verdict.value} — viewer {result.stream.tenant!r} "
            f"({result.stream.kind}, {result.stream.profile} network) was shown {who}; "
            f"detected in {record.detection_seconds * 1000:.1f} ms [{decision.mode.value}]"
        )
        self._respond(record)
        return record

    def _respond(self, record: IncidentRecord) -> None:
        """Start what ``record`` intends and has not done (new, or recovered)."""
        # the switch-off is scheduled first: it protects users, the page informs people
        if record.intent.kill and not record.shutdown.done and self.kill_switch is not None:
            self._start_switch_off(record)
        if record.intent.page and record.paged_at is None and self.pagerduty is not None:
            self._spawn(self._page(record))

    def finish_recovered(self) -> None:
        """Finish what a previous run recorded and did not complete (call once, in the
        running loop): pages not delivered, kill switches not engaged."""
        for verdict, incident_id in self._open.items():
            record = self.incidents.get(incident_id)
            if record is not None and record.state == "Open":
                self.on_event(f"RECOVERED open incident {record.id} ({verdict}) from a previous run")
                self._respond(record)
        switch = self.kill_switch.record if self.kill_switch is not None else None
        left = switch is not None and switch.state in (SwitchState.ENGAGING, SwitchState.ENGAGE_FAILED)
        if switch is not None and left and not self._switching:
            self.on_event(f"KILL SWITCH of {switch.incident} was left {switch.state}: completing it")
            self._start_switch_off(None)
        if self._resume_left(switch):
            self.on_event(f"RESUME of {self.integration} was left unfinished: completing it")
            self._spawn(self.resume(reason="an interrupted resume, completed"))

    def _resume_left(self, switch: KillSwitchRecord | None) -> bool:
        """A resume that a crash or a failure cut short: the kill switch is mid-resume, or
        resumed while its incident is still open, or a resolve is still to be delivered."""
        if switch is not None and switch.state in (SwitchState.RESUMING, SwitchState.RESUME_FAILED):
            return True
        held = self.incidents.get(switch.incident) if switch is not None else None
        if switch is not None and switch.state is SwitchState.RESUMED and held and held.state == "Open":
            return True
        return any(r.pagerduty.get("resolve") == "pending" for r in self.incidents.records())

    def _leaked(self, result: FrameResult, mode: Mode) -> None:
        """A confirmed leaked frame: if the kill switch says Engaged, it does not hold."""
        switch = self.kill_switch.record if self.kill_switch is not None else None
        if switch is None or switch.state is not SwitchState.ENGAGED:
            return
        if not self.holding.leaked_while_engaged(
            received_at=result.received_at, engaged_until=switch.engaged_at + switch.seconds
        ):
            return
        self.metrics.record_leaked_while_suspended(namespace="", integration=self.integration)
        now = time.monotonic()
        if mode is Mode.ENFORCE and not self._switching and self.holding.due(now):
            self.holding.note(now)
            self.on_event(
                f"LEAK WHILE SWITCHED OFF: {result.verdict.value} frame for viewer {result.stream.tenant!r} "
                f"after {switch.incident} switched {self.integration} off; running the kill switch again"
            )
            self._start_switch_off(None, again=True)

    def _evidence(self, result: FrameResult, incident_id: str) -> dict[str, Any]:
        evidence = collect_evidence(result.body, verdict=result.verdict, received_at=result.received_at)
        summary = {"sha256": evidence.sha256, "size": evidence.size, "kept": KEPT}
        if self.out_dir is not None:
            files = write_evidence(evidence, self.out_dir / "evidence", name=incident_id, base=self.out_dir)
            summary |= {"metadata": files.metadata, "thumbnail": files.thumbnail}
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
        if result.outcome is Outcome.DEDUPLICATED:
            # Still in the outbox from before a restart: delivered there, in order, not
            # sent twice. The background loop may have delivered it already.
            delivered = [r for r in await self.pagerduty.flush() if r.dedup_key == dedup_key]
            if delivered:
                result = delivered[-1]
            elif not any(e.event.get("dedup_key") == dedup_key for e in self.pagerduty.outbox.pending()):
                result = DeliveryResult(Outcome.DELIVERED, "trigger", dedup_key, attempts=0)
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

    def _start_switch_off(self, record: IncidentRecord | None, *, again: bool = False) -> None:
        self._switching += 1  # counted now, not when the task starts: no second loop meanwhile
        self._spawn(self._switch_off(record, again=again))

    async def _switch_off(self, record: IncidentRecord | None, *, again: bool) -> None:
        """Engage the kill switch for ``record`` (None: complete, or with ``again``
        re-assert, the recorded engagement), retried with backoff until it holds."""
        assert self.kill_switch is not None
        try:
            attempt = 0
            while True:
                attempt += 1
                ks = await self._engage_once(record, again=again and attempt == 1)
                if ks is None:
                    return
                self._account(record, ks)
                if ks.state is SwitchState.ENGAGED or not ks.engaged:
                    return  # holds, or a resume came first: that decision stands
                await asyncio.sleep(self.retry_backoff.delay(attempt))
                current = self.kill_switch.record
                if current is None or current.state not in (SwitchState.ENGAGING, SwitchState.ENGAGE_FAILED):
                    return  # resumed (or completed) meanwhile
        finally:
            self._switching -= 1

    async def _engage_once(self, record: IncidentRecord | None, *, again: bool) -> KillSwitchRecord | None:
        assert self.kill_switch is not None
        try:
            if record is not None and not again:
                return await self.kill_switch.engage(record.id, f"{record.verdict}: {record.reason}"[:500])
            return await self.kill_switch.reassert()
        except KillSwitchStateError:
            # every action ran; only persisting the state failed (disk full?): report
            # what happened rather than lose the switch-off
            log.exception("kill-switch state for %s not saved", self.integration)
            return self.kill_switch.record

    def _account(self, record: IncidentRecord | None, ks: KillSwitchRecord) -> None:
        """Record one engagement attempt in the incident, the metrics and the log."""
        done = ks.state is SwitchState.ENGAGED
        was_suspended, self.suspended = self.suspended, done
        self.metrics.record_suspended(namespace="", integration=self.integration, suspended=done)
        if record is None:
            record = self.incidents.get(ks.incident)
        if record is not None and not record.shutdown.done:
            finished = self.clock()
            record.shutdown.done = done
            record.shutdown.engaged_at = ks.engaged_at
            record.shutdown.seconds = round(finished - record.recorded_at, 6) if done else None
            record.shutdown.actions = [r.to_dict() for r in ks.actions]
            if done and record.shutdown.seconds is not None:
                self.metrics.record_shutdown(
                    namespace="", integration=self.integration, seconds=record.shutdown.seconds
                )
            self.incidents.save(record)
        if done and not was_suspended:
            took = (
                f" in {record.shutdown.seconds:.3f} s"
                if record and record.shutdown.seconds is not None
                else ""
            )
            self.on_event(f"SWITCHED OFF {self.integration} for {ks.incident}{took}")
        elif done and record is not None and record.id != ks.incident:
            self.on_event(f"{record.id}: {self.integration} is already switched off for {ks.incident}")
        elif done:
            self.on_event(f"KILL SWITCH of {ks.incident} re-asserted: {self.integration} switched off again")
        else:
            failed = [a.name for a in ks.actions if a.result is not Result.SUCCEEDED]
            self.on_event(f"KILL SWITCH for {ks.incident} did not complete ({', '.join(failed)}); retrying")

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for pages and kill switches in flight, at most ``timeout`` seconds, then
        stop them and persist everything. What was cut short is on disk (the outbox, the
        kill switch's state, the incidents' intent): the next run finishes it."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self.incidents.flush()

    def unfinished(self) -> list[str]:
        """What the response intended and has not done (an exit code's reason)."""
        problems = []
        for record in self.incidents.records():
            if record.state != "Open" or record.integration != self.integration:
                continue
            if record.intent.page and record.paged_at is None:
                problems.append(
                    f"page of {record.id} not delivered ({record.pagerduty.get('result', 'not sent')})"
                )
            if record.intent.kill and not record.shutdown.done:
                problems.append(f"kill switch for {record.id} not complete")
        for record in self.incidents.records():
            if record.integration == self.integration and record.pagerduty.get("resolve") == "pending":
                problems.append(f"resolve of {record.id} not delivered (kept in the outbox)")
        switch = self.kill_switch.record if self.kill_switch is not None else None
        if switch is not None and switch.state in (
            SwitchState.ENGAGING,
            SwitchState.ENGAGE_FAILED,
            SwitchState.RESUMING,
            SwitchState.RESUME_FAILED,
        ):
            problems.append(f"kill switch of {switch.incident} {switch.state}")
        return list(dict.fromkeys(problems))

    async def resume(self, *, reason: str = "resumed") -> list[IncidentRecord]:
        """Switch the integration back on and resolve every open incident.

        Runs the kill switch's resume steps (restoring what it changed); only once it is
        ``Resumed`` are the incidents resolved: each one's PagerDuty ``resolve`` (the
        page's own ``dedup_key``) is queued in the outbox before the incident is
        journalled ``Resolved``, then delivered, and the policy engine forgets it so the
        next leak opens a new incident and pages again. Durable: the kill switch's record
        says a resume was asked for (``Resuming``, ``ResumeFailed``) and the outbox holds
        the resolves, so a crash or a failure is finished by ``finish_recovered``.
        Returns the incidents it resolved; ``unfinished`` names what is left.
        """
        resuming = self.kill_switch is not None and self.kill_switch.engaged
        if self.kill_switch is not None and resuming:
            try:
                await self.kill_switch.resume()
            except KillSwitchStateError:
                log.exception("kill-switch state for %s not saved", self.integration)
        self.holding.reset()
        self.suspended = _holds(self.kill_switch)
        self.metrics.record_suspended(namespace="", integration=self.integration, suspended=self.suspended)
        switch = self.kill_switch.record if self.kill_switch is not None else None
        if switch is not None and switch.engaged:
            failed = [a.name for a in switch.actions if a.result is Result.FAILED]
            self.on_event(f"RESUME of {self.integration} incomplete ({', '.join(failed)}): retried next time")
            return []
        if switch is not None and resuming:
            self.on_event(f"RESUMED {self.integration} (kill switch of {switch.incident})")
            for name in switch.manual_resume:
                self.on_event(f"WARNING {self.integration}: no resume step for {name}; restore it by hand")
        resolved: list[IncidentRecord] = []
        for verdict, incident_id in list(self._open.items()):
            self.engine.resolve(verdict)
            del self._open[verdict]
            record = self.incidents.get(incident_id)
            if record is None:
                continue
            auto_resolve = self.page_options is None or self.page_options.auto_resolve
            paged = record.intent.page or record.pagerduty
            if self.pagerduty is not None and self.routing_key and paged and auto_resolve:
                # a trigger may be on its way even if the record does not know its key yet
                dedup_key = IncidentPage.from_record(record).dedup_key
                self.pagerduty.enqueue(resolve_event(routing_key=self.routing_key, dedup_key=dedup_key))
                record.pagerduty = {**record.pagerduty, "dedup_key": dedup_key, "resolve": "pending"}
            record.state = "Resolved"
            record.resolved_at = self.clock()
            self.incidents.save(record)
            resolved.append(record)
            self.on_event(f"RESOLVED {record.id} ({reason})")
        if self.responds:
            self._record_open()
        await self._deliver_resolves()
        return resolved

    def _record_open(self) -> None:
        by_verdict = {verdict.value: 1 for verdict in self._open}
        self.metrics.record_open_incidents(namespace="", integration=self.integration, by_verdict=by_verdict)

    async def _deliver_resolves(self) -> None:
        """Deliver the queued resolves and record in each incident what became of its own."""
        if self.pagerduty is None:
            return
        try:
            results = await self.pagerduty.flush()
        except PagerDutyError as error:  # the outbox keeps it: sent again later
            log.warning("PagerDuty outbox: %s", error)
            results = []
        outcomes = {r.dedup_key: r.outcome.value for r in results if r.action == "resolve"}
        pending = self.pagerduty.outbox.pending()
        queued = {e.event.get("dedup_key") for e in pending if e.event["event_action"] == "resolve"}
        for record in self.incidents.records():
            key = record.pagerduty.get("dedup_key")
            if record.pagerduty.get("resolve") != "pending":
                continue
            if key in queued:
                continue  # still in the outbox: the next run or resume sends it
            record.pagerduty["resolve"] = outcomes.get(key, Outcome.DELIVERED.value)
            self.incidents.save(record)
            self.on_event(f"RESOLVE of {record.id} (dedup_key {key}): {record.pagerduty['resolve']}")

    # -- reporting ------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "probe": self.probe,
            "state": "Suspended" if self.suspended else "Active",
            "verdicts": dict(sorted(self.verdicts.items())),
            "frames": sum(self.verdicts.values()),
            "by_path": {key: dict(sorted(counts.items())) for key, counts in sorted(self.by_path.items())},
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
            "stale_while_camera_down": dict(sorted(self.excused.items())),
            "pagerduty": dict(self.pagerduty_results),
            "kill_switch": None if self.kill_switch is None else self.kill_switch.describe(),
            "unfinished": self.unfinished(),
        }


def _holds(kill_switch: KillSwitch | None) -> bool:
    """Engaged, completely: the integration is switched off."""
    return (
        kill_switch is not None
        and kill_switch.record is not None
        and kill_switch.record.state is SwitchState.ENGAGED
    )
