"""One incident → page mapping: the pod's (standalone) incident and the operator's
LeakIncident of the same leak page the same."""

from __future__ import annotations

from typing import Any, cast

from canarywatch.agents.reporting import build_leak_incident
from canarywatch.controller.paging import incident_page, page_options
from canarywatch.controller.runtime import Runtime
from canarywatch.controller.settings import OperatorSettings
from canarywatch.incidents.events import make_dedup_key, validate_event
from canarywatch.incidents.pages import IncidentPage, PageOptions, kill_switch_outcome, trigger_event
from canarywatch.incidents.records import IncidentRecord
from canarywatch.metrics import Metrics

KEY = "R" * 32


def record() -> IncidentRecord:
    received = 1_780_000_000.25  # milliseconds exact: the LeakIncident keeps milliseconds
    return IncidentRecord(
        id="cross-tenant-20260528T000000Z-1-ab12",
        integration="relay",
        probe="relay-canaries",
        verdict="cross_tenant",
        reason="signed by tenant acme-7",
        viewer_tenant="bravo-2",
        viewer_camera=1,
        stream="bravo-2/1/snapshot",
        path="snapshot",
        network_profile="poor",
        observed_tenant="acme-7",
        observed_camera=1,
        observed_seq=42,
        observed_time=received - 1,
        frame_received_at=received,
        recorded_at=received + 0.125,
        detection_seconds=0.125,
        mode="enforce",
    )


def test_the_pod_and_the_operator_page_one_leak_the_same() -> None:
    # Before the merge, Monitor._page and controller.paging.trigger built this event
    # twice: "… on relay — viewer …" against "… on relay: viewer …", and different
    # custom_details (no observed_seq, reason or detection time from the operator).
    incident = record()
    leak = build_leak_incident(incident, evidence=None, namespace="shop", pod="viewer-0")
    integration = {"metadata": {"name": "relay", "namespace": "shop"}, "spec": {}}
    rt = Runtime(settings=OperatorSettings(leader_election=False), kube=cast(Any, None), metrics=Metrics())
    standalone = trigger_event(IncidentPage.from_record(incident), routing_key=KEY)
    operator = trigger_event(incident_page(rt, leak, integration, {}), routing_key=KEY)
    assert standalone["payload"]["summary"] == (
        "canarywatch: cross_tenant on relay — viewer bravo-2 was shown acme-7 via snapshot"
    )
    # Only which incident it is, and where it lives, differ.
    for event, name, where in (
        (standalone, incident.id, "relay"),
        (operator, leak["metadata"]["name"], "shop/relay"),
    ):
        assert validate_event(event) == []
        assert event.pop("dedup_key") == make_dedup_key(integration="relay", incident=name)
        assert event["payload"].pop("source") == f"canarywatch/{where}"
        assert event["payload"]["custom_details"].pop("incident") == name
        event["payload"]["custom_details"].pop("namespace")
        event["payload"]["custom_details"].pop("describe")
    assert operator == standalone
    assert standalone["payload"]["custom_details"]["observed_seq"] == 42


def test_the_integration_chooses_severity_component_and_group() -> None:
    options = PageOptions.from_spec(
        {"severity": {"cross_tenant": "warning"}, "component": "hub", "group": "edge"}
    )
    payload = trigger_event(IncidentPage.from_record(record()), routing_key=KEY, options=options)["payload"]
    assert (payload["severity"], payload["component"], payload["group"]) == ("warning", "hub", "edge")
    default = trigger_event(IncidentPage.from_record(record()), routing_key=KEY)["payload"]
    assert (default["severity"], default["component"], default["group"]) == (
        "critical",
        "snapshot",
        "relay-canaries",
    )


def test_a_page_links_the_runbook_the_dashboard_and_names_cluster_and_client() -> None:
    # Before: no links, no client, no cluster; a responder started from the summary alone.
    incident = record()
    leak = build_leak_incident(incident, evidence=None, namespace="shop", pod="viewer-0")
    integration = {
        "metadata": {"name": "relay", "namespace": "shop"},
        "spec": {
            "pagerduty": {
                "routingKeySecretRef": {"name": "pd", "key": "k"},
                "dashboardUrl": "https://grafana.example/d/cw?var-namespace={namespace}&var-integration={integration}&var-path={path}",
            }
        },
    }
    settings = OperatorSettings(leader_election=False, cluster_name="eu-west-prod")
    rt = Runtime(settings=settings, kube=cast(Any, None), metrics=Metrics())
    status = {"shutdown": {"done": True, "seconds": 0.412}}
    event = trigger_event(
        incident_page(rt, leak, integration, status), routing_key=KEY, options=page_options(rt, integration)
    )
    assert validate_event(event) == []
    dashboard = "https://grafana.example/d/cw?var-namespace=shop&var-integration=relay&var-path=snapshot"
    assert event["links"] == [
        {
            "href": "https://github.com/canarywatch/canarywatch/blob/main/README.md#runbook-canarywatchcrosstenantleak",
            "text": "Runbook: cross_tenant",
        },
        {"href": dashboard, "text": "Dashboard: relay"},
    ]
    assert (event["client"], event["client_url"]) == ("canarywatch", dashboard)
    assert event["payload"]["source"] == "canarywatch/eu-west-prod/shop/relay"
    details = event["payload"]["custom_details"]
    assert details["cluster"] == "eu-west-prod"
    assert details["kill_switch"] == "engaged in 0.412 s"
    assert details["describe"] == f"kubectl -n shop describe leakincident {leak['metadata']['name']}"


def test_the_runbook_can_be_the_integrations_own() -> None:
    options = PageOptions.from_spec({"runbookUrl": "https://wiki.example/leaks"})
    event = trigger_event(IncidentPage.from_record(record()), routing_key=KEY, options=options)
    assert event["links"] == [{"href": "https://wiki.example/leaks", "text": "Runbook: cross_tenant"}]
    assert event["client_url"] == "https://wiki.example/leaks"


def test_the_kill_switch_outcome_as_a_page_tells_it() -> None:
    assert kill_switch_outcome(done=False, skipped="alert-only: the kill switch is left alone") == (
        "not engaged: alert-only: the kill switch is left alone"
    )
    assert kill_switch_outcome(done=True) == "engaged"
    assert kill_switch_outcome(done=False).startswith("engaging")
    incident = record()
    incident.shutdown.skipped = "kill cap reached"
    details = trigger_event(IncidentPage.from_record(incident), routing_key=KEY)["payload"]["custom_details"]
    assert details["kill_switch"] == "not engaged: kill cap reached"


def test_auto_resolve_is_on_unless_the_integration_says_false() -> None:
    assert PageOptions.from_spec({}).auto_resolve
    assert PageOptions.from_spec({"autoResolve": True}).auto_resolve
    assert not PageOptions.from_spec({"autoResolve": False}).auto_resolve
