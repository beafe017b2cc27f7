"""The realcluster tier: the chart, the operator and its agents as pods on a real node.

``realnode`` starts one single-node Kubernetes per session (``tests/support/realnode.py``,
inside namespaces of its own); ``canarywatch_image`` builds the image with
``hack/build-image.sh`` and imports it into the node.  Without root or the node's tools
the tier is skipped on a developer machine and fails under CI
(``availability.unavailable``).

When a test fails, its report gets a section with the node's state: components, pods,
events and the logs of every container in the test's namespace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from availability import unavailable
from helm_release import BUILD_IMAGE, Image, ImageBuildError, build_image
from realnode import NodeError, RealNode, missing_prerequisites

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_REF = "localhost/canarywatch:realcluster"

_nodes: list[RealNode] = []
_figures: dict[str, float] = {}


@pytest.fixture(scope="session")
def realnode() -> Iterator[RealNode]:
    missing = missing_prerequisites()
    if missing:
        unavailable("the realcluster node needs: " + "; ".join(missing))
    node = RealNode()
    try:
        node.start()
    except NodeError as err:
        pytest.fail(f"the realcluster node did not start: {err}", pytrace=False)
    _nodes.append(node)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def canarywatch_image(realnode: RealNode) -> Image:
    """The canarywatch image built from this checkout, imported into the node."""
    if not BUILD_IMAGE.exists():
        unavailable(f"{BUILD_IMAGE} is missing")
    t = time.monotonic()
    try:
        archive = build_image(IMAGE_REF)
    except ImageBuildError as e:
        pytest.fail(str(e), pytrace=False)
    _figures["image build"] = time.monotonic() - t
    t = time.monotonic()
    realnode.import_image(archive)
    _figures["image import"] = time.monotonic() - t
    return Image.parse(IMAGE_REF)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _nodes and call.when in ("setup", "call"):
        namespace = getattr(item.module, "NAMESPACE", None)
        report.sections.append(("realcluster node state", _nodes[0].describe_failure(namespace)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for node in _nodes:
        figures = {**node.timings, **_figures}
        terminalreporter.write_line(
            f"realcluster node {node.id} started: " + ", ".join(f"{k} {v:.1f}s" for k, v in figures.items())
        )
