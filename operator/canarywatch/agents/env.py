"""The agents' process environment: ``CANARYWATCH_*`` settings parsed once, signals, logging.

``canarywatch.api.AgentEnv`` names every variable (its docstring says what each holds):
the manifest builders (``controller.manifests``) write them and this module reads them.
Everything is checked at startup and an error names the variable to fix
(``CANARYWATCH_FPS: expected a number > 0, got 'fast'``), so a pod with a bad spec
crash-loops with a message that says why instead of starting half an agent. Secret
values (tokens, ``headersFrom`` headers) never appear in a message or a repr.

Besides the builders' contract, a few optional variables tune the agents; their
defaults are what a pod wants:

    CANARYWATCH_METRICS_HOST            address /metrics listens on (default 0.0.0.0)
    CANARYWATCH_POLICY                  JSON: the CameraIntegration's spec.policy, for the
                                        viewer's confirmation and de-duplication (default:
                                        the built-in policy)
    CANARYWATCH_INCIDENT_QUIET_SECONDS  a viewer's open incident is closed locally after this
                                        long without a frame of its verdict, so a leak that
                                        comes back later is a new LeakIncident (default 60)
    CANARYWATCH_INCIDENT_REPEAT_SECONDS ... and after this long open, so a leak that goes on
                                        is reported again: the operator attaches it to its
                                        open incident and does not take the integration for
                                        clean. Keep it below resolveAfterCleanSeconds
                                        (default 120)
    CANARYWATCH_SUMMARY_SECONDS         interval of the status summary in the log (default 60)
    CANARYWATCH_LOG_LEVEL               DEBUG, INFO (default), WARNING, ERROR
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canarywatch.api import (
    HUB_PROTOCOLS,
    KIND_INTEGRATION,
    KIND_PROBE,
    PATHS,
    TRANSPORT_ENDPOINTS,
    WATCHED_ENDPOINTS,
    AgentEnv,
    AgentRole,
    endpoint_schemes,
)
from canarywatch.camera.streams import StreamPublish
from canarywatch.errors import FieldError
from canarywatch.incidents.policy import Policy, PolicyError
from canarywatch.markers.keyring import Keyring, KeyringError, validate_tenant_id
from canarywatch.spec import SHAPERS, Schema
from canarywatch.viewer.http import AdapterConfigError, RenderedRequest, RequestTemplate, TokenSource
from canarywatch.viewer.network import NetworkProfile, ProfileError

__all__ = [
    "TRANSPORT_ENDPOINTS",
    "AgentSettings",
    "CameraSettings",
    "Endpoint",
    "EnvError",
    "ViewerSettings",
    "configure_logging",
    "load_keyring",
    "run_until_signalled",
]


class EnvError(FieldError):
    """A variable is missing or invalid; ``variable`` names it. Never carries a secret."""

    @property
    def variable(self) -> str:
        """The variable's name: ``field``, by the name this error's callers use."""
        return self.field


@dataclass(frozen=True)
class Endpoint:
    """One request template of the adapter, with its ``headersFrom`` resolved."""

    template: RequestTemplate
    #: header -> value from a Secret (``headersFrom``); added after rendering, so a
    #: secret is never mistaken for a template with placeholders.
    secret_headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def render(self, *, tenant: str, camera: str, token: str) -> RenderedRequest:
        request = self.template.render(tenant=tenant, camera=camera, token=token)
        if not self.secret_headers:
            return request
        return dataclasses.replace(request, headers={**request.headers, **self.secret_headers})


@dataclass(frozen=True)
class AgentSettings:
    """What both agents read."""

    def token(self, tenant: str) -> str:
        """``tenant``'s token, or "" when the integration needs none."""
        return self.tokens.get(tenant, "")

    role: AgentRole
    namespace: str
    pod_name: str
    node_name: str | None
    integration: str
    probe: str
    #: every tenant of the probe: the cameras of each run here, or each watches here.
    tenants: tuple[str, ...]
    cameras: int
    fps: float
    keyring_dir: Path
    #: tenant -> its token; a tenant without one (no tokenSecretRef) is absent.
    tokens: Mapping[str, str] = field(repr=False)
    metrics_host: str
    metrics_port: int
    summary_seconds: float


@dataclass(frozen=True)
class CameraSettings(AgentSettings):
    width: int
    height: int
    #: set when cameras upload their frames; otherwise the integration pulls from
    #: ``serve_host:serve_port``.
    push: Endpoint | None
    serve_host: str
    serve_port: int
    #: set when cameras hold a stream open (``camera.publish``); rendered by ``stream_endpoint``.
    publish: StreamPublish | None = None
    stream_endpoint: Endpoint | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> CameraSettings:
        common = _common(environ, AgentRole.CAMERA)
        adapter = _adapter(environ)
        push: Endpoint | None = None
        publish: StreamPublish | None = None
        stream_endpoint: Endpoint | None = None
        serve_host, serve_port = "0.0.0.0", 0
        if sum(key in adapter for key in ("push", "serve", "publish")) != 1:
            raise EnvError(
                _ADAPTER, "expected exactly one of push, serve or publish (the integration's camera block)"
            )
        if "push" in adapter:
            push = _endpoint(adapter["push"], "push", environ)
        elif "publish" in adapter:
            raw = dict(_object(adapter["publish"], f"{_ADAPTER}.publish"))
            try:
                publish = StreamPublish.from_mapping(raw, where=f"{_ADAPTER}.publish")
            except AdapterConfigError as error:
                raise EnvError(error.field, error.message) from None
            request: dict[str, Any] = {k: raw[k] for k in ("url", "headers", "headersFrom") if k in raw}
            request["method"] = "POST"
            stream_endpoint = _endpoint(request, "publish", environ, schemes=publish.template.schemes)
        else:
            serve = _object(adapter["serve"], f"{_ADAPTER}.serve")
            serve_host = str(serve.get("host", "0.0.0.0"))
            serve_port = _ranged_int(serve.get("port"), f"{_ADAPTER}.serve.port", 1, 65535)
            if serve_port == common["metrics_port"]:
                raise EnvError(
                    _ADAPTER, f"serve.port {serve_port} is {AgentEnv.METRICS_PORT} too; they must differ"
                )
        return cls(
            **common,
            width=_int(environ, AgentEnv.FRAME_WIDTH, *_PROBE.bounds("frameSize.width")),
            height=_int(environ, AgentEnv.FRAME_HEIGHT, *_PROBE.bounds("frameSize.height")),
            push=push,
            serve_host=serve_host,
            serve_port=serve_port,
            publish=publish,
            stream_endpoint=stream_endpoint,
        )


@dataclass(frozen=True)
class ViewerSettings(AgentSettings):
    #: each network profile, named as in the probe (labels, incidents), as the viewer's
    #: own ``Shaper`` applies it: the whole profile, or with ``tc`` only what netem
    #: cannot do (stalls), the kernel having imposed the rest.
    profiles: tuple[NetworkProfile, ...]
    shaper: str
    transports: tuple[str, ...]
    freshness_seconds: float
    #: path -> its own freshness bound (the probe's ``freshnessByPath``).
    freshness_by_path: Mapping[str, float]
    #: adapter endpoint name (``snapshot``, ``authzProbe``...) -> endpoint.
    endpoints: Mapping[str, Endpoint]
    poll_interval: float
    #: the hub fulfillment's device id of canary camera ``{camera}`` (``viewer.hub.device``).
    hub_device: str
    hub_protocol: str
    policy: Policy
    incident_quiet_seconds: float
    incident_repeat_seconds: float

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ViewerSettings:
        common = _common(environ, AgentRole.VIEWER)
        shaper = _required(environ, AgentEnv.NETWORK_SHAPER)
        if shaper not in SHAPERS:
            raise EnvError(AgentEnv.NETWORK_SHAPER, f"expected one of {', '.join(SHAPERS)}, got {shaper!r}")
        transports = _list(environ, AgentEnv.TRANSPORTS)
        adapter = _adapter(environ)
        endpoints: dict[str, Endpoint] = {}
        for transport in transports:
            endpoint = TRANSPORT_ENDPOINTS.get(transport)
            if endpoint is None:
                raise EnvError(
                    AgentEnv.TRANSPORTS,
                    f"unknown transport {transport!r}; accepted: {', '.join(TRANSPORT_ENDPOINTS)}",
                )
            if endpoint not in adapter:
                raise EnvError(_ADAPTER, f"transport {transport} needs the {endpoint} endpoint")
            raw = adapter[endpoint]
            if endpoint == "hub":  # the request, without what the hub viewer itself reads
                raw = {k: v for k, v in _object(raw, f"{_ADAPTER}.hub").items() if k not in _HUB_SETTINGS}
            endpoints[endpoint] = _endpoint(raw, endpoint, environ, schemes=endpoint_schemes(endpoint))
        if not endpoints.keys() & set(WATCHED_ENDPOINTS):
            raise EnvError(AgentEnv.TRANSPORTS, f"needs at least one of {', '.join(WATCHED_ENDPOINTS)}")
        return cls(
            **common,
            profiles=_profiles(environ, shaper),
            shaper=shaper,
            transports=transports,
            freshness_seconds=_number(environ, AgentEnv.FRESHNESS_SECONDS),
            freshness_by_path=_freshness_by_path(environ),
            endpoints=endpoints,
            hub_device=_hub_device(adapter),
            hub_protocol=_hub_protocol(adapter),
            poll_interval=_number_value(
                adapter.get("pollInterval", _POLL_INTERVAL["default"]),
                f"{_ADAPTER}.pollInterval",
                low=_POLL_INTERVAL["minimum"],
                high=_POLL_INTERVAL["maximum"],
            ),
            policy=_policy(environ),
            incident_quiet_seconds=_number(environ, AgentEnv.INCIDENT_QUIET_SECONDS, default=60.0),
            incident_repeat_seconds=_number(environ, AgentEnv.INCIDENT_REPEAT_SECONDS, default=120.0),
        )


def load_keyring(
    directory: Path, *, require: tuple[str, ...], variable: str = AgentEnv.KEYRING_DIR
) -> Keyring:
    """Every ``<tenant>.json`` keyring in ``directory`` merged into one; each tenant of
    ``require`` must be in it. A tenant in two files must have the same key in both."""
    try:
        files = sorted(path for path in directory.glob("*.json") if path.is_file())
    except OSError as error:
        raise EnvError(variable, f"cannot list {directory}: {error.strerror}") from None
    keys: dict[str, bytes] = {}
    for path in files:
        try:
            keyring = Keyring.from_json(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise EnvError(variable, f"cannot read {path.name}: {error.strerror}") from None
        except (KeyringError, UnicodeDecodeError) as error:
            raise EnvError(variable, f"{path.name} is not a keyring: {error}") from None
        for tenant in keyring:
            key = keyring.key(tenant)
            if keys.setdefault(tenant, key) != key:
                raise EnvError(variable, f"{path.name} holds a different key for tenant {tenant!r}")
    missing = [tenant for tenant in require if tenant not in keys]
    if missing:
        found = ", ".join(sorted(keys)) or "no keyring files"
        raise EnvError(variable, f"no key for {', '.join(missing)} in {directory} (found {found})")
    return Keyring(keys)


async def run_until_signalled(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """``run(stop)`` with ``stop`` set on SIGTERM (the kubelet stopping the pod) or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, stop.set)
    await run(stop)


def configure_logging(environ: Mapping[str, str]) -> None:
    """Log lines to stderr (the container log) at ``CANARYWATCH_LOG_LEVEL``."""
    level = environ.get(AgentEnv.LOG_LEVEL, "INFO").strip().upper()
    logging.basicConfig(
        level=level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO",
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# -- pieces -------------------------------------------------------------------------------

_ADAPTER = AgentEnv.ADAPTER
#: The ranges (and the poll interval's default) are the CRDs': the builders pass on
#: values the API server has checked, and a hand-made environment gets the same checks.
_PROBE = Schema.of(KIND_PROBE)
_POLL_INTERVAL = Schema.of(KIND_INTEGRATION).field("viewer.pollInterval")


def _common(environ: Mapping[str, str], role: AgentRole) -> dict[str, Any]:
    """The fields of ``AgentSettings``, as keyword arguments."""
    declared = _required(environ, AgentEnv.ROLE)
    if declared != role.value:
        raise EnvError(AgentEnv.ROLE, f"this is the {role.value} agent, but the role is {declared!r}")
    tenants = _list(environ, AgentEnv.TENANTS)
    for tenant in tenants:
        _tenant_id(tenant, AgentEnv.TENANTS)
    return {
        "role": role,
        "namespace": _required(environ, AgentEnv.NAMESPACE),
        "pod_name": _required(environ, AgentEnv.POD_NAME),
        # Empty until the pod is scheduled, and in local runs.
        "node_name": environ.get(AgentEnv.NODE_NAME) or None,
        "integration": _required(environ, AgentEnv.INTEGRATION),
        "probe": _required(environ, AgentEnv.PROBE),
        "tenants": tenants,
        "cameras": _int(environ, AgentEnv.CAMERAS, *_PROBE.bounds("camerasPerTenant")),
        "fps": _number(environ, AgentEnv.FPS),
        "keyring_dir": Path(_required(environ, AgentEnv.KEYRING_DIR)),
        "tokens": _tokens(environ, tenants),
        "metrics_host": environ.get(AgentEnv.METRICS_HOST) or "0.0.0.0",
        "metrics_port": _int(environ, AgentEnv.METRICS_PORT, 0, 65535),
        "summary_seconds": _number(environ, AgentEnv.SUMMARY_SECONDS, default=60.0),
    }


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise EnvError(name, "required (set by the Deployment canarywatch builds)")
    return value


def _list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in _required(environ, name).split(","))
    if not all(items):
        raise EnvError(name, "expected a comma-separated list without empty items")
    if len(set(items)) != len(items):
        raise EnvError(name, "lists an item twice")
    return items


def _tenant_id(value: str, name: str) -> str:
    try:
        return validate_tenant_id(value)
    except KeyringError as error:
        raise EnvError(name, str(error).split(": ", 1)[-1]) from None


def _int(environ: Mapping[str, str], name: str, low: int, high: int) -> int:
    raw = _required(environ, name)
    try:
        value = int(raw)
    except ValueError:
        raise EnvError(name, f"expected an integer, got {raw!r}") from None
    return _ranged_int(value, name, low, high)


def _ranged_int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EnvError(where, f"expected an integer from {low} to {high}, got {value!r}")
    return value


def _number(environ: Mapping[str, str], name: str, *, default: float | None = None) -> float:
    if default is not None and not environ.get(name, "").strip():
        return default
    raw = _required(environ, name)
    try:
        value = float(raw)
    except ValueError:
        raise EnvError(name, f"expected a number > 0, got {raw!r}") from None
    return _number_value(value, name)


def _number_value(value: object, where: str, *, low: float = 0.0, high: float = math.inf) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
        or not low <= value <= high
    ):
        bound = f"from {low:g} to {high:g}" if low > 0 else "> 0"
        raise EnvError(where, f"expected a number {bound}, got {value!r}")
    return float(value)


def _freshness_by_path(environ: Mapping[str, str]) -> dict[str, float]:
    name = AgentEnv.FRESHNESS_BY_PATH
    if not environ.get(name, "").strip():
        return {}
    bounds = _object(_json(environ, name), name)
    unknown = sorted(str(path) for path in bounds if path not in PATHS)
    if unknown:
        raise EnvError(name, f"unknown path {unknown[0]!r}; accepted: {', '.join(PATHS)}")
    return {str(path): _number_value(value, f"{name}.{path}") for path, value in bounds.items()}


def _json(environ: Mapping[str, str], name: str) -> Any:
    raw = _required(environ, name)
    try:
        return json.loads(raw)
    except ValueError as error:
        raise EnvError(name, f"not valid JSON: {error}") from None


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise EnvError(where, f"expected a JSON object, got {type(value).__name__}")
    return value


def _adapter(environ: Mapping[str, str]) -> Mapping[str, Any]:
    return _object(_json(environ, _ADAPTER), _ADAPTER)


_HUB_SETTINGS = ("protocol", "device")


def _hub_protocol(adapter: Mapping[str, Any]) -> str:
    hub = adapter.get("hub")
    protocol = hub.get("protocol", "google") if isinstance(hub, Mapping) else "google"
    if protocol not in HUB_PROTOCOLS:
        raise EnvError(f"{_ADAPTER}.hub.protocol", f"expected one of {', '.join(HUB_PROTOCOLS)}")
    return str(protocol)


def _hub_device(adapter: Mapping[str, Any]) -> str:
    hub = adapter.get("hub")
    device = hub.get("device", "{camera}") if isinstance(hub, Mapping) else "{camera}"
    if not isinstance(device, str) or "{camera}" not in device:
        raise EnvError(f"{_ADAPTER}.hub.device", "expected a device id template with {camera}")
    return device


def _endpoint(
    raw: object, name: str, environ: Mapping[str, str], *, schemes: tuple[str, ...] = ("http", "https")
) -> Endpoint:
    where = f"{_ADAPTER}.{name}"
    spec = dict(_object(raw, where))
    headers_from = _object(spec.pop("headersFrom", {}), f"{where}.headersFrom")
    try:
        template = RequestTemplate.from_mapping(spec, where=where, schemes=schemes)
    except AdapterConfigError as error:
        raise EnvError(error.field, error.message) from None
    secret_headers: dict[str, str] = {}
    for header, source in headers_from.items():
        try:
            secret_headers[str(header)] = TokenSource.from_value(
                source, where=f"{where}.headersFrom.{header}"
            ).resolve(environ)
        except AdapterConfigError as error:
            # "...headersFrom.X-Key.env: environment variable CANARYWATCH_SECRET_0 is not set"
            variable = source.get("env") if isinstance(source, Mapping) else None
            raise EnvError(
                str(variable) if isinstance(variable, str) else error.field, error.message
            ) from None
    return Endpoint(template, secret_headers)


def _tokens(environ: Mapping[str, str], tenants: tuple[str, ...]) -> dict[str, str]:
    """The token of each tenant with a file in ``TOKEN_DIR`` (re-read by nobody: a
    rotated token reaches the agent with its next rollout)."""
    directory = environ.get(AgentEnv.TOKEN_DIR, "").strip()
    if not directory:
        return {}
    if not Path(directory).is_dir():
        raise EnvError(AgentEnv.TOKEN_DIR, f"cannot read {directory}: not a directory (the tokens' volume)")
    tokens: dict[str, str] = {}
    for tenant in tenants:
        path = Path(directory) / tenant
        if not path.is_file():
            continue
        try:
            tokens[tenant] = TokenSource(file=str(path)).resolve()
        except AdapterConfigError as error:
            raise EnvError(AgentEnv.TOKEN_DIR, f"{tenant}: {error.message}") from None
    return tokens


def _profiles(environ: Mapping[str, str], shaper: str) -> tuple[NetworkProfile, ...]:
    """Each profile of ``NETWORK_PROFILES``, named as in the probe."""
    name = AgentEnv.NETWORK_PROFILES
    specs = _object(_json(environ, name), name)
    if not specs:
        raise EnvError(name, "expected at least one network profile")
    if shaper == "tc" and len(specs) != 1:
        raise EnvError(name, "a tc-shaped viewer pod runs exactly one profile (netem shapes the whole pod)")
    profiles = []
    for profile_name, spec in specs.items():
        where = f"{name}.{profile_name}"
        if not isinstance(spec, str | Mapping):
            raise EnvError(where, "expected a preset name or a JSON object (NetworkProfile.from_spec)")
        try:
            profile = NetworkProfile.from_spec(spec, where=where)
        except ProfileError as error:
            raise EnvError(error.field, error.message) from None  # the field path under the variable
        if shaper == "tc":
            # netem has imposed bandwidth, latency, jitter and loss on the pod's interface.
            profile = NetworkProfile(
                profile.name, stall_probability=profile.stall_probability, stall_s=profile.stall_s
            )
        # A custom profile made from a preset carries the preset's name; streams, labels
        # and incidents use the probe's name for it.
        profiles.append(dataclasses.replace(profile, name=str(profile_name)))
    return tuple(profiles)


def _policy(environ: Mapping[str, str]) -> Policy:
    name = AgentEnv.POLICY
    if not environ.get(name, "").strip():
        return Policy()
    try:
        return Policy.from_mapping(_json(environ, name), where=name)
    except PolicyError as error:
        raise EnvError(error.field, error.message) from None
