"""The names the operator, the benchmarks and the tests import from ``builders``.

The manifest builders live in ``canarywatch.controller.manifests`` (one module per
concern), the spec model in ``canarywatch.spec``, the vocabulary in ``canarywatch.api``;
this module only keeps the older import path working. New code imports from those.
"""

from __future__ import annotations

from canarywatch.api import (
    API_VERSION,
    CONFIG_HASH_ANNOTATION,
    LABEL_INTEGRATION,
    LABEL_NETWORK_PROFILE,
    LABEL_PROBE,
    LABEL_ROLE,
    LABEL_TENANT,
    AgentRole,
)
from canarywatch.api import KIND_PROBE as PROBE_KIND
from canarywatch.controller import manifests
from canarywatch.controller.manifests import *  # noqa: F403 -- the same public names
from canarywatch.spec import ProbeSpec, Tenant, ViewerProfile

__all__ = [  # noqa: PLE0604 -- manifests.__all__ is a list of str
    *manifests.__all__,
    "API_VERSION",
    "CONFIG_HASH_ANNOTATION",
    "LABEL_INTEGRATION",
    "LABEL_NETWORK_PROFILE",
    "LABEL_PROBE",
    "LABEL_ROLE",
    "LABEL_TENANT",
    "PROBE_KIND",
    "AgentRole",
    "ProbeSpec",
    "Tenant",
    "ViewerProfile",
]
