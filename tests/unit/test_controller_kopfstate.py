"""Where kopf keeps its state, and the essence it compares (``controller.kopfstate``)."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from canarywatch.controller.kopfstate import KindDiffBaseStorage, essential

PREFIX = "canarywatch.io"


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "p-camera",
            "namespace": "ns",
            "labels": {"app.kubernetes.io/managed-by": "canarywatch-operator"},
            "annotations": {
                "canarywatch.io/config-hash": "abc",
                f"{PREFIX}/last-handled-configuration": "{}",
            },
            "managedFields": [{"manager": "canarywatch-operator", "fieldsV1": {"f:spec": {}}}],
            "resourceVersion": "7",
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c"}]}}},
        "status": {"replicas": 1, "readyReplicas": 1},
    }


def _probe() -> dict[str, Any]:
    return {
        "apiVersion": "canarywatch.io/v1alpha1",
        "kind": "CanaryProbe",
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "labels": {"team": "a"},
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"integrationRef": {"name": "relay"}, "tenants": {"count": 2}},
        "status": {
            "ready": 2,
            "kopf": {"last-handled-configuration": '{"spec": {}}', "progress": {}},
        },
    }


@pytest.mark.parametrize(
    ("body", "kopf_storage"),
    [
        (_deployment(), kopf.AnnotationsDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration")),
        (_probe(), kopf.StatusDiffBaseStorage(field="status.kopf.last-handled-configuration")),
    ],
    ids=["deployment", "probe"],
)
@pytest.mark.parametrize(
    "extra_fields",
    [None, ["spec.replicas"], ["status.ready"], [("status", "readyReplicas")], ["metadata.managedFields"]],
)
def test_the_essence_is_the_one_kopf_builds(
    body: dict[str, Any], kopf_storage: kopf.DiffBaseStorage, extra_fields: list[Any] | None
) -> None:
    """Built without the status and managed fields, the essence is still exactly kopf's:
    a handler's diff, and the last-handled configuration stored, do not change."""
    ours = KindDiffBaseStorage(prefix=PREFIX).build(
        body=kopf.Body(copy.deepcopy(body)), extra_fields=extra_fields
    )
    theirs = kopf_storage.build(body=kopf.Body(copy.deepcopy(body)), extra_fields=extra_fields)
    assert ours == theirs


def test_the_bulky_parts_are_left_out_before_copying() -> None:
    slim = essential(kopf.Body(_probe()))
    assert "status" not in slim
    assert "managedFields" not in slim["metadata"]
    assert slim["spec"] == _probe()["spec"]
    assert "status" in essential(kopf.Body(_probe()), ["status.ready"])


def test_the_original_is_left_untouched() -> None:
    body = _deployment()
    essential(kopf.Body(body))
    assert body == _deployment()
