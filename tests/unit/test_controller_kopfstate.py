"""Where kopf keeps its state, and the essence it compares (``controller.kopfstate``)."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from canarywatch.controller.kopfstate import KindDiffBaseStorage, KindProgressStorage, essential

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
    [
        None,
        ["spec.replicas"],
        ["status.ready"],
        [("status", "readyReplicas")],
        ["metadata.managedFields"],
        [("metadata", "annotations", "kill-switch.canarywatch.io/resume")],
    ],
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
    assert set(slim["metadata"]) == {"labels", "annotations"} & set(_probe()["metadata"])
    assert slim["spec"] == _probe()["spec"]
    assert "status" in essential(kopf.Body(_probe()), ["status.ready"])


def test_the_original_is_left_untouched() -> None:
    body = _deployment()
    essential(kopf.Body(body))
    assert body == _deployment()


def _essences() -> list[dict[str, Any]]:
    """Essences as kopf builds them, and what it reads back from its stores."""
    built = [KindDiffBaseStorage(prefix=PREFIX).build(body=kopf.Body(b)) for b in (_deployment(), _probe())]
    return [
        *[dict(e) for e in built],
        {"spec": {"a": 1}, "status": {"kopf": {"progress": {"h": {"retries": 1}}}}},
        {"spec": {}, "status": {"kopf": {"progress": {}, "other": 1}, "phase": "Active"}},
        {"status": {"kopf": {"progress": {"h": {}}}}},
        {"metadata": {"labels": {}, "annotations": {f"{PREFIX}/h": "{}"}}, "spec": {"x": [1, {"y": 2}]}},
        {"metadata": {"annotations": {f"{PREFIX}/h": "{}", "team": "a"}, "labels": {"l": "v"}}},
        {"metadata": {"annotations": {"other.io/h": "{}"}}, "status": {}},
    ]


@pytest.mark.parametrize("essence", _essences())
def test_kopfs_state_is_cleared_as_kopfs_stores_clear_it(essence: dict[str, Any]) -> None:
    """The same result as kopf's two stores in turn, without their deep copies, and
    with the essence given left as it was."""
    expected = kopf.AnnotationsProgressStorage(prefix=PREFIX).clear(
        essence=kopf.StatusProgressStorage(field="status.kopf.progress").clear(essence=copy.deepcopy(essence))
    )
    given = copy.deepcopy(essence)
    assert KindProgressStorage(prefix=PREFIX).clear(essence=given) == expected
    assert given == essence
