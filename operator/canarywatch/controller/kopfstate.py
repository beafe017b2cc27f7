"""Where kopf keeps its own state of each object: a CanaryProbe's in its status, the
other kinds' in ``canarywatch.io/`` annotations.

Why a probe's status: kopf patches the object itself (annotations) and its ``/status``
subresource in two requests. A probe's reconcile writes its status anyway, so with
kopf's progress and last-handled configuration there too, handling a probe is one
patch, not two: at 1,000 probes after an upgrade, 1,000 requests fewer. The
CanaryProbe CRD keeps ``status.kopf`` (``x-kubernetes-preserve-unknown-fields``); the
other CRDs' status schemas would prune it, and their objects are few.

A probe handled before this moved finds no state in its status: kopf takes it for new
and reconciles it once more, which is idempotent (and leaves the old annotation be).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import kopf

from canarywatch.api import KIND_PROBE

__all__ = ["KindDiffBaseStorage", "KindProgressStorage"]


def _in_status(body: Any) -> bool:
    return bool(body.get("kind") == KIND_PROBE)


_PROGRESS_FIELD = ("status", "kopf", "progress")


class KindProgressStorage(kopf.ProgressStorage):
    """kopf's handler progress: a probe's in its status, other objects' in annotations."""

    def __init__(self, prefix: str) -> None:
        self.status = kopf.StatusProgressStorage(field=".".join(_PROGRESS_FIELD))
        self.annotations = kopf.AnnotationsProgressStorage(prefix=prefix)

    def _of(self, body: Any) -> kopf.ProgressStorage:
        return self.status if _in_status(body) else self.annotations

    def fetch(self, *, key: Any, body: Any) -> Any:
        return self._of(body).fetch(key=key, body=body)

    def store(self, *, key: Any, record: Any, body: Any, patch: Any) -> None:
        self._of(body).store(key=key, record=record, body=body, patch=patch)

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        self._of(body).purge(key=key, body=body, patch=patch)

    def touch(self, *, body: Any, patch: Any, value: str | None) -> None:
        self._of(body).touch(body=body, patch=patch, value=value)

    def clear(self, *, essence: Any) -> Any:
        """The essence without kopf's state (progress in the status, annotations under
        the prefix) and with no empty stanza: what kopf's two stores' ``clear`` give in
        turn. Each of those deep-copies the whole essence, four copies per watch event
        of every object (3 s of the event loop's time at a cold start of 1,000 probes);
        here only the stanzas that change are copied, the essence is left as it is."""
        slim = _removed(essence, _PROGRESS_FIELD)
        metadata = slim.get("metadata")
        if isinstance(metadata, dict):
            metadata = dict(metadata)
            annotations = metadata.get("annotations")
            prefix = self.annotations.prefix
            if isinstance(annotations, dict) and prefix:
                mine = f"{prefix}/"
                metadata["annotations"] = {k: v for k, v in annotations.items() if not k.startswith(mine)}
            for stanza in ("annotations", "labels"):
                if stanza in metadata and not metadata[stanza]:
                    del metadata[stanza]
            slim["metadata"] = metadata
        for stanza in ("metadata", "status"):
            if stanza in slim and not slim[stanza]:
                del slim[stanza]
        return slim


class KindDiffBaseStorage(kopf.DiffBaseStorage):
    """kopf's last-handled configuration: a probe's in its status, others' in annotations."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.status = kopf.StatusDiffBaseStorage(field="status.kopf.last-handled-configuration")
        self.annotations = kopf.AnnotationsDiffBaseStorage(prefix=prefix, key="last-handled-configuration")

    def _of(self, body: Any) -> kopf.DiffBaseStorage:
        return self.status if _in_status(body) else self.annotations

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return self._of(body).build(body=essential(body, extra_fields), extra_fields=extra_fields)

    def fetch(self, *, body: Any) -> Any:
        return self._of(body).fetch(body=body)

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        self._of(body).store(body=body, patch=patch, essence=essence)


def essential(body: Any, extra_fields: Iterable[Any] | None = None) -> kopf.Body:
    """``body`` (shallowly) without what kopf's essence drops anyway (after deep-copying
    it): the status (unless a handler asks for a field of it) and the metadata but its
    labels and annotations (unless a handler asks for another field of it)."""
    wanted = {_root(field) for field in extra_fields or ()}
    slim = {key: value for key, value in body.items() if key != "status" or "status" in wanted}
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "metadata" not in wanted:
        slim["metadata"] = {key: metadata[key] for key in ("labels", "annotations") if key in metadata}
    return kopf.Body(cast(kopf.RawBody, slim))


def _removed(tree: Mapping[str, Any], path: Sequence[str]) -> dict[str, Any]:
    """A copy of ``tree`` without the field at ``path`` and without the parents that
    leaves empty (as ``kopf``'s ``dicts.remove``), copying only the dicts along it."""
    copy = dict(tree)
    head, rest = path[0], path[1:]
    if head not in copy:
        return copy
    if not rest:
        del copy[head]
        return copy
    child = copy[head]
    if not isinstance(child, Mapping):
        return copy
    child = _removed(child, rest)
    if child == {}:
        del copy[head]
    else:
        copy[head] = child
    return copy


def _root(field: Any) -> str:
    """The top-level key of a kopf field spec (``"status.x"``, ``("status", "x")``)."""
    return str(field).split(".", 1)[0] if isinstance(field, str) else str(next(iter(field), ""))
