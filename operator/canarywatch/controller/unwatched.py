"""Objects the operator does not watch. A CameraIntegration or CanaryProbe in a namespace
outside ``CANARYWATCH_NAMESPACES`` is never reconciled, and without this nothing would
say so: a team applies its probe, no pod appears, no error anywhere.

With ``CANARYWATCH_REPORT_UNWATCHED`` (the chart's ``rbac.reportUnwatched`` grants a
cluster-wide ``list`` of those two kinds, nothing more) the operator lists them across the
cluster every status interval and reports the ones it ignores: the gauge
``canarywatch_unwatched_objects{kind,namespace}``, and a warning in its log the first
time it sees each, naming the setting that would watch it. It cannot write an Event or a
status there: it holds no permission in those namespaces, and should not. Without the
``list`` permission it says so once and stops looking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from canarywatch.controller.kube import CAMERA_INTEGRATIONS, CANARY_PROBES, Forbidden, Kube, KubeError
from canarywatch.metrics import Metrics

__all__ = ["report_unwatched", "unwatched"]

log = logging.getLogger(__name__)


def unwatched(
    objects: Iterable[Mapping[str, Any]], watched: Collection[str]
) -> dict[tuple[str, str], list[str]]:
    """(kind, namespace) -> names of the objects outside the ``watched`` namespaces."""
    found: dict[tuple[str, str], list[str]] = {}
    for obj in objects:
        metadata = obj.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        if namespace and namespace not in watched:
            found.setdefault((str(obj.get("kind")), namespace), []).append(str(metadata.get("name")))
    return {key: sorted(names) for key, names in sorted(found.items())}


async def report_unwatched(
    kube: Kube, metrics: Metrics, watched: Collection[str], *, interval: float
) -> None:
    """Report unwatched objects every ``interval`` seconds until cancelled (or forbidden)."""
    warned: set[tuple[str, str, str]] = set()
    while True:
        try:
            objects = [
                obj
                for resource in (CAMERA_INTEGRATIONS, CANARY_PROBES)
                for obj in await kube.list_objects(resource, None)
            ]
        except Forbidden as error:
            log.warning(
                "cannot list CameraIntegrations/CanaryProbes across the cluster (%s): objects in "
                "namespaces this operator does not watch go unreported; grant it (chart: "
                "rbac.reportUnwatched=true) or unset CANARYWATCH_REPORT_UNWATCHED",
                error.message,
            )
            return
        except KubeError as error:
            log.warning("listing unwatched objects failed, trying again later: %s", error.message)
        else:
            found = unwatched(objects, watched)
            metrics.record_unwatched({key: len(names) for key, names in found.items()})
            current = {
                (kind, namespace, name) for (kind, namespace), names in found.items() for name in names
            }
            for kind, namespace, name in sorted(current - warned):
                log.warning(
                    "%s %s/%s is IGNORED: namespace %s is not watched by this operator (it watches %s); "
                    "add it to operator.watchNamespaces (CANARYWATCH_NAMESPACES), or install with "
                    "rbac.clusterWide=true",
                    kind,
                    namespace,
                    name,
                    namespace,
                    ", ".join(sorted(watched)),
                )
            warned = current
        await asyncio.sleep(interval)
