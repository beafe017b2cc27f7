"""The standalone configuration: the issue's example works as written; errors name the field."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from canarywatch.standalone import ConfigError, StandaloneConfig, load_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "standalone.yaml"


def example() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return doc


def test_the_documented_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(EXAMPLE)
    assert config.integration.name == "acme-cloud"
    assert [t.id for t in config.probe.tenants] == ["acme-7", "bravo-2"]
    assert [p.name for p in config.probe.network_profiles] == ["good", "poor"]
    assert config.probe.cameras_per_tenant == 2 and config.probe.fps == 2
    assert config.integration.policy.mode.value == "enforce"
    assert len(config.integration.kill_actions) == 1
    monkeypatch.setenv("BRAVO_TOKEN", "t-bravo")
    assert config.probe.tenants[1].token.resolve() == "t-bravo"
    push = config.integration.camera.push
    assert push is not None
    rendered = push.render(tenant="acme-7", camera="1", token="t-acme")
    assert rendered.url == "http://127.0.0.1:9000/v3/devices/acme-7/1/frame"
    assert rendered.headers["Authorization"] == "Bearer t-acme"


def _broken(path: str, value: object) -> dict[str, Any]:
    doc = example()
    node: Any = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("probe.tenants.1.tokenFrom", {"vault": "x"}, "probe.tenants[1].tokenFrom"),
        ("probe.tenants.1.tokenFrom", _DELETE, "probe.tenants[1].token"),
        ("probe.tenants.0.token", 42, "probe.tenants[0].token"),
        ("probe.tenants.0.id", "not ok!", "probe.tenants[0].id"),
        ("probe.camerasPerTenant", 0, "probe.camerasPerTenant"),
        ("probe.fps", "fast", "probe.fps"),
        ("probe.networkProfiles", ["good", "awful"], "probe.networkProfiles[1]"),
        ("probe.colour", "yellow", "probe.colour"),
        ("integration.policy.mode", "panic", "integration.policy.mode"),
        ("integration.camera.push.url", "ftp://x/{tenant}", "integration.camera.push.url"),
        ("integration.viewer.snapshot.url", "http://h/{tenantt}", "integration.viewer.snapshot.url"),
        ("integration.killSwitch", _DELETE, "integration.killSwitch"),
        ("integration.killSwitch.webhook.url", "not a url", "integration.killSwitch.webhook.url"),
        ("integration.name", None, "integration.name"),
        ("integration.viewer", {}, "integration.viewer"),
        ("probe.transports", ["snapshot", "mjpeg"], "probe.transports[1]"),
        ("probe.transports", ["authz"], "probe.transports[0]"),
        (
            "integration.camera.publish",
            {"protocol": "rtsp", "url": "rtsp://h/{camera}"},
            "integration.camera",
        ),
        ("probe.transports", ["snapshot", "hls"], "probe.transports[1]"),
        ("probe.freshnessByPath", {"hls": 0}, "probe.freshnessByPath.hls"),
        ("probe.freshnessByPath", {"webrtc": 1}, "probe.freshnessByPath.webrtc"),
        ("integration.viewer.hls", {"url": "rtsp://h/{tenant}/{camera}"}, "integration.viewer.hls.url"),
        ("integration.viewer.rtsp", {"url": "http://h/{tenant}/{camera}"}, "integration.viewer.rtsp.url"),
        ("integration.viewer.rtsp", {"url": "rtsp://h/{tenant}"}, "integration.viewer.rtsp.url"),
        ("integration.viewer.whep", {"url": "rtsp://h/{tenant}/{camera}"}, "integration.viewer.whep.url"),
        ("integration.viewer.whep", {"url": "http://h/{tenant}/whep"}, "integration.viewer.whep.url"),
        ("probe.freshnessByPath", {"whep": 0.01}, "probe.freshnessByPath.whep"),
        (
            "integration.viewer.authzProbe",
            {"url": "rtmp://h/{tenant}/{camera}"},
            "integration.viewer.authzProbe.url",
        ),
    ],
)
def test_errors_name_the_field(path: str, value: object, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        StandaloneConfig.from_mapping(_broken(path, value))
    assert e.value.field == field, str(e.value)
    assert str(e.value).startswith(field)


def test_the_authorization_probe_takes_rtsp_urls() -> None:
    """An RTSP mount is probed like an HTTP path (viewer.transports.authz)."""
    doc = example()
    doc["integration"]["viewer"]["authzProbe"] = {"url": "rtsp://{token}@127.0.0.1:8554/{tenant}/{camera}"}
    doc["probe"]["transports"] = ["snapshot", "authz"]
    endpoints = StandaloneConfig.from_mapping(doc).viewer_endpoints()
    assert endpoints["authzProbe"].render(tenant="bravo-2", camera="0", token="acme:t").url == (
        "rtsp://acme%3At@127.0.0.1:8554/bravo-2/0"
    )


def test_viewers_fetch_through_the_probes_transports_only() -> None:
    """As a pod viewer does: an endpoint the probe does not list is not fetched."""
    doc = example()
    doc["integration"]["viewer"]["mjpeg"] = {
        "url": "http://127.0.0.1:9000/v3/devices/{tenant}/{camera}/live.mjpg"
    }
    assert list(StandaloneConfig.from_mapping(doc).viewer_endpoints()) == ["snapshot"]
    doc["probe"]["transports"] = ["mjpeg", "snapshot"]
    assert list(StandaloneConfig.from_mapping(doc).viewer_endpoints()) == ["mjpeg", "snapshot"]


def test_unset_token_env_is_named_when_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAVO_TOKEN", raising=False)
    config = StandaloneConfig.from_mapping(example())
    with pytest.raises(
        ValueError, match=r"probe\.tenants\[1\]\.tokenFrom\.env: environment variable BRAVO_TOKEN"
    ):
        config.probe.tenants[1].token.resolve()


def test_alert_only_needs_no_kill_switch() -> None:
    doc = _broken("integration.killSwitch", _DELETE)
    doc["integration"]["policy"] = {"mode": "alert-only"}
    assert StandaloneConfig.from_mapping(doc).integration.kill_actions == ()


def test_kill_switch_accepts_the_crd_action_list() -> None:
    doc = example()
    doc["integration"]["killSwitch"] = {
        "actions": [
            {
                "name": "relay-admin",
                "type": "webhook",
                "webhook": {"url": "http://127.0.0.1:9000/v3/admin/kill"},
            },
            {"name": "flag", "type": "command", "command": {"argv": ["/bin/true"]}},
        ]
    }
    actions = StandaloneConfig.from_mapping(doc).integration.kill_actions
    assert [a.name for a in actions] == ["relay-admin", "flag"]
    doc["integration"]["killSwitch"]["actions"][1]["type"] = "scale"
    with pytest.raises(ConfigError) as e:
        StandaloneConfig.from_mapping(doc)
    assert e.value.field == "integration.killSwitch.actions[1].type"


def test_poor_network_viewers_are_on_by_default() -> None:
    doc = example()
    del doc["probe"]["networkProfiles"]
    assert [p.name for p in StandaloneConfig.from_mapping(doc).probe.network_profiles] == ["good", "poor"]


@pytest.mark.parametrize(
    ("publish", "field"),
    [
        ({"protocol": "rtsp", "url": "rtmp://h/{tenant}/{camera}"}, "integration.camera.publish.url"),
        ({"protocol": "mjpeg", "url": "rtsp://h/{tenant}/{camera}"}, "integration.camera.publish.url"),
        ({"protocol": "rtsp", "url": "rtsp://h/{tenant}"}, "integration.camera.publish.url"),
        ({"protocol": "srt", "url": "rtsp://h/{camera}"}, "integration.camera.publish.protocol"),
        ({"protocol": "whip", "url": "rtsp://h/{tenant}/{camera}"}, "integration.camera.publish.url"),
        (
            {"protocol": "rtmp", "url": "rtmp://h/{camera}", "bitrate": 5},
            "integration.camera.publish.bitrate",
        ),
    ],
)
def test_a_streaming_camera_block_is_checked(publish: dict[str, Any], field: str) -> None:
    doc = example()
    doc["integration"]["camera"] = {"publish": publish}
    with pytest.raises(ConfigError) as caught:
        StandaloneConfig.from_mapping(doc)
    assert caught.value.field == field


def test_a_streaming_camera_block_loads_with_the_crds_defaults() -> None:
    doc = example()
    doc["integration"]["camera"] = {
        "publish": {"protocol": "rtsp", "url": "rtsp://{tenant}:{token}@127.0.0.1:8554/{tenant}/{camera}"}
    }
    stream = StandaloneConfig.from_mapping(doc).integration.camera.stream
    assert stream is not None and (stream.keyframe_interval, stream.bitrate) == (2.0, 1_000_000)
    rendered = stream.template.render(tenant="acme-7", camera="0", token="t:k@x")
    assert rendered.url == "rtsp://acme-7:t%3Ak%40x@127.0.0.1:8554/acme-7/0"


def test_video_paths_are_configured_like_the_others_with_their_own_freshness() -> None:
    doc = example()
    doc["integration"]["viewer"] |= {
        "hls": {
            "url": "http://127.0.0.1:8080/hls/{tenant}_{camera}.m3u8",
            "headers": {"Authorization": "Bearer {token}"},
        },
    }
    doc["probe"] |= {"transports": ["hls", "authz"], "freshnessByPath": {"hls": 8}}
    doc["integration"]["viewer"]["authzProbe"] = doc["integration"]["viewer"]["hls"]
    config = StandaloneConfig.from_mapping(doc)
    assert list(config.viewer_endpoints()) == ["hls", "authzProbe"]
    assert dict(config.probe.spec.freshness_by_path) == {"hls": 8.0}


def test_a_hub_viewer_is_a_fulfillment_url_and_a_device_template() -> None:
    doc = example()
    doc["integration"]["viewer"]["hub"] = {
        "url": "https://vendor.example/smarthome",
        "headers": {"Authorization": "Bearer {token}"},
    }
    doc["probe"]["transports"] = ["hub"]
    config = StandaloneConfig.from_mapping(doc)
    viewer = config.integration.viewer
    assert viewer.hub is not None and viewer.hub.method == "POST" and viewer.hub_device == "{camera}"
    assert set(config.viewer_endpoints()) == {"hub"}
    doc["integration"]["viewer"]["hub"]["device"] = "door"
    with pytest.raises(ConfigError) as caught:
        StandaloneConfig.from_mapping(doc)
    assert caught.value.field == "integration.viewer.hub.device"


def test_an_rtsp_viewer_takes_its_credentials_in_the_url() -> None:
    doc = example()
    doc["integration"]["viewer"]["rtsp"] = {"url": "rtsp://{tenant}:{token}@127.0.0.1:8554/{tenant}/{camera}"}
    doc["probe"] |= {"transports": ["rtsp"], "freshnessByPath": {"rtsp": 2}}
    config = StandaloneConfig.from_mapping(doc)
    rtsp = config.viewer_endpoints()["rtsp"].render(tenant="acme-7", camera="0", token="p@ss")
    assert rtsp.url == "rtsp://acme-7:p%40ss@127.0.0.1:8554/acme-7/0" and "p@ss" not in rtsp.source


def test_mp4_and_llhls_viewers_are_http_endpoints_with_their_own_freshness() -> None:
    doc = example()
    doc["integration"]["viewer"]["mp4"] = {"url": "http://127.0.0.1:8080/mp4/{tenant}_{camera}.mp4"}
    doc["integration"]["viewer"]["llhls"] = {"url": "http://127.0.0.1:8080/ll/{tenant}/{camera}.m3u8"}
    doc["probe"] |= {"transports": ["mp4", "llhls"], "freshnessByPath": {"mp4": 4, "llhls": 2}}
    config = StandaloneConfig.from_mapping(doc)
    assert set(config.viewer_endpoints()) >= {"mp4", "llhls"}
    doc["integration"]["viewer"]["mp4"] = {"url": "rtsp://127.0.0.1/{tenant}/{camera}"}
    with pytest.raises(ConfigError) as caught:
        StandaloneConfig.from_mapping(doc)
    assert caught.value.field == "integration.viewer.mp4.url"


def test_webrtc_both_ways_carries_the_token_as_a_bearer_header() -> None:
    doc = example()
    bearer = {"Authorization": "Bearer {token}"}
    doc["integration"]["camera"] = {
        "publish": {
            "protocol": "whip",
            "url": "http://127.0.0.1:8889/{tenant}/{camera}/whip",
            "headers": bearer,
        }
    }
    doc["integration"]["viewer"]["whep"] = {
        "url": "http://127.0.0.1:8889/{tenant}/{camera}/whep",
        "headers": bearer,
    }
    doc["probe"] |= {"transports": ["whep"], "freshnessByPath": {"whep": 0.5}}
    config = StandaloneConfig.from_mapping(doc)
    stream = config.integration.camera.stream
    assert stream is not None and stream.protocol == "whip"
    published = stream.template.render(tenant="acme-7", camera="0", token="s3cret")
    assert published.headers["Authorization"] == "Bearer s3cret"
    whep = config.viewer_endpoints()["whep"].render(tenant="acme-7", camera="0", token="s3cret")
    assert (
        whep.url == "http://127.0.0.1:8889/acme-7/0/whep" and whep.headers["Authorization"] == "Bearer s3cret"
    )
    assert dict(config.probe.spec.freshness_by_path) == {"whep": 0.5}
