"""The CRDs' ``openAPIV3Schema`` as the one definition of the spec: validation and defaults.

The CRD files ship inside the package (``canarywatch/crds/``, byte-identical copies of
the repository's ``crds/``; a unit test keeps them so), and both shells read a spec
the way the API server does: nulls pruned, the schema validated, the ``default:``
values applied. A standalone config file is therefore checked against the very schema
``kubectl apply`` is, and a default is written once, in the CRD.

Validation (``canarywatch.spec.validation``, with jsonschema) is loaded by the first
document a ``Schema`` reads, not with the schema: the agents take only bounds and
defaults from their CRDs, and check their environment before anything heavy is
imported.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from canarywatch.api import KIND_INCIDENT, KIND_INTEGRATION, KIND_PROBE
from canarywatch.errors import FieldError

if TYPE_CHECKING:
    from canarywatch.spec.validation import Validator

__all__ = [
    "CRD_FILES",
    "Schema",
    "SpecError",
    "crd",
    "field_path",
    "spec_schema",
]

#: kind -> the CRD file in ``canarywatch/crds/`` (and in the repository's ``crds/``).
CRD_FILES: Mapping[str, str] = {
    KIND_INTEGRATION: "cameraintegrations.yaml",
    KIND_PROBE: "canaryprobes.yaml",
    KIND_INCIDENT: "leakincidents.yaml",
}


class SpecError(FieldError):
    """A spec does not satisfy its CRD's schema; ``field`` is the path of the value."""


@functools.cache
def crd(kind: str) -> Mapping[str, Any]:
    """The CustomResourceDefinition of ``kind``, as shipped in the package."""
    try:
        name = CRD_FILES[kind]
    except KeyError:
        raise ValueError(f"no CRD for kind {kind!r}; known: {', '.join(CRD_FILES)}") from None
    text = resources.files("canarywatch").joinpath("crds", name).read_text(encoding="utf-8")
    # libyaml's loader when PyYAML has it: the same documents, ~10x faster (the agents
    # read two CRDs at startup, before they can report a bad environment)
    document: Mapping[str, Any] = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return document


def spec_schema(kind: str) -> dict[str, Any]:
    """A deep copy of the OpenAPI schema of ``kind``'s ``spec`` (storage version), to
    read as it is or to extend (the standalone config's additions)."""
    (version,) = (v for v in crd(kind)["spec"]["versions"] if v.get("storage"))
    return copy.deepcopy(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def field_path(where: str, path: Sequence[str | int]) -> str:
    """``where`` followed by ``path`` as the messages spell it: ``probe.tenants[1].id``."""
    return where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


class Schema:
    """One OpenAPI v3 schema of a CRD (or of a standalone extension of one), ready to
    read documents: prune nulls, validate, apply defaults."""

    def __init__(self, openapi: Mapping[str, Any]) -> None:
        self.openapi: Mapping[str, Any] = openapi
        # The operator reads the same spec for every object it builds: validate once.
        self._read = functools.lru_cache(maxsize=256)(self._read_canonical)

    @classmethod
    def of(cls, kind: str) -> Schema:
        """The schema of ``kind``'s ``spec``."""
        return _spec_schema(kind)

    def read(self, document: object, *, where: str) -> Any:
        """``document`` checked against the schema and with its defaults applied (a new
        object; ``document`` is not modified). Raises ``SpecError`` naming the first
        offending field under ``where``."""
        try:
            canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):  # not JSON (a date from YAML...): let the schema say so
            return self._read_canonical(document, where)
        return copy.deepcopy(self._read(canonical, where))

    def _read_canonical(self, document: Any, where: str) -> Any:
        if isinstance(document, str):
            document = json.loads(document)
        pruned = _without_nulls(document)
        error = self._validator.first_error(pruned, where=where)
        if error is not None:
            raise error
        return defaulted(self.openapi, pruned)

    @functools.cached_property
    def _validator(self) -> Validator:
        # Imported here: jsonschema is ~4 MiB of RSS and ~50 modules that a reader of
        # bounds and defaults (an agent checking its environment) does not need.
        from canarywatch.spec.validation import Validator

        return Validator(self.openapi)

    def field(self, path: str) -> Mapping[str, Any]:
        """The schema of the field at the dotted ``path`` (``frameSize.width``): for a
        reader of the same value in another form (an agent's environment)."""
        node: Mapping[str, Any] = self.openapi
        for key in path.split("."):
            node = node["properties"][key]
        return node

    def bounds(self, path: str) -> tuple[Any, Any]:
        """``minimum`` and ``maximum`` of the field at ``path``."""
        node = self.field(path)
        return node["minimum"], node["maximum"]

    def defaults(self) -> dict[str, Any]:
        """What defaulting adds to an empty object: every default, nested ones included."""
        result: dict[str, Any] = defaulted(self.openapi, {})
        return result


@functools.cache
def _spec_schema(kind: str) -> Schema:
    return Schema(spec_schema(kind))


def defaulted(schema: Mapping[str, Any], value: Any) -> Any:
    """``value`` with the schema's ``default:`` values filled in where a field is absent,
    at every depth (a defaulted ``{}`` gets its own fields' defaults), as the API server
    does. Returns new containers; ``value`` is not modified."""
    if isinstance(value, Mapping):
        properties: Mapping[str, Any] = schema.get("properties", {})
        result = dict(value)
        for key, sub in properties.items():
            if key not in result and "default" in sub:
                result[key] = copy.deepcopy(sub["default"])
        for key, item in result.items():
            if key in properties:
                result[key] = defaulted(properties[key], item)
            elif isinstance(schema.get("additionalProperties"), Mapping):
                result[key] = defaulted(schema["additionalProperties"], item)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [defaulted(schema["items"], item) for item in value]
    return value


def _without_nulls(value: Any) -> Any:
    """The API server drops null fields of a non-nullable schema before defaulting;
    so does a config file's ``key:`` with nothing after it."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
