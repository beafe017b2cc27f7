"""Kill-switch actions for standalone mode: call a webhook, run a command.

An action has an ``engage`` step (switch the integration off) and, when configured, a
``resume`` step (restore it). Steps never raise for an expected failure (HTTP error,
timeout, non-zero exit): they return an ``ActionOutcome`` that ``KillSwitch`` records,
so one broken action cannot stop the others from running.

Both actions should target idempotent operations (the reference relay's
``/v3/admin/kill`` is one): a webhook is retried after a timeout whose request may
already have taken effect, and ``KillSwitch`` retries failed steps when asked again.

Secrets: webhook URLs (a Slack-style URL *is* a credential), header values and the
HMAC secret stay out of reprs, ``describe()``, outcomes and logs; a webhook is
described by its method, scheme, host and header names only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from canarywatch.errors import FieldError
from canarywatch.headers import header_problem
from canarywatch.retrying import Backoff, RetryLater, retry
from canarywatch.shutdown.records import Step
from canarywatch.shutdown.signing import SIGNATURE_HEADER, sign

__all__ = [
    "PLACEHOLDERS",
    "Action",
    "ActionConfigError",
    "ActionContext",
    "ActionOutcome",
    "CommandAction",
    "Step",
    "WebhookAction",
    "WebhookRequest",
]

log = logging.getLogger(__name__)

PLACEHOLDERS = ("integration", "incident", "reason")
# ``{name}`` with a bare identifier inside: a placeholder, or a misspelt one. JSON
# objects (``{"a": 1}``) never match, so templates need no brace escaping.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Response bodies and stderr tails end up in kill-switch records, CR status and logs.
_DETAIL_LIMIT = 200


class ActionConfigError(FieldError):
    """An action is misconfigured; ``field`` names the setting."""


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What an action is told about the kill: substituted into templates and env."""

    integration: str
    incident: str
    reason: str
    step: Step


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    ok: bool
    detail: str  # "HTTP 200", "exit 3: <stderr tail>", "timed out after 10 s"…; no secrets
    attempts: int = 1


class Action(Protocol):
    """A kill-switch action. ``name`` is unique within one ``KillSwitch``."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def reversible(self) -> bool:
        """True if ``resume`` restores what ``engage`` did."""
        ...

    async def engage(self, context: ActionContext) -> ActionOutcome: ...

    async def resume(self, context: ActionContext) -> ActionOutcome: ...

    def describe(self) -> dict[str, Any]:
        """What it does, safe to show in status and logs (no secrets)."""
        ...


# ---------------------------------------------------------------------------------------
# Webhook
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP request; ``url`` and ``body`` may use ``{integration}``, ``{incident}``, ``{reason}``.

    Substituted values are percent-encoded in the URL and, when ``content_type`` is a
    JSON type, JSON-escaped in the body (a reason with a quote in it must not break the
    document); a JSON body template is checked to be valid JSON when the request is
    created. Header values are sent as given (never templated: they hold credentials).
    """

    url: str = field(repr=False)
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: str | None = None
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        method = str(self.method).upper()
        if method not in _METHODS:
            raise ActionConfigError("method", f"{self.method!r} is not one of {', '.join(_METHODS)}")
        object.__setattr__(self, "method", method)
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            # The URL itself may be a credential: say what is wrong, not what it is.
            raise ActionConfigError("url", "must be an absolute http:// or https:// URL")
        _check_template("url", self.url)
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ActionConfigError("headers", "must map header names to string values")
        for name, value in self.headers.items():
            problem = header_problem(name, value)
            if problem is not None:
                raise ActionConfigError(*problem)
        object.__setattr__(self, "headers", dict(self.headers))
        if self.body is not None:
            _check_template("body", self.body)
            if self.is_json:
                sample = ActionContext("integration", "incident", 'a "quoted" reason', Step.ENGAGE)
                try:
                    json.loads(self.render_body(sample) or b"")
                except ValueError as error:
                    raise ActionConfigError(
                        "body", f"content type is JSON but the body is not: {error}"
                    ) from None

    @property
    def is_json(self) -> bool:
        media = self.content_type.split(";", 1)[0].strip().lower()
        return media == "application/json" or media.endswith("+json")

    def render_url(self, context: ActionContext) -> str:
        return _substitute(self.url, context, lambda value: quote(value, safe=""))

    def render_body(self, context: ActionContext) -> bytes | None:
        if self.body is None:
            return None
        return _substitute(self.body, context, _json_escape if self.is_json else str).encode()

    def describe(self) -> dict[str, Any]:
        parts = urlsplit(self.url)
        return {
            "method": self.method,
            # Scheme and host only: paths and queries of webhook URLs are often secret.
            "target": f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
            "headers": sorted(self.headers),
        }


@dataclass(frozen=True)
class WebhookAction:
    """Call a webhook to switch the integration off (and another to switch it back on).

    Success is a 2xx answer. 5xx, 429, timeouts and connection errors are retried up to
    ``max_attempts`` times (``canarywatch.retrying``: capped exponential backoff);
    other answers (a 401, a 404) mean the configuration is wrong and are not retried.
    Redirects are not followed: a kill request silently turned into a GET elsewhere
    must not count as done.

    With ``secret``, every request carries ``X-Canarywatch-Signature: t=<unix>,v1=<hex>``
    (see ``shutdown.signing``); each request also carries ``Idempotency-Key:
    <integration>/<incident>/<step>`` so a receiver can fold retries together.
    """

    name: str
    request: WebhookRequest
    resume_request: WebhookRequest | None = None
    secret: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.secret is not None and (not isinstance(self.secret, str) or not self.secret):
            raise ActionConfigError("secret", "must be a non-empty string (or omitted for unsigned requests)")
        _check_seconds("timeout", self.timeout)
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ActionConfigError("max_attempts", "must be an integer >= 1")
        if not (0 < self.base_delay <= self.max_delay) or not math.isfinite(self.max_delay):
            raise ActionConfigError("base_delay", "need 0 < base_delay <= max_delay, both finite")

    @property
    def kind(self) -> str:
        return "webhook"

    @property
    def reversible(self) -> bool:
        return self.resume_request is not None

    async def engage(self, context: ActionContext) -> ActionOutcome:
        return await self._call(self.request, context)

    async def resume(self, context: ActionContext) -> ActionOutcome:
        if self.resume_request is None:
            return ActionOutcome(False, "no resume request configured", attempts=0)
        return await self._call(self.resume_request, context)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "engage": self.request.describe(),
            "resume": None if self.resume_request is None else self.resume_request.describe(),
            "signed": self.secret is not None,
        }

    async def _call(self, request: WebhookRequest, context: ActionContext) -> ActionOutcome:
        # aiohttp where a webhook is sent: reading a config of webhook actions (a bad
        # `canarywatch run --config` exits 2 at once) needs none of it.
        import aiohttp

        from canarywatch.outbound import outbound_session

        url = request.render_url(context)
        body = request.render_body(context)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        made = 0

        async def attempt(number: int) -> ActionOutcome:
            nonlocal made
            made = number
            try:
                async with session.request(
                    request.method,
                    url,
                    data=body,
                    headers=self._headers(request, context, body),
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    # Only the start of the body: it is a detail for humans, not data.
                    text = (await response.content.read(4 * _DETAIL_LIMIT)).decode(errors="replace")
            except (aiohttp.ClientError, TimeoutError) as error:
                raise RetryLater(
                    f"{type(error).__name__}" + (f": {_one_line(str(error))}" if str(error) else "")
                ) from error
            if 200 <= status < 300:
                return ActionOutcome(True, f"HTTP {status}", number)
            detail = f"HTTP {status}" + (f": {_one_line(text)}" if text.strip() else "")
            if status == 429 or status >= 500:
                raise RetryLater(detail)
            if 300 <= status < 400:
                detail += " (redirects are not followed: configure the final URL)"
            return ActionOutcome(False, detail, number)

        async with outbound_session() as session:
            try:
                return await retry(
                    attempt,
                    backoff=Backoff(self.base_delay, self.max_delay),
                    max_attempts=self.max_attempts,
                    what=f"kill-switch webhook {self.name!r} {context.step}",
                )
            except RetryLater as error:
                return ActionOutcome(False, error.detail, made)

    def _headers(self, request: WebhookRequest, context: ActionContext, body: bytes | None) -> dict[str, str]:
        headers = {
            "Idempotency-Key": f"{context.integration}/{context.incident}/{context.step}",
            "X-Canarywatch-Step": str(context.step),
        }
        if body is not None:
            headers["Content-Type"] = request.content_type
        headers.update(request.headers)
        if self.secret is not None:
            # Signed per attempt: a retry minutes later must not carry a stale timestamp.
            headers[SIGNATURE_HEADER] = sign(self.secret, body or b"", int(time.time()))
        return headers


# ---------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandAction:
    """Run a program to switch the integration off (and optionally another to resume).

    ``argv`` is a list run without a shell: nothing in the kill reason can be
    interpreted as shell syntax. The command learns about the kill from its environment:
    ``CANARYWATCH_INTEGRATION``, ``CANARYWATCH_INCIDENT``, ``CANARYWATCH_REASON`` and
    ``CANARYWATCH_STEP`` (``engage``/``resume``), on top of canarywatch's own
    environment and ``env``. Success is exit status 0 within ``timeout`` seconds; on
    timeout the command's whole process group is killed, so a script's children do not
    outlive it.
    """

    name: str
    # Arguments may carry tokens (``--token=…``): kept out of repr, like ``describe()`` does.
    argv: Sequence[str] = field(repr=False)
    resume_argv: Sequence[str] | None = field(default=None, repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 30.0
    cwd: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "argv", _checked_argv("argv", self.argv))
        if self.resume_argv is not None:
            object.__setattr__(self, "resume_argv", _checked_argv("resume_argv", self.resume_argv))
        if not isinstance(self.env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise ActionConfigError("env", "must map variable names to string values")
        object.__setattr__(self, "env", dict(self.env))
        _check_seconds("timeout", self.timeout)

    @property
    def kind(self) -> str:
        return "command"

    @property
    def reversible(self) -> bool:
        return self.resume_argv is not None

    async def engage(self, context: ActionContext) -> ActionOutcome:
        return await self._run(self.argv, context)

    async def resume(self, context: ActionContext) -> ActionOutcome:
        if self.resume_argv is None:
            return ActionOutcome(False, "no resume command configured", attempts=0)
        return await self._run(self.resume_argv, context)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            # The program only: arguments may carry tokens.
            "engage": {"program": self.argv[0]},
            "resume": None if self.resume_argv is None else {"program": self.resume_argv[0]},
        }

    async def _run(self, argv: Sequence[str], context: ActionContext) -> ActionOutcome:
        env = {
            **os.environ,
            **self.env,
            "CANARYWATCH_INTEGRATION": context.integration,
            "CANARYWATCH_INCIDENT": context.incident,
            # An environment value cannot hold NUL; a reason is text for humans anyway.
            "CANARYWATCH_REASON": context.reason.replace("\0", " "),
            "CANARYWATCH_STEP": str(context.step),
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.cwd,
                start_new_session=True,  # its own process group, killable as a whole
            )
        except OSError as error:
            return ActionOutcome(False, f"cannot start {argv[0]!r}: {error.strerror or error}")
        try:
            async with asyncio.timeout(self.timeout):
                _, stderr = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            return ActionOutcome(False, f"timed out after {self.timeout:g} s; process group killed")
        if process.returncode == 0:
            return ActionOutcome(True, "exit 0")
        # The stderr tail is what a human needs to fix the command; bounded, one line.
        tail = _one_line(stderr.decode(errors="replace")[-_DETAIL_LIMIT:])
        status = process.returncode
        what = f"killed by signal {-status}" if status is not None and status < 0 else f"exit {status}"
        return ActionOutcome(False, f"{what}: {tail}" if tail else what)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _substitute(template: str, context: ActionContext, escape: Callable[[str], str]) -> str:
    values = {"integration": context.integration, "incident": context.incident, "reason": context.reason}
    return _PLACEHOLDER.sub(lambda match: escape(values[match.group(1)]), template)


def _json_escape(value: str) -> str:
    return json.dumps(value)[1:-1]


def _check_template(field_name: str, template: str) -> None:
    if not isinstance(template, str):
        raise ActionConfigError(field_name, "must be a string")
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) not in PLACEHOLDERS:
            accepted = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
            raise ActionConfigError(field_name, f"unknown placeholder {match.group(0)}; accepted: {accepted}")


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise ActionConfigError("name", "must be 1-64 characters of letters, digits, '.', '_', '-'")


def _check_seconds(field_name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ActionConfigError(field_name, "must be a finite number of seconds > 0")


def _checked_argv(field_name: str, argv: object) -> tuple[str, ...]:
    if isinstance(argv, str):
        raise ActionConfigError(field_name, "must be a list of arguments, not a shell string")
    if not isinstance(argv, Sequence) or not argv or not all(isinstance(a, str) for a in argv):
        raise ActionConfigError(field_name, "must be a non-empty list of strings (program first)")
    if not argv[0]:
        raise ActionConfigError(field_name, "the program (first element) must not be empty")
    for index, argument in enumerate(argv):
        if "\x00" in argument:
            # exec cannot pass it: the command would fail only when the kill switch runs.
            raise ActionConfigError(f"{field_name}[{index}]", "must not contain a NUL character")
    return tuple(argv)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _DETAIL_LIMIT else f"{flat[: _DETAIL_LIMIT - 3]}..."
