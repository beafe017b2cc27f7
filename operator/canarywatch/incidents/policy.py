"""What to do about a verdict: the response policy and the engine that applies it (pure).

A ``Policy`` is configuration: the mode (``enforce``, ``alert-only``, ``dry-run``), one
``Rule`` per verdict, and a cap on automatic kills. The defaults are DESIGN.md's
verdict table::

    cross_tenant  incident, page, kill   on 1 frame (a valid foreign signature is proof)
    foreign       incident, page, kill   on 3 of the last 5 frames of one viewer stream
    misrouted     incident, page         on 1 frame
    forged        incident, page         on 1 frame
    stale         warning (no page)      on 3 of the last 5 frames
    degraded, undecodable, ok            counted only (metrics)

``foreign`` waits for confirmation because it is the one leak verdict not backed by a
signature: one garbled frame from a flaky network must not switch an integration off
for every user. ``stale`` waits because a single late frame is ordinary buffering; a
cache that keeps serving old frames is the symptom.

``PolicyEngine`` turns ``(stream_key, verdict, at)`` into a ``Decision``. It is stateful
(per-stream frame windows, open incidents, recent kills) but pure: no clock, no I/O,
time comes in as ``at``. It de-duplicates a leak storm into one open incident per
(integration, verdict) until ``resolve()``; later confirmed frames attach to it as
occurrences and neither page nor kill again. It never engages the kill switch more
than ``kill_cap.max_kills`` times per ``kill_cap.window_seconds``: past that it pages
with "kill cap reached" and leaves the decision to a human, because a detector that
keeps switching integrations off is more likely broken than the integrations.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from canarywatch.errors import FieldError
from canarywatch.verdicts import Verdict

__all__ = [
    "DEFAULT_RULES",
    "MAX_CONFIRMATION_FRAMES",
    "Confirmation",
    "Decision",
    "IncidentKey",
    "KillCap",
    "Mode",
    "OpenIncident",
    "Policy",
    "PolicyEngine",
    "PolicyError",
    "Rule",
]

# A confirmation window longer than this is a typo, and every viewer stream keeps one.
MAX_CONFIRMATION_FRAMES = 100


class PolicyError(FieldError):
    """A policy setting is invalid; ``field`` is its dotted path."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: object) -> str:
    # Bounded: config values end up in CR status and logs.
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


class Mode(enum.StrEnum):
    ENFORCE = "enforce"  # page and engage the kill switch as the rules say
    ALERT_ONLY = "alert-only"  # page, never engage the kill switch
    DRY_RUN = "dry-run"  # record incidents only; every decision says what enforce would do


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Act once ``frames`` of the last ``of_last`` frames of one viewer stream agree."""

    frames: int = 1
    of_last: int = 1

    def __post_init__(self) -> None:
        frames, of_last = self.frames, self.of_last
        if not _is_int(of_last) or not 1 <= of_last <= MAX_CONFIRMATION_FRAMES:
            raise PolicyError("ofLast", f"must be an integer from 1 to {MAX_CONFIRMATION_FRAMES}")
        if not _is_int(frames) or not 1 <= frames <= of_last:
            raise PolicyError("frames", f"must be an integer from 1 to ofLast ({of_last})")


@dataclass(frozen=True, slots=True)
class Rule:
    """The response to one verdict. A rule with no action only counts the frame.

    ``warn`` is for symptoms (``stale``): a warning record and metric, no page. ``page``
    and ``kill`` need ``incident``: a page is the incident's page, and a kill switch
    that nobody is told about is an outage nobody can explain.
    """

    incident: bool = False
    page: bool = False
    kill: bool = False
    warn: bool = False
    confirmation: Confirmation = field(default_factory=Confirmation)

    def __post_init__(self) -> None:
        for name in ("incident", "page", "kill", "warn"):
            if not isinstance(getattr(self, name), bool):
                raise PolicyError(name, f"must be true or false, not {_shown(getattr(self, name))}")
        if not isinstance(self.confirmation, Confirmation):
            raise PolicyError("confirmation", "must be a Confirmation")
        if self.page and not self.incident:
            raise PolicyError("page", "paging needs `incident: true` (a page is an incident's page)")
        if self.kill and not (self.incident and self.page):
            raise PolicyError(
                "kill", "the kill switch needs `incident: true` and `page: true`: someone must be told"
            )
        if self.warn and self.incident:
            raise PolicyError(
                "warn", "`warn` is for verdicts without an incident; an incident already alerts"
            )

    @property
    def acts(self) -> bool:
        """True if a confirmed frame opens (or joins) an incident or a warning."""
        return self.incident or self.warn


_COUNT_ONLY = Rule()
_CONFIRM_3_OF_5 = Confirmation(frames=3, of_last=5)

DEFAULT_RULES: Mapping[Verdict, Rule] = MappingProxyType(
    {
        Verdict.OK: _COUNT_ONLY,
        Verdict.CROSS_TENANT: Rule(incident=True, page=True, kill=True),
        Verdict.FOREIGN: Rule(incident=True, page=True, kill=True, confirmation=_CONFIRM_3_OF_5),
        Verdict.MISROUTED: Rule(incident=True, page=True),
        Verdict.STALE: Rule(warn=True, confirmation=_CONFIRM_3_OF_5),
        Verdict.FORGED: Rule(incident=True, page=True),
        Verdict.DEGRADED: _COUNT_ONLY,
        Verdict.UNDECODABLE: _COUNT_ONLY,
    }
)


@dataclass(frozen=True, slots=True)
class KillCap:
    """At most ``max_kills`` automatic kill-switch engagements per ``window_seconds``."""

    max_kills: int = 3
    window_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not _is_int(self.max_kills) or self.max_kills < 0:
            raise PolicyError("maxKills", "must be an integer >= 0 (0: never engage automatically)")
        seconds = self.window_seconds
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise PolicyError("windowSeconds", "must be a finite number of seconds > 0")

    def exhausted_until(self, kills: Iterable[float], now: float) -> float | None:
        """Until when no automatic kill is allowed, given past kill times; None: one is, or
        ``max_kills`` is 0 (never killing automatically is a choice, not an exhausted cap)."""
        recent = sorted(t for t in kills if t > now - self.window_seconds)
        if self.max_kills == 0 or len(recent) < self.max_kills:
            return None
        # The cap frees up when enough of the recent kills have left the window.
        return recent[len(recent) - self.max_kills] + self.window_seconds


@dataclass(frozen=True)
class Policy:
    """The response policy of one integration (``CameraIntegration.spec.policy``).

    ``rules`` may name only some verdicts; the others keep ``DEFAULT_RULES``.
    """

    mode: Mode = Mode.ENFORCE
    rules: Mapping[Verdict, Rule] = field(default_factory=lambda: DEFAULT_RULES)
    kill_cap: KillCap = field(default_factory=KillCap)

    def __post_init__(self) -> None:
        try:
            mode = Mode(self.mode)
        except ValueError:
            raise PolicyError("mode", _unknown("mode", self.mode, [m.value for m in Mode])) from None
        merged = dict(DEFAULT_RULES)
        for verdict, rule in self.rules.items():
            try:
                merged[Verdict(verdict)] = rule
            except ValueError:
                raise PolicyError(
                    f"rules.{verdict}", _unknown("verdict", verdict, [v.value for v in Verdict])
                ) from None
        if merged[Verdict.OK] != _COUNT_ONLY:
            raise PolicyError("rules.ok", _OK_MESSAGE)
        # Normalised once so the engine sees one shape and nobody mutates it afterwards.
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "rules", MappingProxyType(merged))

    def rule(self, verdict: Verdict) -> Rule:
        return self.rules[verdict]

    @classmethod
    def from_mapping(cls, obj: object, where: str = "integration.policy") -> Policy:
        """Parse the ``policy`` block of a CameraIntegration spec or standalone config.

        Shape (every key optional; a verdict entry overrides only the keys it names)::

            mode: enforce | alert-only | dry-run
            killCap: {maxKills: 3, windowSeconds: 3600}
            verdicts:
              foreign: {incident: true, page: true, kill: true, warn: false,
                        confirmation: {frames: 3, ofLast: 5}}

        Errors are ``PolicyError`` naming the field path under ``where`` and, for closed
        sets, the accepted values.
        """
        if obj is None:
            return cls()
        spec = _mapping(obj, where, ("mode", "killCap", "verdicts"))
        mode = Mode.ENFORCE
        if "mode" in spec:
            try:
                mode = Mode(spec["mode"])
            except ValueError:
                raise PolicyError(
                    f"{where}.mode", _unknown("mode", spec["mode"], [m.value for m in Mode])
                ) from None
        kill_cap = KillCap()
        if "killCap" in spec:
            cap_path = f"{where}.killCap"
            raw_cap = _mapping(spec["killCap"], cap_path, ("maxKills", "windowSeconds"))
            max_kills = _int(raw_cap, "maxKills", cap_path, kill_cap.max_kills)
            window_seconds = _number(raw_cap, "windowSeconds", cap_path, kill_cap.window_seconds)
            try:
                kill_cap = KillCap(max_kills=max_kills, window_seconds=window_seconds)
            except PolicyError as error:
                raise error.within(cap_path) from error
        rules: dict[Verdict, Rule] = {}
        if "verdicts" in spec:
            accepted = [v.value for v in Verdict]
            verdicts_path = f"{where}.verdicts"
            raw_rules = _mapping(spec["verdicts"], verdicts_path, None)
            for name, raw_rule in raw_rules.items():
                try:
                    verdict = Verdict(name)
                except ValueError:
                    raise PolicyError(
                        f"{verdicts_path}.{name}", _unknown("verdict", name, accepted)
                    ) from None
                rules[verdict] = _parse_rule(raw_rule, f"{verdicts_path}.{name}", DEFAULT_RULES[verdict])
                if verdict is Verdict.OK and rules[verdict] != _COUNT_ONLY:
                    raise PolicyError(f"{verdicts_path}.ok", _OK_MESSAGE)
        return cls(mode=mode, rules=rules, kill_cap=kill_cap)

    def to_mapping(self) -> dict[str, Any]:
        """The ``from_mapping`` shape of this policy, every verdict spelt out."""
        return {
            "mode": self.mode.value,
            "killCap": {"maxKills": self.kill_cap.max_kills, "windowSeconds": self.kill_cap.window_seconds},
            "verdicts": {
                verdict.value: {
                    "incident": rule.incident,
                    "page": rule.page,
                    "kill": rule.kill,
                    "warn": rule.warn,
                    "confirmation": {
                        "frames": rule.confirmation.frames,
                        "ofLast": rule.confirmation.of_last,
                    },
                }
                for verdict, rule in self.rules.items()
            },
        }


_OK_MESSAGE = "an `ok` frame is the healthy case; its rule can only count (all actions false)"


def _parse_rule(obj: object, where: str, default: Rule) -> Rule:
    raw = _mapping(obj, where, ("incident", "page", "kill", "warn", "confirmation"))
    flags: dict[str, bool] = {}
    for name in ("incident", "page", "kill", "warn"):
        value = raw.get(name, getattr(default, name))
        if not isinstance(value, bool):
            raise PolicyError(f"{where}.{name}", f"must be true or false, not {_shown(value)}")
        flags[name] = value
    confirmation = default.confirmation
    if "confirmation" in raw:
        path = f"{where}.confirmation"
        raw_confirmation = _mapping(raw["confirmation"], path, ("frames", "ofLast"))
        frames = _int(raw_confirmation, "frames", path, confirmation.frames)
        of_last = _int(raw_confirmation, "ofLast", path, confirmation.of_last)
        try:
            confirmation = Confirmation(frames=frames, of_last=of_last)
        except PolicyError as error:
            raise error.within(path) from error
    try:
        return Rule(**flags, confirmation=confirmation)
    except PolicyError as error:
        raise error.within(where) from error


def _mapping(obj: object, where: str, accepted: Iterable[str] | None) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise PolicyError(where, f"expected a mapping, not {type(obj).__name__}")
    if accepted is not None:
        known = list(accepted)
        for key in obj:
            if key not in known:
                raise PolicyError(f"{where}.{key}", f"unknown setting; accepted: {', '.join(known)}")
    return obj


def _int(raw: Mapping[str, Any], name: str, where: str, default: int) -> int:
    value = raw.get(name, default)
    if not _is_int(value):
        raise PolicyError(f"{where}.{name}", f"must be an integer, not {_shown(value)}")
    return int(value)


def _number(raw: Mapping[str, Any], name: str, where: str, default: float) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{where}.{name}", f"must be a number, not {_shown(value)}")
    return float(value)


def _unknown(what: str, value: object, accepted: Iterable[str]) -> str:
    return f"unknown {what} {_shown(value)}; accepted: {', '.join(accepted)}"


# ---------------------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentKey:
    """One open incident (or warning) per integration and verdict."""

    integration: str
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class OpenIncident:
    key: IncidentKey
    opened_at: float
    occurrences: int  # confirmed frames attached so far, the opening one included


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one frame.

    ``open_incident``/``warn`` are true only for the frame that opens the incident or
    warning; later frames of the same class have ``incident`` set and a growing
    ``occurrences``. ``would_page``/``would_kill`` say what ``enforce`` would do (so a
    dry run can report it); ``page``/``kill`` are what to do now.
    """

    verdict: Verdict
    mode: Mode
    open_incident: bool
    page: bool
    kill: bool
    warn: bool
    reason: str
    incident: IncidentKey | None = None
    occurrences: int = 0
    confirmed: bool = False
    kill_capped: bool = False
    would_page: bool = False
    would_kill: bool = False

    @property
    def dry_run(self) -> bool:
        return self.mode is Mode.DRY_RUN

    @property
    def records(self) -> bool:
        """True if the frame belongs to an incident or warning (opening it or attached)."""
        return self.incident is not None


class PolicyEngine:
    """Applies one integration's ``Policy`` frame by frame.

    ``stream_key`` identifies one viewer stream (any hashable: the probe, viewer tenant
    and camera); confirmation counts the last frames of that stream only, so two
    viewers each seeing one garbled frame do not add up to a confirmed leak.

    After a restart, pass what is already known: ``open_incidents`` (from incident
    records or CR status) so they are not opened and paged twice, and ``recent_kills``
    (times of automatic kills) so the cap still holds.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        integration: str,
        open_incidents: Iterable[OpenIncident] = (),
        recent_kills: Iterable[float] = (),
    ) -> None:
        if not isinstance(integration, str) or not integration:
            raise ValueError("integration must be a non-empty string (the CameraIntegration name)")
        self._integration = integration
        self._policy = policy
        self._streams: dict[Hashable, deque[Verdict]] = {}
        self._open: dict[Verdict, OpenIncident] = {}
        for incident in open_incidents:
            if incident.key.integration != integration:
                raise ValueError(
                    f"open incident {incident.key} belongs to another integration than {integration!r}"
                )
            self._open[incident.key.verdict] = incident
        self._kills: list[float] = sorted(recent_kills)

    @property
    def integration(self) -> str:
        return self._integration

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        """Switch policy (the spec changed) keeping windows, open incidents and kills."""
        self._policy = policy
        depth = self._window_depth()
        self._streams = {key: deque(window, maxlen=depth) for key, window in self._streams.items()}

    @property
    def open_incidents(self) -> tuple[OpenIncident, ...]:
        return tuple(self._open.values())

    def recent_kills(self, at: float) -> tuple[float, ...]:
        """Times of automatic kills still inside the cap window at ``at``."""
        horizon = at - self._policy.kill_cap.window_seconds
        return tuple(t for t in self._kills if t > horizon)

    def decide(self, stream_key: Hashable, verdict: Verdict, at: float) -> Decision:
        """Record one frame of ``stream_key`` received at ``at`` and decide the response."""
        verdict = Verdict(verdict)
        policy = self._policy
        window = self._streams.get(stream_key)
        if window is None:
            window = self._streams[stream_key] = deque(maxlen=self._window_depth())
        window.append(verdict)
        rule = policy.rule(verdict)
        if not rule.acts:
            return Decision(verdict, policy.mode, False, False, False, False, "counted only")
        need = rule.confirmation
        seen = sum(1 for v in itertools.islice(reversed(window), need.of_last) if v is verdict)
        if seen < need.frames:
            return Decision(
                verdict,
                policy.mode,
                False,
                False,
                False,
                False,
                f"{verdict}: {seen} of the last {need.of_last} frames of this stream; "
                f"{need.frames} needed to confirm",
            )
        key = IncidentKey(self._integration, verdict)
        what = "incident" if rule.incident else "warning"
        existing = self._open.get(verdict)
        if existing is not None:
            attached = replace(existing, occurrences=existing.occurrences + 1)
            self._open[verdict] = attached
            return Decision(
                verdict,
                policy.mode,
                False,
                False,
                False,
                False,
                f"attached to the open {verdict} {what} (occurrence {attached.occurrences})",
                incident=key,
                occurrences=attached.occurrences,
                confirmed=True,
            )
        self._open[verdict] = OpenIncident(key, opened_at=at, occurrences=1)
        return self._opening(rule, key, at, what)

    def resolve(self, verdict: Verdict) -> OpenIncident | None:
        """Close the open incident/warning of ``verdict``; the next confirmed frame opens a new one."""
        return self._open.pop(Verdict(verdict), None)

    def forget_stream(self, stream_key: Hashable) -> None:
        """Drop a viewer stream's window (the viewer was removed)."""
        self._streams.pop(stream_key, None)

    def _opening(self, rule: Rule, key: IncidentKey, at: float, what: str) -> Decision:
        policy = self._policy
        mode = policy.mode
        confirmed = f"{key.verdict} confirmed"
        common: dict[str, Any] = {
            "incident": key,
            "occurrences": 1,
            "confirmed": True,
            "would_page": rule.page,
            "would_kill": rule.kill,
        }
        if mode is Mode.DRY_RUN:
            intended = [f"open {what}"] + (["page"] * rule.page) + (["engage the kill switch"] * rule.kill)
            return Decision(
                key.verdict,
                mode,
                rule.incident,
                False,
                False,
                rule.warn,
                f"dry-run: {confirmed}; recorded only, enforce would {', '.join(intended)}",
                **common,
            )
        if mode is Mode.ALERT_ONLY or not rule.kill:
            held = "; alert-only: kill switch left alone" if rule.kill else ""
            action = "paging" if rule.page else "no page"
            return Decision(
                key.verdict,
                mode,
                rule.incident,
                rule.page,
                False,
                rule.warn,
                f"{confirmed}: {what} opened, {action}{held}",
                **common,
            )
        cap = policy.kill_cap
        recent = self.recent_kills(at)
        if len(recent) >= cap.max_kills:
            return Decision(
                key.verdict,
                mode,
                True,
                True,
                False,
                False,
                f"{confirmed}: incident opened, paging; kill cap reached ({len(recent)} automatic "
                f"kills in the last {cap.window_seconds:g} s, cap {cap.max_kills}): "
                "kill switch left to a human",
                kill_capped=True,
                **common,
            )
        self._kills = [*recent, at]
        return Decision(
            key.verdict,
            mode,
            True,
            True,
            True,
            False,
            f"{confirmed}: incident opened, paging, engaging the kill switch",
            **common,
        )

    def _window_depth(self) -> int:
        return max(rule.confirmation.of_last for rule in self._policy.rules.values())
