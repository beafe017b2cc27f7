"""RFC 7386 JSON merge patches, computed: what a patch does to an object (pure).

``merged`` is the object a merge patch leaves (what the API server will store);
``leaves`` lists every key a patch sets with its value before and after, which is what
the kill switch's patch action records so that resume restores exactly those keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["ABSENT", "assign", "leaves", "lookup", "merged", "paths"]


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge of ``changes`` into ``base`` (what the API server will store)."""
    result = dict(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            # A patch object lands on an object key by key, and on anything else as a
            # new object: its nulls are dropped either way.
            before = result.get(key)
            result[key] = merged(before if isinstance(before, Mapping) else {}, value)
        else:
            result[key] = value
    return result


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


def leaves(
    patch: Mapping[str, Any], current: object, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """(path, value before, value after) of every key ``patch`` sets in ``current``.

    RFC 7386: an object merges into an object key by key; anything else (or an object
    landing on a non-object) replaces the value, with its nulls dropped.
    """
    for key, value in patch.items():
        here = (*path, str(key))
        existing = current.get(key, ABSENT) if isinstance(current, Mapping) else ABSENT
        if isinstance(value, Mapping) and isinstance(existing, Mapping):
            yield from leaves(value, existing, here)
        else:
            yield here, existing, _applied(value)


def _applied(value: Any) -> Any:
    if value is None:
        return ABSENT
    if isinstance(value, Mapping):
        return {k: _applied(v) for k, v in value.items() if v is not None}
    return value


def lookup(obj: object, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(obj, Mapping) or part not in obj:
            return ABSENT
        obj = obj[part]
    return obj


def assign(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def paths(patch: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted paths of the keys ``patch`` sets (``data.hub-integration``)."""
    found: list[str] = []
    for key, value in patch.items():
        here = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            found.extend(paths(value, f"{here}."))
        else:
            found.append(here)
    return found
