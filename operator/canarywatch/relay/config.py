"""Typed configuration of the reference relay, built in code or from a YAML mapping.

Every validation error names the offending field (``pull_sources[1].url``) and, where
the set is closed, the accepted values: a relay that refuses to start with a precise
message beats one that starts and leaks for the wrong reason.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from canarywatch.errors import FieldError
from canarywatch.userfiles import BoundedInputError, read_yaml_file

__all__ = [
    "Fault",
    "PullSource",
    "RelayConfig",
    "RelayConfigError",
    "load_relay_config",
]

# Tenant and camera names end up in URL paths and cache keys; keeping them to a
# conservative alphabet means no escaping rules to get wrong anywhere.
NAME_REGEX = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
NAME_PATTERN = re.compile(rf"^{NAME_REGEX}$")


class RelayConfigError(FieldError):
    """A relay configuration value is missing or invalid; ``field`` names it."""


class Fault(enum.StrEnum):
    """The incident class the relay reproduces; ``none`` is the correct relay."""

    NONE = "none"
    XIAOMI_2019 = "xiaomi-2019"
    WYZE_2024 = "wyze-2024"
    STALE_CACHE = "stale-cache"
    IDOR = "idor"

    @classmethod
    def parse(cls, value: object, *, field_name: str = "fault") -> Fault:
        """The fault named by ``value``; the error lists the accepted names."""
        try:
            return cls(str(value))
        except ValueError:
            accepted = ", ".join(f.value for f in cls)
            raise RelayConfigError(field_name, f"unknown fault {value!r}; accepted: {accepted}") from None


@dataclass(frozen=True)
class PullSource:
    """A camera the relay polls for snapshots instead of waiting for pushes."""

    tenant: str
    camera: str
    url: str
    # Often carries the camera's API key: kept out of repr so it never reaches logs.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # None: use the relay-wide ``pull_interval_seconds``.
    interval_seconds: float | None = None


@dataclass(frozen=True)
class RelayConfig:
    """Everything the relay needs to start; immutable once running.

    The active fault starts as ``fault`` and can be switched at runtime through the
    admin API; the rest is fixed for the process lifetime.
    """

    #: tenant name -> that tenant's bearer token (cameras and viewers use the same one).
    tenants: Mapping[str, str] = field(repr=False)
    #: bearer token for ``/v3/admin/*``; must differ from every tenant token.
    admin_token: str = field(repr=False)
    #: the fault active at startup.
    fault: Fault = Fault.NONE
    #: an event is raised on a camera's first frame and on every N-th frame after it.
    event_every_frames: int = 10
    #: how long, after an outage ends, ``wyze-2024`` keeps the scrambled owner map.
    wyze_window_seconds: float = 60.0
    #: how long a viewer may be served a cached snapshot before it is refreshed.
    snapshot_ttl_seconds: float = 0.5
    #: under ``stale-cache``, the TTL the snapshot cache really uses; None never
    #: refreshes (served frames age without bound), a number models a mis-set TTL.
    stale_ttl_seconds: float | None = None
    #: largest accepted camera upload, in bytes (413 above it).
    max_frame_bytes: int = 2 * 1024 * 1024
    #: JPEG quality of the low-bandwidth variant served to slow viewers.
    low_variant_quality: int = 30
    #: width of event thumbnails (height keeps the frame's aspect ratio).
    thumbnail_width: int = 320
    #: how many events the relay remembers, oldest dropped first.
    event_retention: int = 1000
    #: cameras to poll, in addition to the ones that push.
    pull_sources: tuple[PullSource, ...] = ()
    #: default polling interval for ``pull_sources``.
    pull_interval_seconds: float = 1.0
    #: length of one HLS segment (a window of a camera's frames).
    hls_segment_seconds: float = 2.0
    #: segments a live media playlist lists.
    hls_playlist_segments: int = 3
    #: Low-Latency HLS parts per segment (``…/hls/ll.m3u8``): a part is this fraction
    #: of a segment's window, served as soon as its window is over.
    hls_parts_per_segment: int = 4
    #: how long a stream URL handed to a hub (``GetCameraStream``) stays valid.
    stream_url_seconds: float = 600.0
    #: the RTSP server (the URIs Alexa's InitializeCameraStreams hands out): its port
    #: (0: any free one; None: no RTSP server) and address.
    rtsp_port: int | None = None
    rtsp_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self._validate()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RelayConfig:
        """Build from a parsed YAML/JSON mapping whose keys are the field names."""
        if not isinstance(data, Mapping):
            raise RelayConfigError("<root>", "expected a mapping of relay settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise RelayConfigError(unknown[0], f"unknown setting; accepted: {', '.join(sorted(known))}")
        for required in ("tenants", "admin_token"):
            if required not in data:
                raise RelayConfigError(required, "required")
        kwargs: dict[str, Any] = dict(data)
        tenants = data["tenants"]
        if not isinstance(tenants, Mapping):
            raise RelayConfigError("tenants", "expected a mapping of tenant name to token")
        kwargs["tenants"] = {str(k): v for k, v in tenants.items()}
        if "fault" in data:
            kwargs["fault"] = Fault.parse(data["fault"])
        if "pull_sources" in data:
            kwargs["pull_sources"] = _parse_pull_sources(data["pull_sources"])
        return cls(**kwargs)

    def _validate(self) -> None:
        if not isinstance(self.tenants, Mapping) or not self.tenants:
            raise RelayConfigError("tenants", "at least one tenant is required")
        seen_tokens: set[str] = set()
        for tenant, token in self.tenants.items():
            _check_name(f"tenants.{tenant}", tenant)
            if not isinstance(token, str) or not token:
                raise RelayConfigError(f"tenants.{tenant}", "token must be a non-empty string")
            if token in seen_tokens:
                # Two tenants sharing a token would make attribution ambiguous.
                raise RelayConfigError(f"tenants.{tenant}", "token is used by another tenant")
            seen_tokens.add(token)
        if not isinstance(self.admin_token, str) or not self.admin_token:
            raise RelayConfigError("admin_token", "must be a non-empty string")
        if self.admin_token in seen_tokens:
            raise RelayConfigError("admin_token", "must differ from every tenant token")
        # Callers in code may pass a fault name, a dict or a list; normalise once so the
        # rest of the relay sees one type and nobody can mutate the config afterwards.
        object.__setattr__(self, "tenants", MappingProxyType(dict(self.tenants)))
        if not isinstance(self.fault, Fault):
            object.__setattr__(self, "fault", Fault.parse(self.fault))
        _check_int("event_every_frames", self.event_every_frames, low=1)
        _check_seconds("wyze_window_seconds", self.wyze_window_seconds, allow_zero=True)
        _check_seconds("snapshot_ttl_seconds", self.snapshot_ttl_seconds, allow_zero=True)
        if self.stale_ttl_seconds is not None:
            _check_seconds("stale_ttl_seconds", self.stale_ttl_seconds, allow_zero=False)
        _check_int("max_frame_bytes", self.max_frame_bytes, low=64)
        _check_int("low_variant_quality", self.low_variant_quality, low=1, high=100)
        _check_int("thumbnail_width", self.thumbnail_width, low=16, high=4096)
        _check_int("event_retention", self.event_retention, low=1)
        _check_seconds("pull_interval_seconds", self.pull_interval_seconds, allow_zero=False)
        _check_seconds("hls_segment_seconds", self.hls_segment_seconds, allow_zero=False)
        _check_int("hls_playlist_segments", self.hls_playlist_segments, low=1, high=20)
        _check_int("hls_parts_per_segment", self.hls_parts_per_segment, low=1, high=16)
        _check_seconds("stream_url_seconds", self.stream_url_seconds, allow_zero=False)
        if self.rtsp_port is not None:
            _check_int("rtsp_port", self.rtsp_port, low=0, high=65535)
        object.__setattr__(self, "pull_sources", tuple(self.pull_sources))
        for index, source in enumerate(self.pull_sources):
            _check_pull_source(f"pull_sources[{index}]", source, self.tenants)


def load_relay_config(path: str | Path) -> RelayConfig:
    """Read a YAML file whose top level is the relay settings mapping."""
    try:
        # The same bounds as `canarywatch run`'s file (see canarywatch.userfiles).
        data = read_yaml_file(path, limit=256 * 1024)
    except BoundedInputError as error:
        raise RelayConfigError("<file>", str(error)) from None
    if data is None:
        raise RelayConfigError("<root>", f"{path} is empty")
    return RelayConfig.from_mapping(data)


def _parse_pull_sources(raw: object) -> tuple[PullSource, ...]:
    if not isinstance(raw, list):
        raise RelayConfigError("pull_sources", "expected a list of {tenant, camera, url}")
    accepted = {f.name for f in fields(PullSource)}
    sources = []
    for index, item in enumerate(raw):
        where = f"pull_sources[{index}]"
        if not isinstance(item, Mapping):
            raise RelayConfigError(where, "expected a mapping with tenant, camera and url")
        for key in item:
            if key not in accepted:
                raise RelayConfigError(
                    f"{where}.{key}", f"unknown setting; accepted: {', '.join(sorted(accepted))}"
                )
        for required in ("tenant", "camera", "url"):
            if required not in item:
                raise RelayConfigError(f"{where}.{required}", "required")
        headers = item.get("headers", {})
        if not isinstance(headers, Mapping):
            raise RelayConfigError(f"{where}.headers", "expected a mapping of header to value")
        sources.append(
            PullSource(
                tenant=str(item["tenant"]),
                camera=str(item["camera"]),
                url=str(item["url"]),
                headers={str(k): str(v) for k, v in headers.items()},
                interval_seconds=item.get("interval_seconds"),
            )
        )
    return tuple(sources)


def _check_pull_source(where: str, source: PullSource, tenants: Mapping[str, str]) -> None:
    if source.tenant not in tenants:
        raise RelayConfigError(f"{where}.tenant", f"unknown tenant {source.tenant!r}")
    _check_name(f"{where}.camera", source.camera)
    if not source.url.startswith(("http://", "https://")):
        raise RelayConfigError(f"{where}.url", f"expected an http(s) URL, got {source.url!r}")
    if source.interval_seconds is not None:
        _check_seconds(f"{where}.interval_seconds", source.interval_seconds, allow_zero=False)


def _check_name(where: str, name: object) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise RelayConfigError(
            where, f"invalid name {name!r}; use 1-64 of A-Z a-z 0-9 . _ - (not starting with . _ -)"
        )


def _check_int(where: str, value: object, *, low: int, high: int | None = None) -> None:
    # bool is an int subclass; `true` in YAML is never a sensible size.
    if not isinstance(value, int) or isinstance(value, bool):
        raise RelayConfigError(where, f"expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise RelayConfigError(where, f"must be {bounds}, got {value}")


def _check_seconds(where: str, value: object, *, allow_zero: bool) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RelayConfigError(where, f"expected a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise RelayConfigError(where, f"must be a finite number {bound}, got {value}")
