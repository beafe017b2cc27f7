"""What every builder starts from: the CanaryProbe (and its CameraIntegration) read
through the spec model, the paths inside agent pods, and the error a builder raises."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

from canarywatch.api import KIND_INTEGRATION, KIND_PROBE
from canarywatch.spec import ProbeSpec, Schema, SpecError, read_probe

__all__ = [
    "KEYRING_DIR",
    "METRICS_PORT",
    "PROBE_DEFAULTS",
    "TOKEN_DIR",
    "BuildError",
    "as_build_error",
    "builder",
    "decimal",
    "integration_spec",
    "parse_probe",
]

KEYRING_DIR = "/var/run/canarywatch/keyring"
TOKEN_DIR = "/var/run/canarywatch/token"
METRICS_PORT = 9100

#: The CRD's defaults for a CanaryProbe spec (crds/canaryprobes.yaml), read from its
#: schema: what a spec read before the API server defaulted it gets.
PROBE_DEFAULTS: Mapping[str, Any] = Schema.of(KIND_PROBE).defaults()


class BuildError(SpecError):
    """The probe (or its integration) cannot be turned into workloads; ``field`` is the
    path of the setting to fix (``spec.transports``), for a condition message."""


@contextlib.contextmanager
def as_build_error(suffix: str = "") -> Iterator[None]:
    """A ``SpecError`` raised inside becomes a ``BuildError`` (``suffix`` appended to its
    message: which object the path is in)."""
    try:
        yield
    except BuildError:
        raise
    except SpecError as error:
        raise BuildError(error.field, error.message + suffix) from error


_P = ParamSpec("_P")
_R = TypeVar("_R")


def builder(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """A public builder: whatever spec problem it meets is a ``BuildError``."""

    @functools.wraps(function)
    def build(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with as_build_error():
            return function(*args, **kwargs)

    return build


def parse_probe(probe: Mapping[str, Any] | ProbeSpec) -> ProbeSpec:
    """The CanaryProbe object (``metadata`` and ``spec``) as a ``ProbeSpec``: its spec
    checked against the CRD's schema, the CRD's defaults applied, and the checks of its
    CEL rules made. Raises ``BuildError`` naming the field otherwise."""
    if isinstance(probe, ProbeSpec):
        return probe
    metadata = probe.get("metadata")
    if not isinstance(metadata, Mapping):
        raise BuildError("metadata", f"expected a mapping, got {type(metadata).__name__}")
    name = _string(metadata.get("name"), "metadata.name")
    namespace = _string(metadata.get("namespace"), "metadata.namespace")
    uid = _string(metadata.get("uid"), "metadata.uid")
    return _read_probe(_canonical(probe.get("spec")), name, namespace, uid)


# Reading a spec against its CRD's schema costs milliseconds, and a reconcile reads the
# same probe and integration in every builder; 1,000 probes against one integration read
# it 4,000 times. Cached by content (canonical JSON), so an edited spec is read afresh;
# what comes back is shared: callers read it, never change it.
@functools.lru_cache(maxsize=4096)
def _read_probe(spec: str, name: str, namespace: str, uid: str) -> ProbeSpec:
    with as_build_error():
        return read_probe(json.loads(spec), name=name, namespace=namespace, uid=uid)


def _canonical(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise BuildError("spec", f"not JSON data: {error}") from error


def integration_spec(integration: Mapping[str, Any]) -> Mapping[str, Any]:
    """The CameraIntegration's ``spec``, checked against its CRD's schema, with the CRD's
    defaults applied."""
    return _read_integration(_canonical(integration.get("spec")))


@functools.lru_cache(maxsize=256)
def _read_integration(spec: str) -> Mapping[str, Any]:
    with as_build_error(" (CameraIntegration)"):
        read: Mapping[str, Any] = Schema.of(KIND_INTEGRATION).read(json.loads(spec), where="spec")
    return read


def decimal(value: float) -> str:
    """2.0 -> "2", 0.5 -> "0.5": what a person would write in the spec."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BuildError(where, "expected a non-empty string")
    return value
