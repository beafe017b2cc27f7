"""The ``LeakIncident`` a viewer creates for a confirmed leak, built as a plain dict (pure).

``build_leak_incident`` turns the viewer's ``IncidentRecord`` (what ``Monitor`` opened)
and the frame's ``Evidence`` into the object to create, shaped by
``crds/leakincidents.yaml`` and its rules:

- ``observed.tenant`` (and camera, seq, time) only from a verified signature: present
  exactly for ``cross_tenant``, ``misrouted`` and ``stale``, absent otherwise;
- no frame pixels except ``evidence.thumbnail``, the grayscale thumbnail pixelated to
  16x9 cells that ``incidents.evidence`` made, whatever the verdict (a verified canary
  may still carry real content around its marker);
- a name that is the same for every attempt to create the same incident (so a retry
  after a lost response finds it already there) and differs between viewer pods.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

from canarywatch.api import (
    API_VERSION,
    INCIDENT_ID_ANNOTATION,
    LABEL_INTEGRATION,
    LABEL_NETWORK_PROFILE,
    LABEL_PROBE,
    LABEL_TENANT,
    LABEL_VERDICT,
    PATHS,
    PLURAL_INCIDENTS,
    label_value,
)
from canarywatch.incidents.evidence import KEPT, Evidence
from canarywatch.incidents.records import IncidentRecord
from canarywatch.verdicts import Verdict

__all__ = [
    "ATTRIBUTED_VERDICTS",
    "INCIDENT_ID_ANNOTATION",
    "LABEL_VERDICT",
    "LEAK_INCIDENT_PLURAL",
    "MAX_THUMBNAIL_BASE64",
    "REPORTABLE_VERDICTS",
    "build_leak_incident",
    "leak_incident_name",
    "rfc3339",
]

LEAK_INCIDENT_PLURAL = PLURAL_INCIDENTS
#: ``evidence.thumbnail`` is base64 of at most this many characters (the CRD's maxLength).
MAX_THUMBNAIL_BASE64 = 65536
#: Verdicts whose frame carries a verified signature: the only ones that name a tenant.
ATTRIBUTED_VERDICTS = frozenset({Verdict.CROSS_TENANT, Verdict.MISROUTED, Verdict.STALE})
#: The CRD's ``observed.verdict`` enum: everything but ``ok``.
REPORTABLE_VERDICTS = frozenset(Verdict) - {Verdict.OK}
_MAX_REASON = 1024
_MAX_PROFILE = 32
_NAME_PREFIX = 40  # of the integration's name: room for "-<verdict>-<hash>" in 63


def leak_incident_name(record: IncidentRecord, *, namespace: str, pod: str) -> str:
    """``<integration>-<verdict>-<hash>``: a DNS-1123 label, stable for one incident of
    one viewer pod, so creating it again can only ever meet itself."""
    digest = hashlib.sha256("\0".join((namespace, pod, record.integration, record.id)).encode()).hexdigest()
    prefix = record.integration[:_NAME_PREFIX].rstrip("-.").replace(".", "-")
    return f"{prefix}-{record.verdict.replace('_', '-')}-{digest[:10]}"


def build_leak_incident(
    record: IncidentRecord,
    *,
    evidence: Evidence | None,
    namespace: str,
    pod: str,
    signed_payload: bytes | None = None,
) -> dict[str, Any]:
    """The LeakIncident for ``record`` in ``namespace``, seen by viewer pod ``pod``.

    ``evidence`` is ``collect_evidence`` of the frame that opened the incident (None
    when it could not be collected: the incident is reported without it).
    ``signed_payload`` is the frame's signed payload (``markers.payload.pack_signed``),
    for an attributed verdict: the operator verifies it before it pages or switches
    anything off (``controller.trust``), so without it the incident is not acted on. Raises
    ``ValueError`` for a record the CRD would reject (an ``ok`` verdict, a tenant named
    without a verified signature, evidence of another frame), which is a bug upstream.
    """
    verdict = Verdict(record.verdict)
    if verdict not in REPORTABLE_VERDICTS:
        raise ValueError(f"verdict {verdict} is not a leak: nothing to report")
    if record.path not in PATHS:
        raise ValueError(f"path {record.path!r} is not one of {', '.join(PATHS)}")
    attributed = verdict in ATTRIBUTED_VERDICTS
    if attributed != (record.observed_tenant is not None):
        raise ValueError(
            f"a {verdict} incident must {'' if attributed else 'not '}name the observed tenant: "
            "only a verified signature attributes a frame"
        )
    if evidence is not None and evidence.verdict is not verdict:
        raise ValueError(f"evidence of a {evidence.verdict} frame given for a {verdict} incident")

    viewer: dict[str, Any] = {"tenant": record.viewer_tenant, "path": record.path, "pod": pod}
    if record.viewer_camera is not None:
        viewer["camera"] = record.viewer_camera
    if record.network_profile:
        viewer["networkProfile"] = record.network_profile[:_MAX_PROFILE]
    observed: dict[str, Any] = {"verdict": verdict.value}
    if attributed:
        observed["tenant"] = record.observed_tenant
        for key, value in (("camera", record.observed_camera), ("seq", record.observed_seq)):
            if value is not None:
                observed[key] = value
        if record.observed_time is not None:
            observed["time"] = rfc3339(record.observed_time)
        if signed_payload is not None:
            observed["signedPayload"] = base64.b64encode(signed_payload).decode("ascii")
    if record.reason:
        observed["reason"] = record.reason[:_MAX_REASON]
    spec: dict[str, Any] = {
        "integrationRef": {"name": record.integration},
        "probeRef": {"name": record.probe},
        "viewer": viewer,
        "observed": observed,
        "times": {
            "frameReceived": rfc3339(record.frame_received_at),
            "recorded": rfc3339(record.recorded_at),
        },
    }
    if evidence is not None:
        spec["evidence"] = _evidence(evidence)
    labels = {
        "app.kubernetes.io/name": "canarywatch",
        "app.kubernetes.io/component": "leak-incident",
        LABEL_INTEGRATION: label_value(record.integration),
        LABEL_PROBE: label_value(record.probe),
        LABEL_TENANT: record.viewer_tenant,
        LABEL_VERDICT: verdict.value,
    }
    if record.network_profile:
        labels[LABEL_NETWORK_PROFILE] = record.network_profile[:_MAX_PROFILE]
    return {
        "apiVersion": API_VERSION,
        "kind": "LeakIncident",
        "metadata": {
            "name": leak_incident_name(record, namespace=namespace, pod=pod),
            "namespace": namespace,
            "labels": labels,
            "annotations": {INCIDENT_ID_ANNOTATION: record.id},
        },
        "spec": spec,
    }


def _evidence(evidence: Evidence) -> dict[str, Any]:
    """Hash, size, dimensions and the pixelated thumbnail: ``Evidence`` holds no other
    pixels (a verified canary's proof is ``observed.signedPayload``)."""
    fields: dict[str, Any] = {"sha256": evidence.sha256, "size": evidence.size, "kept": KEPT}
    if evidence.width is not None and evidence.height is not None:
        fields |= {"width": evidence.width, "height": evidence.height}
    if evidence.thumbnail is not None:
        fields["thumbnail"] = _base64(evidence.thumbnail)
    return fields


def _base64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def rfc3339(seconds: float) -> str:
    """Unix time as RFC 3339 in UTC with milliseconds (``2026-03-14T09:26:53.412Z``)."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
