"""The spec model: the CRDs' schemas (validation, defaults) and the typed readers both
shells use. Pure: no kopf, no Kubernetes client, no aiohttp; it imports neither
``canarywatch.controller`` nor ``canarywatch.standalone``."""

from canarywatch.spec.probe import SHAPERS, ProbeSpec, Tenant, ViewerProfile, read_probe
from canarywatch.spec.schema import CRD_FILES, Schema, SpecError, crd, field_path, spec_schema

__all__ = [
    "CRD_FILES",
    "SHAPERS",
    "ProbeSpec",
    "Schema",
    "SpecError",
    "Tenant",
    "ViewerProfile",
    "crd",
    "field_path",
    "read_probe",
    "spec_schema",
]
