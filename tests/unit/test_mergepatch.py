"""RFC 7386 merge patches, computed: the status the API server stores, and the keys a
kill-switch patch action changes (what its resume restores)."""

from __future__ import annotations

from canarywatch.controller.mergepatch import ABSENT, leaves, merged, paths


def test_merged_is_what_the_api_server_stores() -> None:
    base = {"phase": "Active", "killSwitch": {"state": "Engaged", "resumedAt": "t"}, "kept": [1]}
    patch = {"killSwitch": {"state": "Resumed", "resumedAt": None}, "kept": [2], "new": {"a": None}}
    assert merged(base, patch) == {
        "phase": "Active",
        "killSwitch": {"state": "Resumed"},
        "kept": [2],
        "new": {},
    }
    assert base["killSwitch"] == {"state": "Engaged", "resumedAt": "t"}, "the base is not changed"


def test_leaves_list_each_key_with_its_value_before_and_after() -> None:
    current = {"data": {"hub-integration": "enabled", "other": "x"}, "spec": 3}
    patch = {"data": {"hub-integration": "disabled", "other": None, "added": "y"}, "spec": {"a": 1}}
    assert list(leaves(patch, current)) == [
        (("data", "hub-integration"), "enabled", "disabled"),
        (("data", "other"), "x", ABSENT),
        (("data", "added"), ABSENT, "y"),
        (("spec",), 3, {"a": 1}),
    ]
    assert paths(patch) == ["data.hub-integration", "data.other", "data.added", "spec.a"]
