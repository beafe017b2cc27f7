"""A CRD's OpenAPI v3 schema checked with JSON Schema, with messages that name the field.

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

``canarywatch.spec.schema.Schema`` imports this module when it reads its first document.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft4Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import best_match

from canarywatch.errors import shown
from canarywatch.spec.schema import SpecError, field_path

__all__ = ["Validator"]

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


class Validator:
    """One OpenAPI v3 schema compiled for Draft 4 validation."""

    def __init__(self, openapi: Mapping[str, Any]) -> None:
        self._validator = _Validator(_json_schema(openapi), format_checker=_FORMATS)

    def first_error(self, document: object, *, where: str) -> SpecError | None:
        """The error that best explains why ``document`` is invalid (its field under
        ``where``), or None when it is valid."""
        error = best_match(self._validator.iter_errors(document))
        return None if error is None else _spec_error(error, where)


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
