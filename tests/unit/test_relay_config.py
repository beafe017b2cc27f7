"""Relay configuration: defaults, parsing from YAML mappings, errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canarywatch.relay import Fault, PullSource, RelayConfig, RelayConfigError, load_relay_config

VALID: dict[str, Any] = {"tenants": {"alice": "token-a", "bob": "token-b"}, "admin_token": "adm"}


def test_defaults_describe_a_correct_relay() -> None:
    config = RelayConfig(tenants={"alice": "token-a"}, admin_token="adm")
    assert config.fault is Fault.NONE
    assert config.wyze_window_seconds == 60.0
    assert config.stale_ttl_seconds is None
    assert config.pull_sources == ()


def test_from_mapping_parses_every_kind_of_field() -> None:
    config = RelayConfig.from_mapping(
        {
            **VALID,
            "fault": "wyze-2024",
            "event_every_frames": 5,
            "wyze_window_seconds": 30,
            "stale_ttl_seconds": 3600,
            "pull_sources": [
                {
                    "tenant": "bob",
                    "camera": "porch",
                    "url": "http://cam.local/snapshot.jpg",
                    "headers": {"X-Api-Key": "k"},
                    "interval_seconds": 0.5,
                }
            ],
        }
    )
    assert config.fault is Fault.WYZE_2024
    assert config.event_every_frames == 5
    assert config.pull_sources == (
        PullSource("bob", "porch", "http://cam.local/snapshot.jpg", {"X-Api-Key": "k"}, 0.5),
    )


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        ({"tenants": None}, "tenants", "mapping"),
        ({"tenants": {}}, "tenants", "at least one"),
        ({"tenants": {"bad name!": "t"}}, "tenants.bad name!", "invalid name"),
        ({"tenants": {"alice": ""}}, "tenants.alice", "non-empty"),
        ({"tenants": {"alice": "same", "bob": "same"}}, "tenants.bob", "another tenant"),
        ({"admin_token": "token-a"}, "admin_token", "differ"),
        ({"fault": "heartbleed"}, "fault", "xiaomi-2019, wyze-2024"),
        ({"event_every_frames": 0}, "event_every_frames", ">= 1"),
        ({"event_every_frames": True}, "event_every_frames", "integer"),
        ({"wyze_window_seconds": -1}, "wyze_window_seconds", ">= 0"),
        ({"stale_ttl_seconds": 0}, "stale_ttl_seconds", "> 0"),
        ({"snapshot_ttl_seconds": float("inf")}, "snapshot_ttl_seconds", "finite"),
        ({"low_variant_quality": 101}, "low_variant_quality", "between 1 and 100"),
        ({"max_frame_bytes": "2MB"}, "max_frame_bytes", "integer"),
        ({"colour": "blue"}, "colour", "unknown setting"),
        ({"pull_sources": {}}, "pull_sources", "list"),
        ({"pull_sources": [{"tenant": "alice", "camera": "c"}]}, "pull_sources[0].url", "required"),
        (
            {"pull_sources": [{"tenant": "eve", "camera": "c", "url": "http://x"}]},
            "pull_sources[0].tenant",
            "unknown tenant",
        ),
        (
            {"pull_sources": [{"tenant": "alice", "camera": "c", "url": "ftp://x"}]},
            "pull_sources[0].url",
            "http(s)",
        ),
        (
            {"pull_sources": [{"tenant": "alice", "camera": "c", "url": "http://x", "x": 1}]},
            "pull_sources[0].x",
            "unknown setting",
        ),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], field: str, hint: str) -> None:
    with pytest.raises(RelayConfigError) as caught:
        RelayConfig.from_mapping({**VALID, **change})
    assert caught.value.field == field
    assert hint in str(caught.value)


def test_missing_required_settings_are_named() -> None:
    with pytest.raises(RelayConfigError) as caught:
        RelayConfig.from_mapping({"tenants": {"alice": "t"}})
    assert caught.value.field == "admin_token"


def test_constructor_accepts_a_fault_name_too() -> None:
    config = RelayConfig(tenants={"a": "t"}, admin_token="adm", fault="idor")  # type: ignore[arg-type]
    assert config.fault is Fault.IDOR


def test_load_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text("tenants:\n  alice: token-a\nadmin_token: adm\nfault: xiaomi-2019\n", encoding="utf-8")
    assert load_relay_config(path).fault is Fault.XIAOMI_2019


@pytest.mark.parametrize(("text", "field"), [("", "<root>"), ("tenants: [", "<file>")])
def test_load_rejects_empty_or_broken_yaml(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RelayConfigError) as caught:
        load_relay_config(path)
    assert caught.value.field == field


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(RelayConfigError, match="cannot read"):
        load_relay_config(tmp_path / "absent.yaml")


def test_secrets_stay_out_of_repr() -> None:
    config = RelayConfig(
        tenants={"alice": "s3cret-tenant"},
        admin_token="s3cret-admin",
        pull_sources=(PullSource("alice", "c", "http://x", {"X-Api-Key": "s3cret-camera"}),),
    )
    assert "s3cret" not in repr(config)
