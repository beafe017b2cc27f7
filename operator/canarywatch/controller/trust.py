"""Whether a LeakIncident may be acted on: its probe is real and its evidence verifies.

A LeakIncident pages and switches an integration off, so the operator does not take
one on its creator's word. Two layers, each useful without the other:

- **Admission** (the chart's ValidatingAdmissionPolicy ``canarywatch-leakincident-creators``):
  only the viewer ServiceAccount of the incident's namespace (``canarywatch-viewer``,
  shared by the namespace's probes) may create it.
- **Evidence** (here, before anything is decided): the probe exists in the incident's
  namespace and watches the integration the incident names, the viewer tenant is one of
  its tenants, and for an attributed verdict (``cross_tenant``, ``misrouted``,
  ``stale``) the signed payload the viewer copied from the frame verifies under the
  observed tenant's key, read from the probe's keyring Secret (owned by the probe), and
  says what the incident says (camera, sequence number, capture time). Keys are per
  probe: a viewer of probe X holds none of probe Y's, so it cannot make an attributed
  incident naming Y verify.

The other verdicts (``foreign``, ``forged``, ``degraded``, ``undecodable``) carry no
signature that could verify: the frame is by definition not a valid canary. They rest
on the first layer alone, and on the probe checks. The signature is an HMAC whose keys
every viewer of the probe holds (a viewer must verify every tenant's frames), so it
proves the claim comes from something holding the probe's keyring and names a frame a
canary really signed; it cannot prove a compromised viewer pod honest.

An incident that fails is recorded as ``Untrusted``: no page, no kill switch, a Warning
Event on it and on its integration (``controller.incidents``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canarywatch.controller.kube import CANARY_PROBES, SECRETS, Kube
from canarywatch.controller.manifests import BuildError, keyring_item, keyring_secret_name, parse_probe
from canarywatch.controller.runtime import epoch
from canarywatch.markers.keyring import Keyring, KeyringError
from canarywatch.markers.payload import PAYLOAD_BYTES, Payload, mac, split_signed, tenant_tag

__all__ = ["SIGNED_VERDICTS", "TIME_TOLERANCE_SECONDS", "Trust", "judge_evidence", "verify_incident"]

#: Verdicts whose frame carried a verified canary signature: the incident must prove it.
SIGNED_VERDICTS = frozenset({"cross_tenant", "misrouted", "stale"})
#: observed.time is written to the millisecond; the payload keeps 1/256 s.
TIME_TOLERANCE_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class Trust:
    """The outcome: ``verified`` or not, and why (for status, Events, logs)."""

    verified: bool
    reason: str

    def to_status(self) -> dict[str, Any]:
        return {"verified": self.verified, "reason": self.reason[:1024]}


def _untrusted(reason: str) -> Trust:
    return Trust(False, reason)


async def verify_incident(kube: Kube, incident: Mapping[str, Any]) -> Trust:
    """Read what the incident's claims are checked against, and check them."""
    namespace = str(incident["metadata"]["namespace"])
    spec = incident.get("spec") or {}
    probe_name = str((spec.get("probeRef") or {}).get("name"))
    observed_tenant = (spec.get("observed") or {}).get("tenant")
    # Read together: a kill switch waits for this (the Secret is judged only if the
    # probe exists, so reading it for a probe that does not is merely wasted).
    reads = [kube.get(CANARY_PROBES, namespace, probe_name)]
    if isinstance(observed_tenant, str):
        reads.append(kube.get(SECRETS, namespace, keyring_secret_name(probe_name)))
    probe, *found = await asyncio.gather(*reads)
    secret = found[0] if found and probe is not None else None
    return judge_evidence(incident, probe=probe, keyring_secret=secret)


def judge_evidence(
    incident: Mapping[str, Any],
    *,
    probe: Mapping[str, Any] | None,
    keyring_secret: Mapping[str, Any] | None,
) -> Trust:
    """The checks of the module docstring (pure): ``probe`` is the CanaryProbe the
    incident names (None: not found), ``keyring_secret`` the observed tenant's keyring
    Secret of that probe (None: not found, or no tenant observed)."""
    meta, spec = incident.get("metadata") or {}, incident.get("spec") or {}
    probe_name = (spec.get("probeRef") or {}).get("name")
    integration = (spec.get("integrationRef") or {}).get("name")
    if probe is None:
        return _untrusted(f"CanaryProbe {probe_name} does not exist in {meta.get('namespace')}")
    try:
        probe_spec = parse_probe(probe)
    except BuildError as error:
        return _untrusted(f"CanaryProbe {probe_name} cannot run: {error}")
    if probe_spec.integration != integration:
        return _untrusted(
            f"CanaryProbe {probe_name} watches CameraIntegration {probe_spec.integration}, not {integration}"
        )
    viewer = (spec.get("viewer") or {}).get("tenant")
    if viewer not in probe_spec.tenant_ids:
        return _untrusted(f"viewer tenant {viewer} is not a tenant of CanaryProbe {probe_name}")
    observed = spec.get("observed") or {}
    verdict = observed.get("verdict")
    if verdict not in SIGNED_VERDICTS:
        return Trust(True, f"{verdict}: no canary signature to verify; the probe and its tenant check out")
    return _signature(observed, probe, keyring_secret, probe_spec.tenant_ids)


def _signature(
    observed: Mapping[str, Any],
    probe: Mapping[str, Any],
    secret: Mapping[str, Any] | None,
    tenants: tuple[str, ...],
) -> Trust:
    tenant = observed.get("tenant")
    name = probe["metadata"]["name"]
    if tenant not in tenants:
        return _untrusted(f"observed tenant {tenant} is not a tenant of CanaryProbe {name}")
    raw = observed.get("signedPayload")
    if not isinstance(raw, str):
        return _untrusted("no observed.signedPayload: the attribution cannot be verified")
    try:
        message = base64.b64decode(raw, validate=True)
        fields, signature = split_signed(message)
    except (binascii.Error, ValueError):
        return _untrusted(f"observed.signedPayload is not a {PAYLOAD_BYTES}-byte signed payload")
    if secret is None:
        return _untrusted(f"the keyring Secret of CanaryProbe {name} does not exist")
    secret_name = (secret.get("metadata") or {}).get("name")
    owners = (secret.get("metadata") or {}).get("ownerReferences") or []
    if not any(
        o.get("uid") == probe["metadata"].get("uid") and o.get("kind") == "CanaryProbe" for o in owners
    ):
        return _untrusted(f"the keyring Secret {secret_name} is not owned by CanaryProbe {name}")
    try:
        document = base64.b64decode((secret.get("data") or {}).get(keyring_item(str(tenant)), ""))
        key = Keyring.from_mapping(json.loads(document)).key(str(tenant))
    except (binascii.Error, ValueError, KeyringError):
        return _untrusted(f"the keyring Secret {secret_name} holds no usable key for tenant {tenant}")
    if not hmac.compare_digest(mac(key, fields), signature):
        return _untrusted(f"the signed payload does not verify under tenant {tenant}'s key (forged evidence)")
    payload = Payload.from_bytes(fields)
    mismatches = [
        what
        for what, claimed, signed in (
            ("tenant", tenant_tag(str(tenant)), payload.tenant_tag),
            ("camera", observed.get("camera", payload.camera), payload.camera),
            ("seq", observed.get("seq", payload.seq), payload.seq),
        )
        if claimed != signed
    ]
    claimed_time = epoch(observed.get("time"))
    if claimed_time is not None and abs(claimed_time - payload.time) > TIME_TOLERANCE_SECONDS:
        mismatches.append("time")
    if mismatches:
        return _untrusted(f"the signed payload contradicts observed {', '.join(mismatches)}")
    return Trust(True, f"signature of tenant {tenant} verified (camera {payload.camera}, seq {payload.seq})")
