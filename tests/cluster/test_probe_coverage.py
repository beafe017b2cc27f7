"""A CanaryProbe's coverage in its status and the operator's metrics, from the fetch
rates the operator measures on its ready viewers between two status summaries, against
a real API server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import controlplane
import pytest
from availability import unavailable
from test_crds import eventually, example
from test_operator import (  # noqa: F401  (fixtures)
    Api,
    Loop,
    Operator,
    WebhookSink,
    api,
    integration,
    loop,
    operator_crds,
    pagerduty,
    start_operator,
    webhook,
)
from test_operator_rbac import scrape_ready_viewer

from canarywatch.controller import manifests
from canarywatch.controller.kube import CANARY_PROBES, DEPLOYMENTS, SECRETS

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_crds")]


@pytest.fixture(scope="module")
def control_plane() -> Iterator[controlplane.ControlPlane]:
    """This module's own API server, without a controller manager: its Deployment
    controller would reset the ready viewer this test fakes."""
    plane = controlplane.ControlPlane(controller_manager=False)
    try:
        plane.start()
    except controlplane.ToolsMissingError as error:
        plane.stop()
        unavailable(str(error))
    try:
        yield plane
    finally:
        plane.stop()


def test_the_status_states_the_probes_detection_power_and_warns_when_it_is_too_small(
    api: Api,  # noqa: F811
    start_operator: Callable[..., Operator],  # noqa: F811
    webhook: WebhookSink,  # noqa: F811
    loop: Loop,  # noqa: F811
) -> None:
    probe = example("CanaryProbe")
    probe["spec"]["integrationRef"]["name"] = "relay"
    # 1 in 1000 fetches leaks, to be caught within 5 s: ~1400 fetches/s, far above one viewer.
    probe["spec"]["coverageTarget"] = {"leakRate": 0.001, "detectWithinSeconds": 5, "confidence": 0.999}
    api.apply(integration("relay", webhook))
    api.apply(probe)
    operator = start_operator(CANARYWATCH_STATUS_INTERVAL_SECONDS="1")
    name = probe["metadata"]["name"]
    eventually(
        lambda: (
            api.get(SECRETS, manifests.keyring_secret_name(name)) is not None
            and api.get(DEPLOYMENTS, manifests.viewer_name(name)) is not None
        ),
        what="the probe to be built",
    )
    viewer = scrape_ready_viewer(api, loop, name, "acme-7", "good")
    stop = threading.Event()

    def fetch() -> None:  # the viewer keeps receiving frames on its snapshot path
        while not stop.wait(0.02):
            viewer.record_frame(
                integration="relay",
                probe=name,
                tenant="acme-7",
                path="snapshot",
                network_profile="good",
                verdict="ok",
            )

    fetching = threading.Thread(target=fetch, daemon=True)
    fetching.start()
    try:
        status = eventually(
            lambda: (s := api.status(CANARY_PROBES, name)).get("coverage") and s,
            what="the coverage measured between two summaries",
        )
    finally:
        stop.set()
        fetching.join(timeout=5)
    [row] = status["coverage"]
    assert (row["path"], row["networkProfile"], row["streams"]) == ("snapshot", "good", 1)
    assert row["fetchesPerSecond"] > 0 and row["sufficient"] is False
    assert row["requiredFetchesPerSecond"] > row["fetchesPerSecond"]
    assert row["statement"].startswith(
        "a leak affecting 0.1 % of fetches on the good-network snapshot path is detected within "
    )
    assert row["statement"].endswith("with 99.9 % probability")
    assert status["coverageSummary"].endswith("(snapshot/good); too slow for the target")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["CoverageSufficient"]["status"] == "False"
    assert conditions["CoverageSufficient"]["reason"] == "ProbeTooSmall"
    assert {"Ready", "Degraded"} <= conditions.keys()  # the summary's own conditions stay
    eventually(lambda: "ProbeTooSmall" in api.events(name), what="the ProbeTooSmall warning Event")

    labels = {"namespace": api.namespace, "integration": "relay", "probe": name}
    stream = labels | {"path": "snapshot", "network_profile": "good"}
    assert (operator.metric("canarywatch_coverage_fetches_per_second", stream) or 0) > 0
    assert (operator.metric("canarywatch_coverage_detect_seconds", stream) or 0) > 5
    # the target is set and missed: the shortfall the CanarywatchProbeTooSmall alert reads
    assert (operator.metric("canarywatch_coverage_shortfall_fetches_per_second", stream) or 0) > 0
    expected = len(probe["spec"]["tenants"]) * len(probe["spec"].get("networkProfiles", ["good", "poor"]))
    assert operator.metric("canarywatch_probe_viewers_expected", labels) == expected

    # A deleted probe's series go with it: no alert waits for its viewers.
    api.delete(CANARY_PROBES, name)
    eventually(
        lambda: operator.metric("canarywatch_probe_viewers_expected", labels) is None,
        what="the deleted probe's gauges to go",
    )
