"""Kill switch against real endpoints over loopback: a signing-aware webhook receiver,
the reference relay's admin API, and real subprocesses.

Retry delays are a millisecond or so; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from canarywatch.metrics import Metrics
from canarywatch.relay import RelayConfig, RelayHandle, run_relay
from canarywatch.shutdown import (
    SIGNATURE_HEADER,
    ActionConfigError,
    ActionContext,
    ActionOutcome,
    CommandAction,
    KillSwitch,
    KillSwitchStateError,
    NotEngagedError,
    Result,
    SignatureError,
    Step,
    SwitchState,
    WebhookAction,
    WebhookRequest,
    sign,
    verify_signature,
)

SECRET = "whsec-test-5f2a"
ADMIN_TOKEN = "admin-secret-token"
FAST: dict[str, Any] = {"base_delay": 0.001, "max_delay": 0.005, "timeout": 5.0}
REASON = 'cross_tenant: tenant "bravo-2" shown camera acme-7/1'


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint that checks signatures itself, as a real receiver would."""

    secret: str = SECRET
    script: list[int] = field(default_factory=list)  # statuses to answer first
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body))
        header = request.headers.get(SIGNATURE_HEADER, "")
        # Independent check (plain hmac, not canarywatch's helper): the documented format.
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        expected = hmac.new(
            self.secret.encode(), f"{fields.get('t', '')}.".encode() + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, fields.get("v1", "")):
            return web.json_response({"error": "bad signature"}, status=401)
        if self.script:
            return web.json_response({"error": "scripted"}, status=self.script.pop(0))
        return web.json_response({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = int(runner.addresses[0][1])
    yield state
    await runner.cleanup()


@pytest.fixture
async def relay() -> AsyncIterator[RelayHandle]:
    config = RelayConfig(tenants={"acme-7": "token-acme", "bravo-2": "token-bravo"}, admin_token=ADMIN_TOKEN)
    async with await run_relay(config) as handle:
        yield handle


def hook(receiver: Receiver, name: str = "hook", **overrides: Any) -> WebhookAction:
    options: dict[str, Any] = {
        "request": WebhookRequest(
            url=receiver.url("/kill/{integration}"),
            headers={"Authorization": "Bearer hook-credential"},
            body='{"integration": "{integration}", "incident": "{incident}", "reason": "{reason}"}',
        ),
        "resume_request": WebhookRequest(
            url=receiver.url("/resume/{integration}"), body='{"incident": "{incident}"}'
        ),
        "secret": SECRET,
        **FAST,
    }
    options.update(overrides)
    return WebhookAction(name=name, **options)


def relay_action(relay: RelayHandle) -> WebhookAction:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return WebhookAction(
        name="relay-admin",
        request=WebhookRequest(
            url=f"{relay.base_url}/v3/admin/kill",
            headers=admin,
            body='{"actor": "canarywatch", "reason": "{incident}: {reason}"}',
        ),
        resume_request=WebhookRequest(url=f"{relay.base_url}/v3/admin/resume", headers=admin),
        **FAST,
    )


def python_command(name: str, code: str, *, resume_code: str | None = None, **options: Any) -> CommandAction:
    return CommandAction(
        name=name,
        argv=[sys.executable, "-c", code],
        resume_argv=None if resume_code is None else [sys.executable, "-c", resume_code],
        **options,
    )


# --- webhook ------------------------------------------------------------------------------


async def test_webhook_is_signed_templated_and_retried_after_500(receiver: Receiver) -> None:
    receiver.script = [500, 503]
    switch = KillSwitch([hook(receiver)], integration="relay-prod")
    record = await switch.engage("inc-42", REASON)
    assert record.state is SwitchState.ENGAGED and switch.engaged
    (result,) = record.engage_results
    assert (result.result, result.attempts, result.detail) == (Result.SUCCEEDED, 3, "HTTP 200")
    assert len(receiver.seen) == 3
    last = receiver.seen[-1]
    assert (last.method, last.path) == ("POST", "/kill/relay-prod")
    assert json.loads(last.body) == {"integration": "relay-prod", "incident": "inc-42", "reason": REASON}
    assert last.headers["Content-Type"] == "application/json"
    assert last.headers["Authorization"] == "Bearer hook-credential"
    assert last.headers["Idempotency-Key"] == "relay-prod/inc-42/engage"
    # canarywatch's own verifier agrees with the receiver's independent check.
    verify_signature(SECRET, last.headers[SIGNATURE_HEADER], last.body, now=time.time())
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, last.headers[SIGNATURE_HEADER], last.body + b" ", now=time.time())
    with pytest.raises(SignatureError, match="clock"):
        verify_signature(SECRET, last.headers[SIGNATURE_HEADER], last.body, now=time.time() + 3600)
    assert record.seconds >= 0


async def test_webhook_client_error_is_not_retried_and_engage_again_retries_it(receiver: Receiver) -> None:
    receiver.script = [403]
    switch = KillSwitch([hook(receiver)], integration="relay-prod")
    record = await switch.engage("inc-1", "leak")
    assert record.state is SwitchState.ENGAGE_FAILED and switch.engaged
    (failed,) = record.engage_results
    assert (failed.result, failed.attempts) == (Result.FAILED, 1)
    assert failed.detail.startswith("HTTP 403")
    retried = await switch.engage("inc-2", "another leak")
    assert retried.state is SwitchState.ENGAGED
    assert retried.incident == "inc-1", "a retry completes the original engagement"
    assert len(receiver.seen) == 2


async def test_wrong_secret_is_refused_by_the_receiver(receiver: Receiver) -> None:
    switch = KillSwitch([hook(receiver, secret="not-the-secret")], integration="relay-prod")
    record = await switch.engage("inc-1", "leak")
    (result,) = record.engage_results
    assert result.result is Result.FAILED and result.detail.startswith("HTTP 401")


async def test_network_errors_are_retried_then_reported(receiver: Receiver) -> None:
    # A port nothing listens on: bound, then released.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    dead = WebhookRequest(url=f"http://127.0.0.1:{free_port}/kill")
    switch = KillSwitch([hook(receiver, request=dead, max_attempts=3)], integration="relay-prod")
    (result,) = (await switch.engage("inc-1", "leak")).engage_results
    assert result.result is Result.FAILED and result.attempts == 3
    assert "Error" in result.detail


async def test_redirects_are_failures_not_followed(receiver: Receiver) -> None:
    receiver.script = [307]
    switch = KillSwitch([hook(receiver)], integration="relay-prod")
    (result,) = (await switch.engage("inc-1", "leak")).engage_results
    assert result.result is Result.FAILED and "redirects are not followed" in result.detail
    assert len(receiver.seen) == 1


def test_signature_scheme_matches_its_documentation() -> None:
    body = b'{"incident": "inc-1"}'
    digest = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body, 1_700_000_000) == f"t=1700000000,v1={digest}"
    # During a secret rotation a sender may sign twice; either signature is enough.
    verify_signature(SECRET, f"t=1700000000,v1={'0' * 64},v1={digest}", body, now=1_700_000_100)
    for header, problem in [
        (None, "missing"),
        ("v1=abc", "needs t="),
        (f"t=soon,v1={digest}", "malformed timestamp"),
        (f"t=1700000000,v1={digest}", "clock"),
    ]:
        with pytest.raises(SignatureError, match=problem):
            verify_signature(SECRET, header, body, now=1_700_001_000)


# --- reference relay -----------------------------------------------------------------------


async def relay_enabled(relay: RelayHandle) -> bool:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{relay.base_url}/v3/admin/state", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as response,
    ):
        assert response.status == 200
        state = await response.json()
    return bool(state["enabled"])


async def test_relay_admin_kill_and_resume(relay: RelayHandle) -> None:
    switch = KillSwitch([relay_action(relay)], integration="reference-relay")
    assert await relay_enabled(relay)
    record = await switch.engage("inc-7", "cross_tenant leak")
    assert record.state is SwitchState.ENGAGED
    assert not await relay_enabled(relay)
    disabled = relay.relay.describe()["disabled"]
    assert disabled["by"] == "canarywatch" and disabled["reason"] == "inc-7: cross_tenant leak"
    resumed = await switch.resume()
    assert resumed.state is SwitchState.RESUMED and not switch.engaged
    assert [r.result for r in resumed.resume_results] == [Result.SUCCEEDED]
    assert await relay_enabled(relay)


async def test_relay_with_a_wrong_admin_token_stays_up(relay: RelayHandle) -> None:
    action = WebhookAction(
        name="relay-admin",
        request=WebhookRequest(
            url=f"{relay.base_url}/v3/admin/kill", headers={"Authorization": "Bearer nope"}
        ),
        **FAST,
    )
    record = await KillSwitch([action], integration="reference-relay").engage("inc-1", "leak")
    assert record.state is SwitchState.ENGAGE_FAILED
    assert record.engage_results[0].detail.startswith("HTTP 401")
    assert await relay_enabled(relay)


# --- commands ------------------------------------------------------------------------------

WRITE_ENV = (
    "import os, pathlib, json; pathlib.Path(os.environ['OUT']).write_text(json.dumps("
    "{k: os.environ[k] for k in ('CANARYWATCH_INTEGRATION', 'CANARYWATCH_INCIDENT', "
    "'CANARYWATCH_REASON', 'CANARYWATCH_STEP')}))"
)


async def test_command_action_runs_a_real_process_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "killed.json"
    action = python_command(
        "scale-down",
        WRITE_ENV,
        resume_code="import os, pathlib; pathlib.Path(os.environ['OUT']).unlink()",
        env={"OUT": str(out)},
    )
    switch = KillSwitch([action], integration="relay-prod")
    record = await switch.engage("inc-9", REASON)
    assert record.engage_results[0].detail == "exit 0"
    # The reason reaches the command verbatim: no shell ever parses it.
    assert json.loads(out.read_text()) == {
        "CANARYWATCH_INTEGRATION": "relay-prod",
        "CANARYWATCH_INCIDENT": "inc-9",
        "CANARYWATCH_REASON": REASON,
        "CANARYWATCH_STEP": "engage",
    }
    assert (await switch.resume()).state is SwitchState.RESUMED
    assert not out.exists()


async def test_command_failures_are_recorded_with_their_stderr(tmp_path: Path) -> None:
    failing = python_command("fails", "import sys; sys.stderr.write('kubectl: forbidden\\n'); sys.exit(3)")
    hanging = python_command("hangs", "import time; time.sleep(60)", timeout=0.3)
    missing = CommandAction(name="missing", argv=[str(tmp_path / "no-such-program")])
    record = await KillSwitch([failing, hanging, missing], integration="relay-prod").engage("inc-1", "leak")
    details = {r.name: (r.result, r.detail) for r in record.engage_results}
    assert details["fails"] == (Result.FAILED, "exit 3: kubectl: forbidden")
    assert details["hangs"][0] is Result.FAILED and "timed out" in details["hangs"][1]
    assert details["missing"][0] is Result.FAILED and "cannot start" in details["missing"][1]
    assert record.state is SwitchState.ENGAGE_FAILED


async def test_resume_runs_in_reverse_order_and_lists_manual_steps(tmp_path: Path) -> None:
    log = tmp_path / "log"
    append = "import os, sys; open(os.environ['LOG'], 'a').write(sys.argv[1] + '\\n')"
    env = {"LOG": str(log)}

    def step(name: str, *, reversible: bool = True) -> CommandAction:
        resume = [sys.executable, "-c", append, f"resume-{name}"] if reversible else None
        return CommandAction(
            name=name, argv=[sys.executable, "-c", append, f"engage-{name}"], resume_argv=resume, env=env
        )

    switch = KillSwitch(
        [step("first"), step("manual", reversible=False), step("last")], integration="relay-prod"
    )
    await switch.engage("inc-1", "leak")
    record = await switch.resume()
    assert log.read_text().split() == [
        "engage-first",
        "engage-manual",
        "engage-last",
        "resume-last",
        "resume-first",
    ]
    assert record.state is SwitchState.RESUMED
    assert record.manual_resume == ("manual",)
    assert [r.result for r in record.resume_results] == [
        Result.SUCCEEDED,
        Result.SKIPPED,
        Result.SUCCEEDED,
    ]


# --- idempotence, persistence ------------------------------------------------------------------


async def test_engaging_twice_calls_nothing_twice(receiver: Receiver) -> None:
    switch = KillSwitch([hook(receiver)], integration="relay-prod")
    first, second, third = await asyncio.gather(
        switch.engage("inc-1", "leak"), switch.engage("inc-2", "leak"), switch.engage("inc-3", "leak")
    )
    assert first == second == third and first.incident == "inc-1"
    assert len(receiver.seen) == 1
    await switch.resume()
    assert await switch.resume() == switch.record
    assert [s.path for s in receiver.seen] == ["/kill/relay-prod", "/resume/relay-prod"]
    # Engaging after a resume is a new engagement.
    again = await switch.engage("inc-4", "new leak")
    assert again.incident == "inc-4" and again.state is SwitchState.ENGAGED
    assert len(receiver.seen) == 3


async def test_resume_before_any_engage_is_an_error(receiver: Receiver) -> None:
    with pytest.raises(NotEngagedError, match="never engaged"):
        await KillSwitch([hook(receiver)], integration="relay-prod").resume()


async def test_state_survives_a_new_instance(receiver: Receiver, tmp_path: Path) -> None:
    state = tmp_path / "state" / "relay-prod.json"
    record = await KillSwitch([hook(receiver)], integration="relay-prod", state_path=state).engage(
        "inc-1", REASON
    )
    restarted = KillSwitch([hook(receiver)], integration="relay-prod", state_path=state)
    assert restarted.engaged and restarted.record == record
    assert await restarted.engage("inc-2", "again") == record
    assert len(receiver.seen) == 1, "a restarted process must not kill twice"
    resumed = await restarted.resume()
    assert resumed.state is SwitchState.RESUMED
    assert KillSwitch([hook(receiver)], integration="relay-prod", state_path=state).record == resumed


async def test_an_action_removed_from_the_config_is_left_to_a_human(
    receiver: Receiver, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    await KillSwitch(
        [hook(receiver, "old"), hook(receiver, "kept")], integration="relay-prod", state_path=state
    ).engage("inc-1", "leak")
    record = await KillSwitch([hook(receiver, "kept")], integration="relay-prod", state_path=state).resume()
    assert record.state is SwitchState.RESUMED and record.manual_resume == ("old",)
    assert [s.path for s in receiver.seen].count("/resume/relay-prod") == 1


async def test_a_crash_mid_engage_is_retried_after_restart(receiver: Receiver, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    actions = [hook(receiver, "first"), hook(receiver, "second")]
    record = await KillSwitch(actions, integration="relay-prod", state_path=state).engage("inc-1", "leak")
    # Rewrite the file as a crash while the second action was acting would have left it.
    document = json.loads(state.read_text())
    document["record"]["state"] = "Engaging"
    document["record"]["actions"][1]["result"] = "Pending"
    state.write_text(json.dumps(document))
    restarted = KillSwitch(actions, integration="relay-prod", state_path=state)
    assert restarted.record is not None and restarted.record.state is SwitchState.ENGAGE_FAILED
    assert restarted.record.engage_results[1].detail.startswith("interrupted")
    finished = await restarted.engage("inc-1", "leak")
    assert finished.state is SwitchState.ENGAGED
    assert [r.name for r in finished.engage_results] == ["first", "second"]
    assert len(receiver.seen) == len(record.engage_results) + 1


async def test_an_unwritable_state_file_does_not_stop_the_kill(receiver: Receiver, tmp_path: Path) -> None:
    folder = tmp_path / "state"
    switch = KillSwitch(
        [hook(receiver, "first"), hook(receiver, "second")],
        integration="relay-prod",
        state_path=folder / "s.json",
    )
    folder.write_text("a file where the state folder should be")  # every write now fails
    with pytest.raises(KillSwitchStateError, match="cannot write") as caught:
        await switch.engage("inc-1", "leak")
    assert isinstance(caught.value.__cause__, OSError)
    assert len(receiver.seen) == 2, "both actions ran although nothing could be recorded"
    assert switch.record is not None and switch.record.state is SwitchState.ENGAGED


async def test_untrustworthy_state_files_are_refused(receiver: Receiver, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    await KillSwitch([hook(receiver)], integration="relay-prod", state_path=state).engage("inc-1", "leak")
    with pytest.raises(KillSwitchStateError, match="belongs to integration 'relay-prod'"):
        KillSwitch([hook(receiver)], integration="relay-staging", state_path=state)
    state.write_text("{not json")
    with pytest.raises(KillSwitchStateError, match="not valid") as caught:
        KillSwitch([hook(receiver)], integration="relay-prod", state_path=state)
    assert caught.value.__cause__ is not None


async def test_metrics_hook_counts_every_step(receiver: Receiver, tmp_path: Path) -> None:
    metrics = Metrics()
    manual = python_command("manual", "pass")
    switch = KillSwitch(
        [hook(receiver), manual],
        integration="relay-prod",
        on_action=metrics.killswitch_hook(namespace="", integration="relay-prod"),
    )
    await switch.engage("inc-1", "leak")
    await switch.resume()

    def count(action: str, result: str) -> float | None:
        labels = {"namespace": "", "integration": "relay-prod", "action": action, "result": result}
        return metrics.sample("canarywatch_killswitch_actions_total", labels)

    assert (count("engage", "succeeded"), count("resume", "succeeded"), count("resume", "skipped")) == (
        2,
        1,
        1,
    )


class Exploding:
    """A custom action with a bug: it must not stop the other actions."""

    name = "exploding"
    kind = "custom"
    reversible = False

    async def engage(self, context: ActionContext) -> ActionOutcome:
        raise RuntimeError("bug")

    async def resume(self, context: ActionContext) -> ActionOutcome:
        raise AssertionError("not reversible, never called")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


async def test_a_raising_action_does_not_stop_the_others(receiver: Receiver) -> None:
    record = await KillSwitch([Exploding(), hook(receiver)], integration="relay-prod").engage("inc-1", "leak")
    assert [r.result for r in record.engage_results] == [Result.FAILED, Result.SUCCEEDED]
    assert record.engage_results[0].detail == "action raised RuntimeError"


# --- secrets and configuration -------------------------------------------------------------------


async def test_secrets_stay_out_of_reprs_descriptions_and_state(receiver: Receiver, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    action = hook(
        receiver,
        request=WebhookRequest(
            url=receiver.url("/hooks/T000/B000/XXXXSECRETPATH"),
            headers={"Authorization": "Bearer hook-credential"},
        ),
    )
    switch = KillSwitch([action], integration="relay-prod", state_path=state)
    await switch.engage("inc-1", "leak")
    command = CommandAction(name="scale", argv=["kubectl", "--token=cmd-token"], env={"API_KEY": "env-key"})
    exposed = " ".join([repr(action), repr(command), json.dumps(switch.describe()), state.read_text()])
    for secret in (SECRET, "hook-credential", "XXXXSECRETPATH", "cmd-token", "env-key"):
        assert secret not in exposed
    assert json.dumps(switch.describe()).count(f"http://127.0.0.1:{receiver.port}") == 2


@pytest.mark.parametrize(
    ("build", "field_name", "hint"),
    [
        (lambda: WebhookRequest(url="ftp://example.com/kill"), "url", "http"),
        (lambda: WebhookRequest(url="http://example.com/{tenant}"), "url", "unknown placeholder {tenant}"),
        (lambda: WebhookRequest(url="http://x.example", body='{"reason": {reason}}'), "body", "not"),
        (lambda: WebhookRequest(url="http://x.example", method="TRACE"), "method", "POST"),
        (lambda: CommandAction(name="c", argv="kubectl scale --replicas=0"), "argv", "shell string"),
        (lambda: CommandAction(name="c", argv=[]), "argv", "non-empty"),
        (lambda: CommandAction(name="c", argv=["x"], timeout=0), "timeout", "> 0"),
        (lambda: CommandAction(name="bad name", argv=["x"]), "name", "letters"),
    ],
)
def test_configuration_errors_name_the_field(build: Any, field_name: str, hint: str) -> None:
    with pytest.raises(ActionConfigError) as caught:
        build()
    assert caught.value.field == field_name and hint in str(caught.value)


def test_plain_text_bodies_are_not_json_escaped() -> None:
    request = WebhookRequest(
        url="http://x.example/{incident}", body="kill {integration}: {reason}", content_type="text/plain"
    )
    context = ActionContext("relay", "inc 1/2", 'say "hi"', Step.ENGAGE)
    assert request.render_body(context) == b'kill relay: say "hi"'
    assert request.render_url(context) == "http://x.example/inc%201%2F2"


def test_kill_switch_needs_unique_named_actions(receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="repeated: hook"):
        KillSwitch([hook(receiver), hook(receiver)], integration="relay-prod")
    with pytest.raises(ValueError, match="at least one action"):
        KillSwitch([], integration="relay-prod")


# --- one engine: order, snapshots, recovery (both shells run this code) ------------------------


@dataclass
class Recorded:
    """An in-process action: logs its steps, fails its engage step while ``broken``, and
    reports what it replaces (like the operator's Kubernetes actions)."""

    name: str
    log: list[str]
    broken: bool = False
    snapshots: int = 0
    kind: str = "custom"
    reversible: bool = True

    async def snapshot(self) -> dict[str, Any]:
        self.snapshots += 1
        return {"replicas": 3}

    async def engage(self, context: ActionContext) -> ActionOutcome:
        self.log.append(f"engage-{self.name}")
        return ActionOutcome(not self.broken, "broken" if self.broken else "done")

    async def resume(self, context: ActionContext) -> ActionOutcome:
        self.log.append(f"resume-{self.name}")
        return ActionOutcome(True, "restored")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


async def test_a_retried_engagement_still_resumes_in_reverse_configured_order() -> None:
    # Fails on the old standalone KillSwitch: a retried action was appended after the
    # ones that had succeeded, so resume unwound "first" before "second".
    log: list[str] = []
    first, second = Recorded("first", log, broken=True), Recorded("second", log)
    switch = KillSwitch([first, second], integration="relay-prod")
    assert (await switch.engage("inc-1", "leak")).state is SwitchState.ENGAGE_FAILED
    first.broken = False
    record = await switch.engage("inc-1", "leak")
    assert record.state is SwitchState.ENGAGED
    assert [r.name for r in record.actions] == ["first", "second"]
    await switch.resume()
    assert log == ["engage-first", "engage-second", "engage-first", "resume-second", "resume-first"]


async def test_what_an_action_replaces_is_recorded_before_it_acts_and_read_once(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    seen: list[dict[str, Any]] = []

    class Watching(Recorded):
        async def engage(self, context: ActionContext) -> ActionOutcome:
            seen.append(json.loads(state.read_text())["record"]["actions"][-1])
            return await super().engage(context)

    action = Watching("scale", [], broken=True)
    switch = KillSwitch([action], integration="relay-prod", state_path=state)
    await switch.engage("inc-1", "leak")
    action.broken = False
    record = await switch.engage("inc-1", "leak")
    assert [(s["result"], s["previous"]) for s in seen] == [("Pending", {"replicas": 3})] * 2
    assert action.snapshots == 1, "the first reading is the original; never read again"
    assert record.actions[0].previous == {"replicas": 3} and record.actions[0].attempts == 2


async def test_a_version_1_state_file_is_still_understood(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    result = {"kind": "webhook", "step": "engage", "status": "succeeded", "detail": "HTTP 200"}
    result |= {"attempts": 1, "started_at": 1.0, "finished_at": 2.0}
    record = {"integration": "relay-prod", "incident": "inc-1", "reason": "leak", "phase": "engaged"}
    record |= {"engaged_at": 1.0, "seconds": 1.0, "resumed_at": None, "resume_results": []}
    record["engage_results"] = [{"action": "hook", **result}]
    state.write_text(json.dumps({"version": 1, "record": record}))
    loaded = KillSwitch([Recorded("hook", [])], integration="relay-prod", state_path=state).record
    assert loaded is not None and loaded.state is SwitchState.ENGAGED
    assert [(a.name, a.result) for a in loaded.actions] == [("hook", Result.SUCCEEDED)]


async def test_reassert_runs_every_action_again_and_keeps_what_they_replaced(tmp_path: Path) -> None:
    # A GitOps revert undid the kill: engage() calls nothing on an Engaged switch, so the
    # only way to act again is reassert(); resume must still restore the original.
    log: list[str] = []
    scale, webhook = Recorded("scale", log), Recorded("webhook", log)
    switch = KillSwitch([scale, webhook], integration="relay-prod", state_path=tmp_path / "ks.json")
    engaged = await switch.engage("inc-1", "leak")
    record = await switch.reassert()
    assert record.state is SwitchState.ENGAGED and record.incident == "inc-1"
    assert (record.engaged_at, record.seconds) == (engaged.engaged_at, engaged.seconds)
    assert [a.previous for a in record.actions] == [{"replicas": 3}] * 2 and scale.snapshots == 1
    assert [a.attempts for a in record.actions] == [2, 2]
    webhook.broken = True  # a re-assertion that fails says so, and is completed later
    assert (await switch.reassert()).state is SwitchState.ENGAGE_FAILED
    webhook.broken = False
    assert (await switch.reassert()).state is SwitchState.ENGAGED
    await switch.resume()
    assert log == [
        *["engage-scale", "engage-webhook"] * 3,
        "engage-webhook",
        "resume-webhook",
        "resume-scale",
    ]
    with pytest.raises(NotEngagedError):
        await switch.reassert()
