"""Connection-quality decision from HTTP Client Hints."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from canarywatch.relay.hints import Quality, QualityRequestError, choose_variant


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, Quality.ORIGINAL),
        ({"ECT": "4g"}, Quality.ORIGINAL),
        ({"ECT": "3g"}, Quality.LOW),
        ({"ECT": "2g"}, Quality.LOW),
        ({"ect": " Slow-2G "}, Quality.LOW),
        ({"Downlink": "0.95"}, Quality.LOW),
        ({"Downlink": "1.0"}, Quality.ORIGINAL),
        ({"Downlink": "10"}, Quality.ORIGINAL),
        ({"RTT": "650"}, Quality.LOW),
        ({"RTT": "600"}, Quality.ORIGINAL),
        ({"Save-Data": "on"}, Quality.LOW),
        # Broken hints are advice that can be ignored, never a reason to fail.
        ({"Downlink": "fast"}, Quality.ORIGINAL),
        ({"RTT": "nan"}, Quality.ORIGINAL),
        ({"Downlink": "-1"}, Quality.ORIGINAL),
        ({"ECT": "4g", "Downlink": "0.3"}, Quality.LOW),
    ],
)
def test_client_hints(headers: dict[str, str], expected: Quality) -> None:
    assert choose_variant(CIMultiDict(headers), None) is expected


@pytest.mark.parametrize(
    ("param", "headers", "expected"),
    [
        ("low", {}, Quality.LOW),
        ("original", {"ECT": "2g"}, Quality.ORIGINAL),
        ("auto", {"ECT": "2g"}, Quality.LOW),
    ],
)
def test_quality_parameter_overrides_hints(param: str, headers: dict[str, str], expected: Quality) -> None:
    assert choose_variant(CIMultiDict(headers), param) is expected


def test_unknown_quality_lists_accepted_values() -> None:
    with pytest.raises(QualityRequestError, match="low, auto"):
        choose_variant(CIMultiDict(), "ultra")
