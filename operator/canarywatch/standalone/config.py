"""The standalone configuration file: same vocabulary as the CRDs, validated up front.

Every error names the field by its path (`probe.tenants[1].token`) and, where the
set is closed, the accepted values, so `canarywatch run` exits 2 with a message a
user can act on instead of starting half a monitor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from canarywatch.errors import FieldError
from canarywatch.incidents.policy import Policy, PolicyError
from canarywatch.shutdown import ActionConfigError, CommandAction, WebhookAction, WebhookRequest
from canarywatch.viewer.http import AdapterConfigError, RequestTemplate, TokenSource
from canarywatch.viewer.network import NetworkProfile, ProfileError

__all__ = [
    "CameraPublish",
    "ConfigError",
    "IntegrationConfig",
    "PagerDutyConfig",
    "ProbeConfig",
    "StandaloneConfig",
    "TenantConfig",
    "ViewerPaths",
    "load_config",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class ConfigError(FieldError):
    """Invalid configuration; `field` is the path of the offending value."""


@dataclass(frozen=True)
class TenantConfig:
    id: str
    token: TokenSource


@dataclass(frozen=True)
class ProbeConfig:
    name: str
    tenants: tuple[TenantConfig, ...]
    cameras_per_tenant: int = 1
    fps: float = 2.0
    width: int = 640
    height: int = 360
    network_profiles: tuple[NetworkProfile, ...] = ()
    freshness_seconds: float = 10.0
    keyring: str | None = None


@dataclass(frozen=True)
class CameraPublish:
    push: RequestTemplate | None = None
    serve_host: str = "127.0.0.1"
    serve_port: int | None = None  # set: serve snapshots/MJPEG for the integration to pull


@dataclass(frozen=True)
class ViewerPaths:
    snapshot: RequestTemplate | None = None
    mjpeg: RequestTemplate | None = None
    events: RequestTemplate | None = None
    authz_probe: RequestTemplate | None = None
    poll_interval: float = 0.5


@dataclass(frozen=True)
class PagerDutyConfig:
    routing_key: TokenSource
    url: str | None = None


@dataclass(frozen=True)
class IntegrationConfig:
    name: str
    camera: CameraPublish
    viewer: ViewerPaths
    kill_actions: tuple[WebhookAction | CommandAction, ...] = ()
    policy: Policy = field(default_factory=Policy)
    pagerduty: PagerDutyConfig | None = None


@dataclass(frozen=True)
class StandaloneConfig:
    integration: IntegrationConfig
    probe: ProbeConfig
    metrics_port: int | None = None

    @classmethod
    def from_mapping(cls, doc: object) -> StandaloneConfig:
        root = _mapping(doc, "<root>", {"integration", "probe", "metrics"})
        integration = _integration(root.get("integration"), "integration")
        probe = _probe(root.get("probe"), "probe")
        metrics = _mapping(root.get("metrics", {}), "metrics", {"port"})
        port = metrics.get("port")
        if port is not None:
            port = _int(port, "metrics.port", 0, 65535)
        return cls(integration, probe, port)


def load_config(path: str | Path) -> StandaloneConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError("<file>", f"cannot read {path}: {e.strerror}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError("<file>", f"{path} is not valid YAML: {e}") from e
    return StandaloneConfig.from_mapping(doc)


# -- sections ------------------------------------------------------------------------------


def _integration(obj: object, where: str) -> IntegrationConfig:
    raw = _mapping(obj, where, {"name", "camera", "viewer", "killSwitch", "policy", "pagerduty"})
    name = _name(raw.get("name"), f"{where}.name")
    camera = _camera(raw.get("camera"), f"{where}.camera")
    viewer = _viewer(raw.get("viewer"), f"{where}.viewer")
    actions = _kill_switch(raw.get("killSwitch"), f"{where}.killSwitch")
    try:
        policy = Policy.from_mapping(raw.get("policy", {}), where=f"{where}.policy")
    except PolicyError as e:
        raise ConfigError(e.field, e.message) from e
    pagerduty = None
    if raw.get("pagerduty") is not None:
        pd = _mapping(raw["pagerduty"], f"{where}.pagerduty", {"routingKey", "routingKeyFrom", "url"})
        key = pd.get("routingKey", pd.get("routingKeyFrom"))
        if key is None:
            raise ConfigError(f"{where}.pagerduty.routingKey", "required (or routingKeyFrom: {env|file})")
        pagerduty = PagerDutyConfig(_token(key, f"{where}.pagerduty.routingKey"), _opt_str(pd, "url", where))
    if policy.mode.value == "enforce" and not actions:
        raise ConfigError(f"{where}.killSwitch", "policy mode enforce needs at least one kill-switch action")
    return IntegrationConfig(name, camera, viewer, actions, policy, pagerduty)


def _camera(obj: object, where: str) -> CameraPublish:
    raw = _mapping(obj, where, {"push", "serve"})
    if ("push" in raw) == ("serve" in raw):
        raise ConfigError(where, "give exactly one of push (we upload) or serve (the integration pulls)")
    if "push" in raw:
        return CameraPublish(push=_template(raw["push"], f"{where}.push"))
    serve = _mapping(raw["serve"], f"{where}.serve", {"host", "port"})
    return CameraPublish(
        serve_host=str(serve.get("host", "127.0.0.1")),
        serve_port=_int(serve.get("port", 0), f"{where}.serve.port", 0, 65535),
    )


def _viewer(obj: object, where: str) -> ViewerPaths:
    raw = _mapping(obj, where, {"snapshot", "mjpeg", "events", "authzProbe", "pollInterval"})
    paths = {
        key: _template(raw[key], f"{where}.{key}")
        for key in ("snapshot", "mjpeg", "events", "authzProbe")
        if key in raw
    }
    if not paths.keys() & {"snapshot", "mjpeg", "events"}:
        raise ConfigError(where, "give at least one of snapshot, mjpeg, events")
    interval = _number(raw.get("pollInterval", 0.5), f"{where}.pollInterval", 0.05, 3600)
    return ViewerPaths(
        snapshot=paths.get("snapshot"),
        mjpeg=paths.get("mjpeg"),
        events=paths.get("events"),
        authz_probe=paths.get("authzProbe"),
        poll_interval=interval,
    )


def _kill_switch(obj: object, where: str) -> tuple[WebhookAction | CommandAction, ...]:
    """`{webhook: …, command: …}` shorthand, or the CRD's `{actions: [{name, type, <type>: …}]}`."""
    if obj is None:
        return ()
    raw = _mapping(obj, where, {"webhook", "command", "actions"})
    actions: list[WebhookAction | CommandAction] = []
    if "webhook" in raw:
        actions.append(_webhook(raw["webhook"], f"{where}.webhook", "webhook"))
    if "command" in raw:
        actions.append(_command(raw["command"], f"{where}.command", "command"))
    listed = raw.get("actions", [])
    if not isinstance(listed, list):
        raise ConfigError(f"{where}.actions", "expected a list of {name, type, webhook | command}")
    for i, entry in enumerate(listed):
        at = f"{where}.actions[{i}]"
        item = _mapping(entry, at, {"name", "type", "webhook", "command"})
        name = _name(item.get("name"), f"{at}.name")
        kind = item.get("type")
        if kind not in ("webhook", "command") or kind not in item:
            raise ConfigError(
                f"{at}.type", "standalone mode runs webhook or command actions, with a matching block"
            )
        parse = _webhook if kind == "webhook" else _command
        actions.append(parse(item[kind], f"{at}.{kind}", name))
    names = [a.name for a in actions]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.actions", f"action names must be unique, got {names}")
    return tuple(actions)


def _webhook(obj: object, where: str, name: str) -> WebhookAction:
    raw = _mapping(
        obj, where, {"method", "url", "headers", "body", "secret", "secretFrom", "resume", "timeout"}
    )

    def request(spec: Mapping[str, Any], at: str) -> WebhookRequest:
        if "url" not in spec:
            raise ConfigError(f"{at}.url", "required")
        try:
            return WebhookRequest(
                url=spec["url"],
                method=spec.get("method", "POST"),
                headers=spec.get("headers") or {},
                body=spec.get("body"),
            )
        except ActionConfigError as e:
            raise ConfigError(f"{at}.{e.field}", e.message) from e

    resume = None
    if raw.get("resume") is not None:
        resume = request(
            _mapping(raw["resume"], f"{where}.resume", {"method", "url", "headers", "body"}),
            f"{where}.resume",
        )
    secret = raw.get("secret", raw.get("secretFrom"))
    try:
        return WebhookAction(
            name=name,
            request=request(raw, where),
            resume_request=resume,
            secret=None if secret is None else _token(secret, f"{where}.secret").resolve(),
            timeout=_number(raw.get("timeout", 10), f"{where}.timeout", 0.1, 600),
        )
    except AdapterConfigError as e:
        raise ConfigError(e.field, e.message) from e
    except ActionConfigError as e:
        raise ConfigError(f"{where}.{e.field}", e.message) from e


def _command(obj: object, where: str, name: str) -> CommandAction:
    raw = _mapping(obj, where, {"argv", "resumeArgv", "timeout"})
    try:
        return CommandAction(
            name=name,
            argv=_str_list(raw.get("argv"), f"{where}.argv"),
            resume_argv=None
            if raw.get("resumeArgv") is None
            else _str_list(raw["resumeArgv"], f"{where}.resumeArgv"),
            timeout=_number(raw.get("timeout", 30), f"{where}.timeout", 0.1, 3600),
        )
    except ActionConfigError as e:
        raise ConfigError(f"{where}.{e.field}", e.message) from e


def _probe(obj: object, where: str) -> ProbeConfig:
    raw = _mapping(
        obj,
        where,
        {
            "name",
            "tenants",
            "camerasPerTenant",
            "fps",
            "frameSize",
            "networkProfiles",
            "freshnessSeconds",
            "keyring",
        },
    )
    tenants_raw = raw.get("tenants")
    if not isinstance(tenants_raw, list) or not tenants_raw:
        raise ConfigError(f"{where}.tenants", "expected a non-empty list of {id, token | tokenFrom}")
    tenants: list[TenantConfig] = []
    for i, entry in enumerate(tenants_raw):
        at = f"{where}.tenants[{i}]"
        t = _mapping(entry, at, {"id", "token", "tokenFrom"})
        tenant_id = _name(t.get("id"), f"{at}.id")
        if any(existing.id == tenant_id for existing in tenants):
            raise ConfigError(f"{at}.id", f"tenant {tenant_id!r} is listed twice")
        if ("token" in t) == ("tokenFrom" in t):
            raise ConfigError(
                f"{at}.token", "give exactly one of token or tokenFrom: {env: NAME} | {file: PATH}"
            )
        source = t["token"] if "token" in t else t["tokenFrom"]
        field_name = f"{at}.token" if "token" in t else f"{at}.tokenFrom"
        if "token" in t and not isinstance(source, str):
            raise ConfigError(field_name, "expected a string (use tokenFrom for env or file)")
        tenants.append(TenantConfig(tenant_id, _token(source, field_name)))
    size = _mapping(raw.get("frameSize", {}), f"{where}.frameSize", {"width", "height"})
    # poor is in the default on purpose: the 2019 leak only reached hubs on weak links
    profiles_raw = raw.get("networkProfiles", ["good", "poor"])
    if not isinstance(profiles_raw, list) or not profiles_raw:
        raise ConfigError(
            f"{where}.networkProfiles", "expected a non-empty list of good|poor|extreme or {...}"
        )
    profiles = []
    for i, spec in enumerate(profiles_raw):
        try:
            profiles.append(NetworkProfile.from_spec(spec, where=f"{where}.networkProfiles[{i}]"))
        except ProfileError as e:
            raise ConfigError(e.field, e.message) from e
    keyring = raw.get("keyring")
    if keyring is not None and not isinstance(keyring, str):
        raise ConfigError(f"{where}.keyring", "expected a path to a keyring JSON file")
    return ProbeConfig(
        name=_name(raw.get("name", "probe"), f"{where}.name"),
        tenants=tuple(tenants),
        cameras_per_tenant=_int(raw.get("camerasPerTenant", 1), f"{where}.camerasPerTenant", 1, 16),
        fps=_number(raw.get("fps", 2), f"{where}.fps", 0.1, 30),
        width=_int(size.get("width", 640), f"{where}.frameSize.width", 64, 3840),
        height=_int(size.get("height", 360), f"{where}.frameSize.height", 36, 2160),
        network_profiles=tuple(profiles),
        freshness_seconds=_number(raw.get("freshnessSeconds", 10), f"{where}.freshnessSeconds", 0.5, 86400),
        keyring=keyring,
    )


# -- scalar helpers --------------------------------------------------------------------------


def _mapping(obj: object, where: str, accepted: set[str]) -> Mapping[str, Any]:
    if obj is None:
        raise ConfigError(where, "required")
    if not isinstance(obj, Mapping):
        raise ConfigError(where, f"expected a mapping, got {type(obj).__name__}")
    unknown = sorted(str(k) for k in obj if k not in accepted)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown field; accepted: {', '.join(sorted(accepted))}")
    return obj


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(where, f"expected a name of 1-63 letters, digits, '.', '_', '-', got {value!r}")
    return value


def _int(value: object, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(where, f"expected an integer in {lo}..{hi}, got {value!r}")
    return value


def _number(value: object, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(where, f"expected a number in {lo:g}..{hi:g}, got {value!r}")
    return float(value)


def _opt_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key}", "expected a string")
    return value


def _str_list(value: object, where: str) -> Sequence[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(where, "expected a non-empty list of strings (argv, no shell)")
    return value


def _template(obj: object, where: str) -> RequestTemplate:
    try:
        return RequestTemplate.from_mapping(obj, where=where)
    except AdapterConfigError as e:
        raise ConfigError(e.field, e.message) from e


def _token(value: object, where: str) -> TokenSource:
    try:
        return TokenSource.from_value(value, where=where)
    except AdapterConfigError as e:
        raise ConfigError(e.field, e.message) from e
