"""Handing a create's fields over to the operator's server-side apply: which objects need
it, and the managed fields it writes (the API server's side is in
tests/cluster/test_probe_creation.py)."""

from __future__ import annotations

from typing import Any

from canarywatch.controller.indexes import deployments_by_probe
from canarywatch.controller.kube import FIELD_MANAGER
from canarywatch.controller.ownership import HANDOVER, Handover, applied_entries, pending_handover


def entry(manager: str, operation: str, fields: dict[str, Any], **extra: str) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "time": "2026-12-08T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        **extra,
    }


CREATED = entry(FIELD_MANAGER, "Update", {"f:spec": {"f:replicas": {}, "f:template": {"f:env": {}}}})
STATUS = entry("kube-controller-manager", "Update", {"f:status": {"f:replicas": {}}}, subresource="status")
USER = entry("kubectl", "Apply", {"f:metadata": {"f:labels": {"f:team": {}}}})


def test_an_object_created_and_never_applied_needs_its_entry_renamed() -> None:
    metadata = {"managedFields": [USER, CREATED, STATUS]}
    assert pending_handover(metadata) == Handover(1, merge=False)
    handed = applied_entries(metadata["managedFields"])
    assert handed is not None
    assert [(e["manager"], e["operation"]) for e in handed] == [
        ("kubectl", "Apply"),
        ("kube-controller-manager", "Update"),
        (FIELD_MANAGER, "Apply"),
    ]
    assert handed[-1]["fieldsV1"] == CREATED["fieldsV1"]
    assert handed[:2] == [USER, STATUS]  # the others' entries untouched


def test_an_applied_object_needs_nothing() -> None:
    applied = entry(FIELD_MANAGER, "Apply", {"f:spec": {"f:replicas": {}}})
    # Our writes to a subresource are not the object's fields.
    scaled = entry(FIELD_MANAGER, "Update", {"f:spec": {"f:replicas": {}}}, subresource="scale")
    for entries in ([], [applied, STATUS], [applied, scaled]):
        assert pending_handover({"managedFields": entries}) is None
        assert applied_entries(entries) is None
    assert pending_handover({}) is None


def test_a_create_and_an_apply_of_ours_merge_into_one_apply_owning_both() -> None:
    applied = entry(FIELD_MANAGER, "Apply", {"f:spec": {"f:replicas": {}, "f:paused": {}}})
    entries = [applied, CREATED, STATUS]
    assert pending_handover({"managedFields": entries}) == Handover(1, merge=True)
    handed = applied_entries(entries)
    assert handed is not None
    [ours] = [e for e in handed if e["manager"] == FIELD_MANAGER]
    assert ours["operation"] == "Apply"
    assert ours["fieldsV1"] == {"f:spec": {"f:replicas": {}, "f:paused": {}, "f:template": {"f:env": {}}}}
    assert applied["fieldsV1"] == {"f:spec": {"f:replicas": {}, "f:paused": {}}}  # inputs kept as they were


def test_the_deployments_index_says_which_deployment_needs_a_handover() -> None:
    def body(*entries: dict[str, Any]) -> Any:
        return {
            "metadata": {
                "name": "p-camera",
                "namespace": "ns",
                "ownerReferences": [{"kind": "CanaryProbe", "controller": True, "uid": "u1"}],
                "managedFields": list(entries),
            },
            "spec": {},
            "status": {},
        }

    [created] = deployments_by_probe(body(CREATED, STATUS)).values()
    assert created[HANDOVER] == Handover(0)
    [applied] = deployments_by_probe(body(entry(FIELD_MANAGER, "Apply", {}), STATUS)).values()
    assert applied[HANDOVER] is None
