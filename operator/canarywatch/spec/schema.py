"""The CRDs' ``openAPIV3Schema`` as the one definition of the spec: validation and defaults.

The CRD files ship inside the package (``canarywatch/crds/``, byte-identical copies of
the repository's ``crds/``; a unit test keeps them so), and both shells read a spec
the way the API server does: nulls pruned, the schema validated, the ``default:``
values applied. A standalone config file is therefore checked against the very schema
``kubectl apply`` is, and a default is written once, in the CRD.

Reading an OpenAPI v3 schema of a structural CRD with JSON Schema (Draft 4, whose
``exclusiveMinimum: true`` and ``type`` rules OpenAPI v3.0 shares):

- an object with ``properties`` refuses other keys (``additionalProperties: false``):
  the API server would prune them silently, and a typo in a file deserves an error;
  ``x-kubernetes-preserve-unknown-fields`` keeps an object open, as on the server;
- ``x-kubernetes-list-type: set`` and ``map`` (with ``x-kubernetes-list-map-keys``)
  refuse duplicates, as the server does;
- ``format`` is checked for the ones the CRDs use, as the API server does:
  ``int64`` (its range), ``date-time`` (RFC 3339), ``byte`` (base64);
- CEL rules (``x-kubernetes-validations``) are not evaluated: the typed readers check
  what the shells rely on, with a message naming the field.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft4Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import best_match

from canarywatch.api import KIND_INCIDENT, KIND_INTEGRATION, KIND_PROBE
from canarywatch.errors import FieldError, shown

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

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
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
        self._validator = _Validator(_json_schema(openapi), format_checker=_FORMATS)
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
        error = best_match(self._validator.iter_errors(pruned))
        if error is not None:
            raise _spec_error(error, where) from None
        return defaulted(self.openapi, pruned)

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


# -- OpenAPI v3 -> JSON Schema ---------------------------------------------------------------


def _json_schema(node: Any) -> Any:
    """A copy of ``node`` that Draft 4 validation reads as the API server would (see the
    module docstring). YAML anchors share objects, so nothing is modified in place."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    result = {key: _json_schema(value) for key, value in node.items() if key != "default"}
    pattern = node.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
        # The API server's regexps (Go) end at `$`; Python's `$` also matches before a
        # trailing newline, which would let "name\n" through a file the cluster refuses.
        result["pattern"] = pattern[:-1] + _END_OF_TEXT
    for key in ("properties", "patternProperties"):
        if key in node:
            result[key] = {name: _json_schema(sub) for name, sub in node[key].items()}
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def _list_type(
    validator: Any, list_type: object, instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not isinstance(instance, list):
        return
    if list_type == "set":
        for index, item in enumerate(instance):
            if item in instance[:index]:
                yield ValidationError(f"{shown(item)} is listed twice", path=[index])
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen: list[tuple[object, ...]] = []
        for index, item in enumerate(instance):
            if not isinstance(item, Mapping):
                continue
            identity = tuple(item.get(key) for key in keys)
            if identity in seen:
                listed = ", ".join(f"{key} {shown(item.get(key))}" for key in keys)
                yield ValidationError(f"{listed} is listed twice", path=[index, *keys[:1]])
            seen.append(identity)


# jsonschema's stubs leave ``extend`` untyped; the result is a Draft 4 validator class.
_Validator = validators.extend(Draft4Validator, {"x-kubernetes-list-type": _list_type})  # type: ignore[no-untyped-call]


_FORMATS = FormatChecker(formats=())
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@_FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


@_FORMATS.checks("byte", raises=binascii.Error)
def _byte(value: object) -> bool:
    return not isinstance(value, str) or base64.b64decode(value, validate=True) is not None


# -- errors ------------------------------------------------------------------------------------


def _spec_error(error: ValidationError, where: str) -> SpecError:
    path: list[str | int] = list(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    value: Any = error.instance
    expected: Any = error.validator_value
    kind = error.validator
    message = error.message
    if kind == "required" and isinstance(value, Mapping):
        missing = next(k for k in expected if k not in value)
        path.append(missing)
        message = "required"
    elif kind == "additionalProperties" and isinstance(value, Mapping):
        accepted = sorted(schema.get("properties", {}))
        path.append(sorted(str(k) for k in value if k not in accepted)[0])
        message = f"unknown field; accepted: {', '.join(accepted)}"
    elif kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in types)
        message = f"expected {wanted}, got {_type_name(value)}"
    elif kind == "enum":
        message = f"expected one of {', '.join(map(str, expected))}, got {shown(value)}"
    elif kind in ("minimum", "maximum"):
        message = _range_message(schema, value)
    elif kind == "pattern":
        pattern = _as_written(str(schema["pattern"]))
        message = _PATTERN_MESSAGES.get(pattern) or f"{shown(value)} does not match {pattern}"
    elif kind == "minItems":
        message = f"expected at least {expected} item(s), got {len(value)}"
    elif kind == "maxItems":
        message = f"expected at most {expected} items, got {len(value)}"
    elif kind == "minLength":
        message = "expected a non-empty string" if expected == 1 else message
    elif kind == "maxLength":
        message = f"expected at most {expected} characters, got {len(value)}"
    elif kind == "format":
        message = {
            "date-time": f"{shown(value)} is not an RFC 3339 date-time",
            "byte": "not base64",
            "int64": f"{shown(value)} is out of the int64 range",
        }.get(str(expected), message)
    elif kind == "maxProperties":
        message = f"expected at most {expected} entries, got {len(value)}"
    return SpecError(field_path(where, path), message)


_END_OF_TEXT = "\\Z"
# Patterns whose value is not worth quoting (a header value may be a credential) or
# whose regexp says less than a sentence.
_PATTERN_MESSAGES = {
    "^[^\\r\\n\\x00]*$": "must not contain line breaks or NUL (they would end the header early)",
    (
        "^https?://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)"
        "(:[0-9]{1,5})?([/?#][^\\s]*)?$"
    ): "expected an absolute http(s) URL with a host, such as https://events.pagerduty.com/v2/enqueue",
}


def _as_written(pattern: str) -> str:
    """A pattern as the CRD spells it (see ``_json_schema``)."""
    return pattern[: -len(_END_OF_TEXT)] + "$" if pattern.endswith(_END_OF_TEXT) else pattern


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {shown(value)}"


def _range_message(schema: Mapping[str, Any], value: object) -> str:
    noun = "an integer" if schema.get("type") == "integer" else "a number"
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and schema.get("exclusiveMinimum"):
        bound = f"> {low:g}" + (f" and <= {high:g}" if high is not None else "")
    elif low is not None and high is not None:
        bound = f"in {low:g}..{high:g}"
    elif low is not None:
        bound = f">= {low:g}"
    else:
        bound = f"<= {high:g}"
    return f"expected {noun} {bound}, got {shown(value)}"
