"""The standalone configuration file: the CRDs' spec, validated with the CRDs' schemas.

``integration`` is a CameraIntegration's ``spec`` and ``probe`` a CanaryProbe's, read
through ``canarywatch.spec`` exactly as the operator reads them: the CRD's
``openAPIV3Schema`` (types, ranges, enums, unknown fields), its ``default:`` values,
then the same typed readers. What a file on a laptop needs and a cluster object does not
is an explicit extension, listed in ``STANDALONE_EXTENSIONS`` and applied to the CRDs'
schemas here; fields that only mean something to the operator are refused with a hint.

Every error names the field by its path (``probe.tenants[1].token``) and, where the
set is closed, the accepted values, so ``canarywatch run`` exits 2 with a message a
user can act on instead of starting half a monitor.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from canarywatch.api import (
    KIND_INTEGRATION,
    KIND_PROBE,
    TRANSPORT_ENDPOINTS,
    WATCHED_ENDPOINTS,
    endpoint_schemes,
)
from canarywatch.camera.streams import StreamPublish
from canarywatch.incidents.events import ROUTING_KEY_LENGTH
from canarywatch.incidents.pages import PageOptions
from canarywatch.incidents.policy import Policy, PolicyError
from canarywatch.shutdown import CommandAction, WebhookAction
from canarywatch.spec import ProbeSpec, Schema, SpecError, read_probe, spec_schema
from canarywatch.standalone.fields import ConfigError, token_source
from canarywatch.standalone.kill_switch import kill_switch_actions
from canarywatch.userfiles import BoundedInputError, read_yaml_file
from canarywatch.viewer.http import AdapterConfigError, RequestTemplate, TokenSource
from canarywatch.viewer.network import NetworkProfile

__all__ = [
    "KUBERNETES_ONLY",
    "MAX_CONFIG_BYTES",
    "STANDALONE_EXTENSIONS",
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

_NAME = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
#: A configuration is a few kilobytes; anything this large is the wrong file.
MAX_CONFIG_BYTES = 256 * 1024
_TOKEN_FROM = {"type": "object", "description": "{env: NAME} or {file: PATH} (TokenSource)"}
_SECRET = {"type": "string", "minLength": 1}

#: Where the file differs from the CRDs' spec, and why. A Secret reference becomes the
#: value itself or where to read it (``{env: NAME}`` / ``{file: PATH}``); the rest is
#: what only a process outside a cluster needs.
STANDALONE_EXTENSIONS: Mapping[str, str] = {
    "integration.name": "the object's name in a cluster (metadata.name)",
    "integration.camera.serve.host": "the address cameras listen on (a pod: every interface)",
    "integration.camera.serve.port": "0 (any free port) is allowed and the default: no Service in front",
    "integration.killSwitch.webhook": "one webhook action named webhook, without the actions list",
    "integration.killSwitch.command": "one command action named command (argv, resumeArgv, timeout)",
    "integration.killSwitch.actions[].type": "webhook or command: no cluster to scale, cut or patch",
    "integration.killSwitch.*.webhook.secret | secretFrom": "for signingSecretRef",
    "integration.killSwitch.*.webhook.resume.headers": "the resume call's headers",
    "integration.pagerduty.routingKey | routingKeyFrom": "for routingKeySecretRef",
    "integration.*.headers": "may hold credentials: the file is the user's, not a cluster object "
    "(the CRD's CEL rules refuse literal credentials there)",
    "probe.name": "the object's name in a cluster (metadata.name); default probe",
    "probe.keyring": "a keyring file from `keys generate` (default: fresh keys per run)",
    "probe.tenants[].token | tokenFrom": "for tokenSecretRef",
    "probe.customNetworkProfiles[].shaper": "application only: tc needs NET_ADMIN in a pod",
    "metrics.port": "where /metrics and /healthz are served",
}

#: CRD fields a file may not set: they mean something only to the operator.
KUBERNETES_ONLY: Mapping[str, Mapping[str, str]] = {
    "integration": {
        "suspended": "the operator's switch by hand; standalone resumes with the kill switch's resume",
        "resolveAfterCleanSeconds": "the operator's resolve loop",
        "incidentHistoryLimit": "LeakIncidents the operator keeps; standalone keeps its incidents file",
        "maintenance": "a pause of the operator's pods: a run you do not want is one you do not start",
    },
    "probe": {
        "integrationRef": "the integration block is the integration",
        "placement": "standalone runs no pods",
        "resources": "standalone runs no pods",
        "viewersPerProfile": "standalone runs one viewer per stream",
        "maintenance": "a pause of the operator's pods: a run you do not want is one you do not start",
    },
}

#: A Secret reference of the CRD -> what the file uses instead.
_SECRET_REFERENCES = {
    "tokenSecretRef": "use token or tokenFrom: {env: NAME} | {file: PATH}",
    "headersFrom": "put the header in headers",
    "urlSecretRef": "use url",
    "signingSecretRef": "use secret or secretFrom: {env: NAME} | {file: PATH}",
    "routingKeySecretRef": "use routingKey or routingKeyFrom: {env: NAME} | {file: PATH}",
}


@dataclass(frozen=True)
class TenantConfig:
    id: str
    token: TokenSource


@dataclass(frozen=True)
class ProbeConfig:
    """The ``probe`` block: the CanaryProbe spec (``spec``, read by ``canarywatch.spec``
    as the operator reads it) with each tenant's token and the keyring file."""

    spec: ProbeSpec
    tenants: tuple[TenantConfig, ...]
    keyring: str | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cameras_per_tenant(self) -> int:
        return self.spec.cameras

    @property
    def fps(self) -> float:
        return self.spec.fps

    @property
    def width(self) -> int:
        return self.spec.width

    @property
    def height(self) -> int:
        return self.spec.height

    @property
    def freshness_seconds(self) -> float:
        return self.spec.freshness_seconds

    @property
    def transports(self) -> tuple[str, ...]:
        return self.spec.transports

    @property
    def network_profiles(self) -> tuple[NetworkProfile, ...]:
        return tuple(
            p.network_profile(where=f"probe.customNetworkProfiles[{p.name}]") for p in self.spec.profiles
        )


@dataclass(frozen=True)
class CameraPublish:
    push: RequestTemplate | None = None
    serve_host: str = "127.0.0.1"
    serve_port: int | None = None  # set: serve snapshots/MJPEG for the integration to pull
    #: set: cameras hold a stream open (RTSP, RTMP, a long MJPEG POST).
    stream: StreamPublish | None = None


@dataclass(frozen=True)
class ViewerPaths:
    snapshot: RequestTemplate | None = None
    mjpeg: RequestTemplate | None = None
    events: RequestTemplate | None = None
    authz_probe: RequestTemplate | None = None
    hls: RequestTemplate | None = None
    #: a smart display's way in: the fulfillment request (POST, the tenant's token).
    hub: RequestTemplate | None = None
    #: the fulfillment's device id of canary camera ``{camera}`` (``viewer.hub.device``).
    hub_device: str = "{camera}"
    #: the hub protocol (``viewer.hub.protocol``: google, alexa).
    hub_protocol: str = "google"
    rtsp: RequestTemplate | None = None
    llhls: RequestTemplate | None = None
    mp4: RequestTemplate | None = None
    #: a WHEP endpoint (the SDP offer POSTed, ``Authorization: Bearer {token}``).
    whep: RequestTemplate | None = None
    poll_interval: float = 0.5

    def endpoints(self) -> dict[str, RequestTemplate]:
        """Configured endpoints by the adapter's name (``snapshot`` … ``authzProbe``)."""
        named = {
            "snapshot": self.snapshot,
            "mjpeg": self.mjpeg,
            "events": self.events,
            "authzProbe": self.authz_probe,
            "hls": self.hls,
            "hub": self.hub,
            "rtsp": self.rtsp,
            "llhls": self.llhls,
            "mp4": self.mp4,
            "whep": self.whep,
        }
        return {name: template for name, template in named.items() if template is not None}


@dataclass(frozen=True)
class PagerDutyConfig:
    routing_key: TokenSource
    url: str | None = None
    options: PageOptions = field(default_factory=PageOptions)  # links, autoResolve

    def key(self) -> str:
        """The routing key now (read from its variable or file), checked: PagerDuty
        refuses any other length, which would surface only when a leak is paged."""
        try:
            key = self.routing_key.resolve()
        except AdapterConfigError as e:
            raise ConfigError(e.field, e.message) from None
        if len(key) != ROUTING_KEY_LENGTH or not key.isascii() or not key.isalnum():
            raise ConfigError(
                self.routing_key.where,
                f"expected the {ROUTING_KEY_LENGTH}-character integration key of an Events API v2 "
                f"integration (letters and digits), got {len(key)} characters",
            )
        return key


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
        if not isinstance(doc, Mapping):
            raise ConfigError("<root>", f"expected a mapping, got {type(doc).__name__}")
        accepted = ("integration", "metrics", "probe")
        unknown = sorted(str(k) for k in doc if k not in accepted)
        if unknown:
            raise ConfigError(unknown[0], f"unknown field; accepted: {', '.join(accepted)}")
        integration = _integration(doc.get("integration"))
        probe = _probe(doc.get("probe"), integration.name)
        _check_transports(probe, integration.viewer)
        metrics = _read(_metrics_schema(), doc.get("metrics", {}), "metrics")
        return cls(integration, probe, metrics.get("port"))

    def viewer_endpoints(self) -> dict[str, RequestTemplate]:
        """The endpoints the probe's transports fetch through (as a pod viewer gets them)."""
        configured = self.integration.viewer.endpoints()
        return {TRANSPORT_ENDPOINTS[t]: configured[TRANSPORT_ENDPOINTS[t]] for t in self.probe.transports}


def _check_transports(probe: ProbeConfig, viewer: ViewerPaths) -> None:
    """Each of ``probe.transports`` needs its endpoint, as the operator's builders demand."""
    configured = viewer.endpoints()
    for index, transport in enumerate(probe.transports):
        endpoint = TRANSPORT_ENDPOINTS[transport]
        if endpoint not in configured:
            raise ConfigError(
                f"probe.transports[{index}]", f"transport {transport} needs integration.viewer.{endpoint}"
            )
    if not {TRANSPORT_ENDPOINTS[t] for t in probe.transports} & set(WATCHED_ENDPOINTS):
        raise ConfigError("probe.transports", f"needs at least one of {', '.join(WATCHED_ENDPOINTS)}")


def load_config(path: str | Path) -> StandaloneConfig:
    """Read, bound and validate the file (see ``canarywatch.userfiles`` for the limits)."""
    try:
        doc = read_yaml_file(path, limit=MAX_CONFIG_BYTES)
    except BoundedInputError as e:
        raise ConfigError("<file>", str(e)) from None
    return StandaloneConfig.from_mapping(doc)


# -- the schemas: the CRDs' with the standalone extensions ----------------------------------


def _properties(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The ``properties`` of the object at the dotted ``path`` (``[]`` steps into items)."""
    node = schema
    for key in filter(None, path.split(".")):
        node = node["items"] if key == "[]" else node["properties"][key]
    properties: dict[str, Any] = node["properties"]
    return properties


def _own(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy sharing nothing: the CRDs' YAML anchors make several fields one object, and
    an extension of one must not change the others."""
    copied: dict[str, Any] = json.loads(json.dumps(schema))
    return copied


@functools.cache
def _integration_schema() -> Schema:
    spec = _own(spec_schema(KIND_INTEGRATION))
    spec["properties"]["name"] = {"type": "string", "pattern": _NAME}
    spec["required"] = ["name", *spec["required"]]
    serve = _properties(spec, "camera.serve")
    serve["host"] = {"type": "string", "minLength": 1, "default": "127.0.0.1"}
    serve["port"] |= {"minimum": 0, "default": 0}
    for endpoint in (
        "camera.push",
        "camera.publish",
        "viewer.snapshot",
        "viewer.mjpeg",
        "viewer.authzProbe",
        "viewer.events",
        "viewer.hls",
        "viewer.llhls",
        "viewer.mp4",
        "viewer.hub",
        "viewer.whep",
    ):
        del _properties(spec, endpoint)["headersFrom"]

    action = _properties(spec, "killSwitch.actions.[]")
    for kind in ("scale", "networkPolicy", "patch"):
        del action[kind]
    action["type"]["enum"] = ["webhook", "command"]
    webhook = action["webhook"]
    webhook.pop("x-kubernetes-validations")  # url xor urlSecretRef
    webhook["required"] = ["url"]
    for key in ("urlSecretRef", "headersFrom", "signingSecretRef"):
        del webhook["properties"][key]
    webhook["properties"] |= {"secret": _SECRET, "secretFrom": _TOKEN_FROM}
    resume = webhook["properties"]["resume"]
    resume.pop("x-kubernetes-validations")
    resume["required"] = ["url"]
    del resume["properties"]["urlSecretRef"]
    resume["properties"]["headers"] = copy.deepcopy(webhook["properties"]["headers"])
    argv = {"type": "array", "minItems": 1, "items": {"type": "string"}}
    action["command"] = {
        "type": "object",
        "required": ["argv"],
        "properties": {
            "argv": argv,
            "resumeArgv": argv,
            "timeout": {"type": "number", "minimum": 0.1, "maximum": 3600, "default": 30},
        },
    }
    _properties(spec, "killSwitch").update(webhook=copy.deepcopy(webhook), command=action["command"])

    pagerduty = spec["properties"]["pagerduty"]
    pagerduty.pop("required")
    for key in ("routingKeySecretRef", "severity", "component", "group"):
        del pagerduty["properties"][key]
    pagerduty["properties"] |= {"routingKey": _SECRET, "routingKeyFrom": _TOKEN_FROM}
    return Schema(spec)


@functools.cache
def _probe_schema() -> Schema:
    spec = _own(spec_schema(KIND_PROBE))
    spec["required"] = [key for key in spec["required"] if key != "integrationRef"]
    spec["properties"] |= {
        "name": {"type": "string", "pattern": _NAME, "default": "probe"},
        "keyring": {"type": "string", "minLength": 1},
    }
    tenant = _properties(spec, "tenants.[]")
    del tenant["tokenSecretRef"]
    tenant |= {"token": {"type": "string", "minLength": 1}, "tokenFrom": _TOKEN_FROM}
    _properties(spec, "customNetworkProfiles.[]")["shaper"]["enum"] = ["application"]
    return Schema(spec)


@functools.cache
def _metrics_schema() -> Schema:
    return Schema(
        {"type": "object", "properties": {"port": {"type": "integer", "minimum": 0, "maximum": 65535}}}
    )


def _read(schema: Schema, obj: object, where: str) -> dict[str, Any]:
    if obj is None:
        raise ConfigError(where, "required")
    section = KUBERNETES_ONLY.get(where, {})
    if isinstance(obj, Mapping):
        for key, why in section.items():
            if key in obj:
                raise ConfigError(f"{where}.{key}", f"a Kubernetes-only field ({why})")
    try:
        raw: dict[str, Any] = schema.read(obj, where=where)
    except SpecError as e:
        raise _with_hint(e) from e
    return raw


def _with_hint(error: SpecError) -> ConfigError:
    name = error.field.rsplit(".", 1)[-1]
    hint = _SECRET_REFERENCES.get(name) if error.message.startswith("unknown field") else None
    if hint is not None:
        return ConfigError(error.field, f"a Secret reference, for Kubernetes only: {hint}")
    return ConfigError(error.field, error.message)


# -- sections ------------------------------------------------------------------------------


def _integration(obj: object) -> IntegrationConfig:
    where = "integration"
    raw = _read(_integration_schema(), obj, where)
    camera = _camera(raw["camera"], f"{where}.camera")
    viewer = _viewer(raw["viewer"], f"{where}.viewer")
    actions = kill_switch_actions(raw.get("killSwitch", {}), f"{where}.killSwitch")
    try:
        policy = Policy.from_mapping(raw["policy"], where=f"{where}.policy")
    except PolicyError as e:
        raise ConfigError(e.field, e.message) from e
    pagerduty = None
    if "pagerduty" in raw:
        pd = raw["pagerduty"]
        key = pd.get("routingKey", pd.get("routingKeyFrom"))
        if key is None:
            raise ConfigError(f"{where}.pagerduty.routingKey", "required (or routingKeyFrom: {env|file})")
        pagerduty = PagerDutyConfig(
            token_source(key, f"{where}.pagerduty.routingKey"),
            _pagerduty_url(pd, where),
            PageOptions.from_spec(pd),
        )
        if pagerduty.routing_key.literal is not None:
            pagerduty.key()  # a variable or a file is read when the monitor starts
    # The CRD's CEL rule on spec.killSwitch.actions.
    if policy.mode.value == "enforce" and not actions:
        raise ConfigError(f"{where}.killSwitch", "policy mode enforce needs at least one kill-switch action")
    return IntegrationConfig(raw["name"], camera, viewer, actions, policy, pagerduty)


def _pagerduty_url(raw: Mapping[str, Any], where: str) -> str | None:
    url: str | None = raw.get("url")
    if url is None:
        return None
    # The schema's pattern has checked the shape; a port must also be one.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        raise ConfigError(f"{where}.pagerduty.url", "not a valid URL (its port?)") from None
    if not parts.hostname:
        raise ConfigError(f"{where}.pagerduty.url", "expected an absolute http(s) URL with a host")
    return url


def _camera(raw: Mapping[str, Any], where: str) -> CameraPublish:
    # The CRD's CEL rule on spec.camera.
    if sum(key in raw for key in ("push", "serve", "publish")) != 1:
        raise ConfigError(
            where,
            "give exactly one of push (we upload), serve (the integration pulls) or publish (we stream)",
        )
    if "push" in raw:
        return CameraPublish(push=_template(raw["push"], f"{where}.push"))
    if "publish" in raw:
        publish = raw["publish"]
        if "{camera}" not in publish["url"]:  # the CRD's CEL rule on camera.publish
            raise ConfigError(
                f"{where}.publish.url", "every canary camera needs its own stream: use {camera}"
            )
        try:
            return CameraPublish(stream=StreamPublish.from_mapping(publish, where=f"{where}.publish"))
        except AdapterConfigError as e:
            raise ConfigError(e.field, e.message) from e
    return CameraPublish(serve_host=raw["serve"]["host"], serve_port=raw["serve"]["port"])


def _viewer(raw: Mapping[str, Any], where: str) -> ViewerPaths:
    paths = {
        key: _template(raw[key], f"{where}.{key}", per_camera=key != "events", schemes=endpoint_schemes(key))
        for key in (*WATCHED_ENDPOINTS, "authzProbe")
        if key in raw and key != "hub"
    }
    hub = raw.get("hub")
    if hub is not None:
        if "{camera}" not in hub["device"]:  # the CRD's CEL rule on viewer.hub.device
            raise ConfigError(f"{where}.hub.device", "every canary camera is its own device: use {camera}")
        # the fulfillment is one URL for all cameras, always POSTed (protocol and device
        # are the viewer's, not the request's)
        request = {key: hub[key] for key in ("url", "headers") if key in hub}
        paths["hub"] = _template({**request, "method": "POST"}, f"{where}.hub", per_camera=False)
    # The CRD's CEL rule on spec.viewer.
    if not paths.keys() & set(WATCHED_ENDPOINTS):
        raise ConfigError(where, f"give at least one of {', '.join(WATCHED_ENDPOINTS)}")
    return ViewerPaths(
        snapshot=paths.get("snapshot"),
        mjpeg=paths.get("mjpeg"),
        events=paths.get("events"),
        authz_probe=paths.get("authzProbe"),
        hls=paths.get("hls"),
        hub=paths.get("hub"),
        hub_device=str(hub["device"]) if hub is not None else "{camera}",
        hub_protocol=str(hub["protocol"]) if hub is not None else "google",
        rtsp=paths.get("rtsp"),
        llhls=paths.get("llhls"),
        mp4=paths.get("mp4"),
        whep=paths.get("whep"),
        poll_interval=float(raw["pollInterval"]),
    )


def _probe(obj: object, integration: str) -> ProbeConfig:
    where = "probe"
    raw = _read(_probe_schema(), obj, where)
    try:
        spec = read_probe(raw, name=raw["name"], integration=integration, where=where, schema=_probe_schema())
    except SpecError as e:
        raise ConfigError(e.field, e.message) from e
    tenants: list[TenantConfig] = []
    for i, entry in enumerate(raw["tenants"]):
        at = f"{where}.tenants[{i}]"
        if ("token" in entry) == ("tokenFrom" in entry):
            raise ConfigError(
                f"{at}.token", "give exactly one of token or tokenFrom: {env: NAME} | {file: PATH}"
            )
        key = "token" if "token" in entry else "tokenFrom"
        tenants.append(TenantConfig(entry["id"], token_source(entry[key], f"{at}.{key}")))
    return ProbeConfig(spec, tuple(tenants), raw.get("keyring"))


# -- the core's own readers ------------------------------------------------------------------


def _template(
    obj: Mapping[str, Any],
    where: str,
    *,
    per_camera: bool = True,
    schemes: tuple[str, ...] = ("http", "https"),
) -> RequestTemplate:
    if (
        per_camera
        and "{camera}" not in obj["url"]
        and not any("{camera}" in value for value in obj.get("headers", {}).values())
    ):
        # The CRD's CEL rule on camera.push and the per-camera viewer endpoints.
        raise ConfigError(
            f"{where}.url",
            "every canary camera needs its own endpoint: use {camera} in the url (or in a header)",
        )
    try:
        return RequestTemplate.from_mapping(obj, where=where, schemes=schemes)
    except AdapterConfigError as e:
        raise ConfigError(e.field, e.message) from e
