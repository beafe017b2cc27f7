"""A CanaryProbe's spec, typed: the one reader both shells use.

The operator reads ``spec`` of a CanaryProbe object, the CLI the ``probe`` block of its
config file; both go through ``read_probe``: the CRD's schema (validation and its
``default:`` values, ``canarywatch.spec.schema``), then the checks the CRD makes with
CEL rules, which JSON Schema cannot express, with the same messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canarywatch.api import KIND_PROBE
from canarywatch.coverage import DEFAULT_TARGET, CoverageError, CoverageTarget
from canarywatch.spec.schema import Schema, SpecError
from canarywatch.viewer.network import PRESETS, NetworkProfile, ProfileError

__all__ = ["SHAPERS", "ProbeSpec", "Tenant", "ViewerProfile", "read_probe"]

#: How a viewer imposes its network profile: its own pacing, or the kernel's netem.
SHAPERS = ("application", "tc")

_EXPLICIT_PROFILE_KEYS = ("bandwidth", "latency", "jitter", "loss", "stall", "lossTimeout")


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    #: (Secret name, key) of the tenant's token, or None for integrations without auth
    #: (and in standalone mode, where the config file holds the token).
    token: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ViewerProfile:
    """One network profile as a viewer runs it."""

    name: str
    #: what ``NetworkProfile.from_spec`` takes: a preset name or the explicit mapping.
    spec: str | Mapping[str, Any]
    shaper: str = "application"

    def network_profile(self, where: str) -> NetworkProfile:
        """The profile to shape with, named as in the probe (a custom profile based on a
        preset keeps its own name)."""
        try:
            profile = NetworkProfile.from_spec(self.spec, where=where)
        except ProfileError as error:
            raise SpecError(error.field, error.message) from error
        return profile if profile.name == self.name else dataclasses.replace(profile, name=self.name)


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A CanaryProbe with its defaults applied: what every builder and shell reads."""

    name: str
    namespace: str
    uid: str
    integration: str
    tenants: tuple[Tenant, ...]
    cameras: int
    fps: float
    width: int
    height: int
    profiles: tuple[ViewerProfile, ...]
    viewers: int
    transports: tuple[str, ...]
    freshness_seconds: float
    #: path -> its own freshness bound (``freshnessByPath``), overriding ``freshness_seconds``.
    freshness_by_path: Mapping[str, float]
    spread_across: str
    when_unsatisfiable: str
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    resources: Mapping[str, Any]
    coverage_target: CoverageTarget = DEFAULT_TARGET

    @property
    def tenant_ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.tenants)

    def tenant(self, tenant_id: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise SpecError("spec.tenants", f"no tenant {tenant_id!r} in probe {self.name!r}")

    def profile(self, name: str) -> ViewerProfile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise SpecError("spec.networkProfiles", f"no network profile {name!r} in probe {self.name!r}")


def read_probe(
    spec: object,
    *,
    name: str,
    namespace: str = "",
    uid: str = "",
    integration: str | None = None,
    where: str = "spec",
    schema: Schema | None = None,
) -> ProbeSpec:
    """``spec`` (a CanaryProbe's, or the standalone config's ``probe``) as a ``ProbeSpec``.

    ``schema`` is the CanaryProbe CRD's unless a shell extends it (the standalone
    config); ``integration`` overrides ``integrationRef.name`` where a shell names the
    integration otherwise. Raises ``SpecError`` naming the field under ``where``.
    """
    raw: Mapping[str, Any] = (schema or Schema.of(KIND_PROBE)).read(spec, where=where)
    if integration is None:
        integration = str(raw["integrationRef"]["name"])
    placement: Mapping[str, Any] = raw["placement"]
    for index, toleration in enumerate(placement.get("tolerations", [])):
        # The CRD's CEL rule on a toleration (the Deployment would be refused later).
        if toleration.get("operator") == "Exists" and toleration.get("value"):
            raise SpecError(
                f"{where}.placement.tolerations[{index}].value",
                "a toleration with operator Exists takes no value",
            )
    return ProbeSpec(
        name=name,
        namespace=namespace,
        uid=uid,
        integration=integration,
        tenants=tuple(_tenant(entry) for entry in raw["tenants"]),
        cameras=int(raw["camerasPerTenant"]),
        fps=float(raw["fps"]),
        width=int(raw["frameSize"]["width"]),
        height=int(raw["frameSize"]["height"]),
        profiles=_profiles(raw, where),
        viewers=int(raw["viewersPerProfile"]),
        transports=tuple(raw["transports"]),
        freshness_seconds=float(raw["freshnessSeconds"]),
        freshness_by_path={str(k): float(v) for k, v in raw.get("freshnessByPath", {}).items()},
        spread_across=str(placement["spreadAcross"]),
        when_unsatisfiable=str(placement["whenUnsatisfiable"]),
        node_selector={str(k): str(v) for k, v in placement.get("nodeSelector", {}).items()},
        tolerations=tuple(placement.get("tolerations", [])),
        resources=raw.get("resources", {}),
        coverage_target=_coverage_target(raw.get("coverageTarget"), f"{where}.coverageTarget"),
    )


def _coverage_target(spec: Mapping[str, Any] | None, where: str) -> CoverageTarget:
    try:
        return CoverageTarget.from_spec(spec, where)
    except CoverageError as error:
        raise SpecError(error.field, error.message) from None


def _tenant(entry: Mapping[str, Any]) -> Tenant:
    ref = entry.get("tokenSecretRef")
    return Tenant(str(entry["id"]), None if ref is None else (str(ref["name"]), str(ref["key"])))


def _profiles(spec: Mapping[str, Any], where: str) -> tuple[ViewerProfile, ...]:
    custom: dict[str, Mapping[str, Any]] = {}
    for index, entry in enumerate(spec.get("customNetworkProfiles", [])):
        name = str(entry["name"])
        # The CRD's CEL rules on customNetworkProfiles items.
        if name in PRESETS:
            raise SpecError(
                f"{where}.customNetworkProfiles[{index}].name",
                "good, poor and extreme are presets; give a custom profile another name "
                "(and preset to base it on one)",
            )
        if "preset" in entry and any(key in entry for key in _EXPLICIT_PROFILE_KEYS):
            raise SpecError(
                f"{where}.customNetworkProfiles[{index}].preset",
                "a profile is either a preset or explicit impairments "
                f"({', '.join(_EXPLICIT_PROFILE_KEYS)}), not both",
            )
        custom[name] = entry
    profiles: list[ViewerProfile] = []
    for index, name in enumerate(spec["networkProfiles"]):
        if name in custom:
            entry = custom[name]
            profile_spec: str | Mapping[str, Any]
            if "preset" in entry:
                profile_spec = str(entry["preset"])
            else:
                profile_spec = {"name": name} | {k: entry[k] for k in _EXPLICIT_PROFILE_KEYS if k in entry}
            profile = ViewerProfile(name, profile_spec, str(entry["shaper"]))
        elif name in PRESETS:
            profile = ViewerProfile(name, name)
        else:
            raise SpecError(
                f"{where}.networkProfiles[{index}]",
                f"{name!r} is neither a preset ({', '.join(PRESETS)}) nor in customNetworkProfiles",
            )
        # Fail here, on the probe, rather than in a crash-looping viewer pod.
        profile.network_profile(where=f"{where}.customNetworkProfiles[{name}]")
        profiles.append(profile)
    return tuple(profiles)
