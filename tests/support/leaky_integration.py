"""A camera integration under test whose faults a test switches by hand, and
``canarywatch run`` as the subprocess a user starts against it.

``LeakyIntegration`` takes canary uploads (``PUT /cam/{tenant}/{camera}``) and shows
each tenant a snapshot (``GET /view/{tenant}/{camera}``): its own frame, or, while
``leaking``, another tenant's. Its kill webhook (``POST /kill``) answers what the test
scripted (an HTTP status, or ``"hang"``), and switches the integration off only if
``kill_works`` (a GitOps revert, an unenforced policy: it answers 200 and keeps
serving). ``POST /resume`` switches it back on (or answers what ``script_resume`` queued).

``RunProcess`` starts ``canarywatch run`` with a config for it, reads its progress
lines, and can ``kill -9`` it at a chosen moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from canarywatch.serving import ServedApp

__all__ = ["LeakyIntegration", "RunProcess", "leaky_integration", "run_config"]

ROUTING_KEY = "r" * 32


class LeakyIntegration:
    def __init__(self) -> None:
        self.frames: dict[tuple[str, str], bytes] = {}
        self.leaking = True
        self.kill_works = True
        self.off = False
        self.kill_calls: list[float] = []
        self.resume_calls: list[float] = []
        self._resume_script: deque[int | str] = deque()
        self.leaked_served = 0  # frames of another tenant handed out
        self._script: deque[int | str] = deque()
        self._release = asyncio.Event()
        self._served: ServedApp | None = None

    def script_kill(self, *answers: int | str) -> None:
        """Answers for the next kill calls: an HTTP status, or ``"hang"`` (until ``release``)."""
        self._script.extend(answers)

    def script_resume(self, *answers: int | str) -> None:
        """Answers for the next resume calls, as ``script_kill``."""
        self._resume_script.extend(answers)

    def release(self) -> None:
        self._release.set()

    @property
    def url(self) -> str:
        assert self._served is not None
        return self._served.base_url

    async def start(self) -> LeakyIntegration:
        app = web.Application()
        app.router.add_put("/cam/{tenant}/{camera}", self._upload)
        app.router.add_get("/view/{tenant}/{camera}", self._view)
        app.router.add_post("/kill", self._kill)
        app.router.add_post("/resume", self._resume)
        self._served = await ServedApp.start(app, "127.0.0.1", 0, shutdown_timeout=0.5, access_log=None)
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._served is not None:
            await self._served.stop()

    async def _upload(self, request: web.Request) -> web.Response:
        self.frames[(request.match_info["tenant"], request.match_info["camera"])] = await request.read()
        return web.Response(status=204)

    async def _view(self, request: web.Request) -> web.Response:
        if self.off:
            return web.json_response({"error": "disabled"}, status=503)
        tenant, camera = request.match_info["tenant"], request.match_info["camera"]
        if self.leaking:
            others = [f for (t, c), f in self.frames.items() if t != tenant and c == camera]
            if others:
                self.leaked_served += 1
                return web.Response(body=others[0], content_type="image/jpeg")
        frame = self.frames.get((tenant, camera))
        if frame is None:
            return web.Response(status=404)
        return web.Response(body=frame, content_type="image/jpeg")

    async def _answer(self, calls: list[float], script: deque[int | str]) -> int:
        """The scripted answer of a kill or resume call (200 when none is queued)."""
        calls.append(time.time())
        answer = script.popleft() if script else 200
        if answer == "hang":
            await self._release.wait()
            answer = 200
        assert isinstance(answer, int)
        return answer

    async def _kill(self, request: web.Request) -> web.Response:
        answer = await self._answer(self.kill_calls, self._script)
        if answer == 200 and self.kill_works:
            self.off = True
        return web.json_response({"status": answer}, status=answer)

    async def _resume(self, request: web.Request) -> web.Response:
        answer = await self._answer(self.resume_calls, self._resume_script)
        if answer == 200:
            self.off = False
        return web.json_response({"status": answer}, status=answer)


def run_config(
    integration_url: str,
    pagerduty_url: str,
    *,
    metrics_port: int = 0,
    kill_cap: dict[str, Any] | None = None,
    serve_port: int | None = None,
) -> dict[str, Any]:
    """A ``canarywatch run`` config watching ``integration_url`` (two tenants, snapshots)."""
    camera: dict[str, Any] = (
        {"serve": {"port": serve_port}}
        if serve_port is not None
        else {"push": {"method": "PUT", "url": integration_url + "/cam/{tenant}/{camera}"}}
    )
    policy: dict[str, Any] = {"mode": "enforce"}
    if kill_cap is not None:
        policy["killCap"] = kill_cap
    return {
        "integration": {
            "name": "leaky",
            "camera": camera,
            "viewer": {"snapshot": {"url": integration_url + "/view/{tenant}/{camera}"}, "pollInterval": 0.2},
            "killSwitch": {
                "webhook": {
                    "url": integration_url + "/kill",
                    "resume": {"url": integration_url + "/resume"},
                    "timeout": 30,
                    "maxAttempts": 1,
                }
            },
            "policy": policy,
            "pagerduty": {"routingKey": ROUTING_KEY, "url": pagerduty_url},
        },
        "probe": {
            "tenants": [{"id": "acme-7", "token": "ta"}, {"id": "bravo-2", "token": "tb"}],
            "fps": 4,
            "networkProfiles": ["good"],
        },
        "metrics": {"port": metrics_port},
    }


class RunProcess:
    """``canarywatch run`` as a subprocess: its output lines as they come, ``kill -9``."""

    def __init__(self, config: dict[str, Any], out: Path, *, duration: float) -> None:
        self.config = config
        self.out = out
        self.duration = duration
        self.lines: list[str] = []
        self.stderr = ""
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.exited_after: float | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def config_path(self) -> Path:
        return self.out.parent / f"{self.out.name}-config.yaml"

    async def start(self, *command: str) -> RunProcess:
        """Start ``canarywatch run`` (or ``command``, e.g. ``resume --incident ID``) on
        the config and ``--out``."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.started_at = time.monotonic()
        argv = command or ("run", "--duration", str(self.duration))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "canarywatch.cli", *argv, "--config", str(self.config_path),
            "--out", str(self.out),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())

    async def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((line for line in self.lines if text in line), None)
            if found is not None:
                return found
            if self.process is not None and self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines[-40:]) + self.stderr)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def wait(self, timeout: float) -> int:
        """The exit code; ``timeout`` bounds how long a test waits (then it is killed)."""
        assert self.process is not None and self.process.stderr is not None
        try:
            stderr = await asyncio.wait_for(self.process.stderr.read(), timeout)
            code = await asyncio.wait_for(self.process.wait(), timeout)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            if self._reader is not None:
                await asyncio.wait([self._reader], timeout=5)
        self.exited_after = time.monotonic() - self.started_at
        self.stderr = stderr.decode(errors="replace")
        return code

    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.out / "summary.json").read_text()))

    def incidents(self) -> list[dict[str, Any]]:
        """incidents.jsonl, the last line of each id (the journal's latest states)."""
        path = self.out / "incidents.jsonl"
        latest: dict[str, dict[str, Any]] = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            record = json.loads(line)
            latest[record["id"]] = record
        return list(latest.values())


@contextlib.asynccontextmanager
async def leaky_integration() -> AsyncIterator[LeakyIntegration]:
    integration = await LeakyIntegration().start()
    try:
        yield integration
    finally:
        await integration.stop()
