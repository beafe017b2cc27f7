"""A configuration that is hostile, huge or simply wrong is refused at load, naming the
field, with bounded memory and time: nothing waits for the moment a leak is paged or an
integration switched off to fail.

Each case was accepted (or escaped as a traceback, or took seconds and gigabytes) before.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from canarywatch.api import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from canarywatch.errors import MAX_MESSAGE
from canarywatch.markers import Keyring
from canarywatch.markers.keyring import KeyringError
from canarywatch.spec import Schema, SpecError, crd
from canarywatch.standalone import ConfigError, StandaloneConfig, load_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "standalone.yaml"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"


def example() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return doc


def refused(doc: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        StandaloneConfig.from_mapping(doc)
    return raised.value


def refused_file(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return raised.value


def billion_laughs(levels: int = 9) -> str:
    """``levels`` anchors of nine aliases each: 9**levels strings once expanded."""
    nodes = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    nodes += [f"&l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return "[" + ", ".join(nodes) + "]"


# -- the file itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encode", "expected"),
    [
        (lambda text: text.encode("utf-16"), "is UTF-16 text"),
        (lambda text: text.encode("utf-16-le"), "NUL byte"),
        (lambda text: text.encode("utf-32"), "is UTF-32 text"),
        (lambda text: text.replace("acme-cloud", "acmé-cloud").encode("latin-1"), "is not UTF-8: byte 0xe9"),
    ],
)
def test_a_file_that_is_not_utf8_is_named_as_such(tmp_path: Path, encode: Any, expected: str) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_bytes(encode(EXAMPLE.read_text()))
    error = refused_file(path)
    assert error.field == "<file>" and expected in error.message


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.read_bytes())
    assert load_config(path).integration.name == "acme-cloud"


@pytest.mark.parametrize(
    "text",
    [
        "integration: " + "[" * 100_000 + "]" * 100_000 + "\n",  # flow style
        "".join(" " * depth + "a:\n" for depth in range(200)),  # block style
    ],
    ids=["flow", "block"],
)
def test_deep_nesting_is_an_error_not_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    error = refused_file(path)
    assert error.field == "<file>" and "nest" in error.message


def test_a_billion_laughs_in_a_validated_field_is_refused_before_it_expands(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("  name: acme-cloud", f"  name: {billion_laughs()}")
    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    error = refused_file(path)
    assert error.field == "<file>" and "billion-laughs" in error.message


def test_anchors_that_stay_small_are_still_yaml(tmp_path: Path) -> None:
    doc = EXAMPLE.read_text().replace(
        '    snapshot: {url: "http://127.0.0.1:9000/v3/devices/{tenant}/{camera}/live.jpg",',
        '    snapshot: {url: "http://127.0.0.1:9000/v3/devices/{tenant}/{camera}/live.jpg", headers: *auth}\n'
        '    mjpeg: {url: "http://127.0.0.1:9000/v3/devices/{tenant}/{camera}/live.mjpg",',
    )
    doc = doc.replace(
        'headers: {Authorization: "Bearer {token}"}}', 'headers: &auth {Authorization: "Bearer {token}"}}', 1
    )
    path = tmp_path / "anchors.yaml"
    path.write_text(doc)
    assert load_config(path).integration.viewer.snapshot is not None


@pytest.mark.parametrize("source", ["/dev/zero", "big"])
def test_an_oversized_config_is_refused_after_reading_only_the_cap(tmp_path: Path, source: str) -> None:
    path = Path(source)
    if source == "big":
        path = tmp_path / "big.yaml"
        path.write_text(EXAMPLE.read_text() + "#" + "x" * 1_000_000 + "\n")
    error = refused_file(path)
    assert error.field == "<file>" and "larger than 256 KiB" in error.message


# -- values ------------------------------------------------------------------------------


def test_an_oversized_token_file_is_refused_naming_the_field() -> None:
    doc = example()
    doc["probe"]["tenants"][1] = {"id": "bravo-2", "tokenFrom": {"file": "/dev/zero"}}
    config = StandaloneConfig.from_mapping(doc)
    with pytest.raises(Exception) as raised:
        config.probe.tenants[1].token.resolve()
    assert getattr(raised.value, "field", None) == "probe.tenants[1].tokenFrom.file"
    assert "larger than 64 KiB" in str(raised.value)


@pytest.mark.parametrize("key", ["short", ROUTING_KEY + "0", "0123456789abcdef0123456789abcde!"])
def test_a_routing_key_of_the_wrong_shape_is_refused_at_load(key: str) -> None:
    doc = example()
    doc["integration"]["pagerduty"] = {"routingKey": key}
    error = refused(doc)
    assert error.field == "integration.pagerduty.routingKey"
    assert "32-character" in error.message and key not in error.message


def test_a_routing_key_from_a_variable_is_checked_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = example()
    doc["integration"]["pagerduty"] = {"routingKeyFrom": {"env": "PD_KEY"}}
    pagerduty = StandaloneConfig.from_mapping(doc).integration.pagerduty
    assert pagerduty is not None
    monkeypatch.setenv("PD_KEY", "too-short")
    with pytest.raises(ConfigError) as raised:
        pagerduty.key()
    assert raised.value.field == "integration.pagerduty.routingKey"
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    assert pagerduty.key() == ROUTING_KEY


@pytest.mark.parametrize(
    "url",
    ["not a url", "http://:::::/x", "ftp://host/x", "http://exa mple/", "http://host:99999/", "https://"],
)
def test_a_garbage_pagerduty_url_names_pagerduty_url(url: str) -> None:
    doc = example()
    doc["integration"]["pagerduty"] = {"routingKey": ROUTING_KEY, "url": url}
    assert refused(doc).field == "integration.pagerduty.url"


def test_good_pagerduty_urls_load() -> None:
    for url in (
        "https://events.pagerduty.com/v2/enqueue",
        "http://127.0.0.1:8765/v2/enqueue",
        "http://[::1]:80/",
    ):
        doc = example()
        doc["integration"]["pagerduty"] = {"routingKey": ROUTING_KEY, "url": url}
        pagerduty = StandaloneConfig.from_mapping(doc).integration.pagerduty
        assert pagerduty is not None and pagerduty.url == url


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\x00"])
@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("killSwitch", "webhook"), "integration.killSwitch.webhook.headers.Authorization"),
        (("viewer", "snapshot"), "integration.viewer.snapshot.headers.Authorization"),
        (("camera", "push"), "integration.camera.push.headers.Authorization"),
    ],
)
def test_line_breaks_in_a_header_are_refused_without_quoting_it(
    breaker: str, where: tuple[str, str], field: str
) -> None:
    doc = example()
    value = f"Bearer s3cret{breaker}X-Injected: 1"
    doc["integration"][where[0]][where[1]]["headers"] = {"Authorization": value}
    error = refused(doc)
    assert error.field == field
    assert "line breaks" in error.message and "s3cret" not in str(error)


def test_nul_in_a_commands_argv_is_refused_at_load() -> None:
    doc = example()
    doc["integration"]["killSwitch"] = {"command": {"argv": ["/bin/echo", "a\x00b"], "resumeArgv": ["true"]}}
    assert refused(doc).field == "integration.killSwitch.command.argv[1]"
    doc["integration"]["killSwitch"] = {"command": {"argv": ["true"], "resumeArgv": ["x\x00"]}}
    assert refused(doc).field == "integration.killSwitch.command.resume_argv[0]"


def test_an_error_message_quotes_a_huge_value_only_in_part() -> None:
    doc = example()
    doc["integration"]["policy"]["mode"] = "!" * 1_000_000
    error = refused(doc)
    assert error.field == "integration.policy.mode"
    assert len(str(error)) < MAX_MESSAGE


def test_a_trailing_newline_does_not_slip_through_a_pattern() -> None:
    # Python's `$` matches before a final newline; the API server's does not.
    doc = example()
    doc["probe"]["tenants"][0]["id"] = "acme-7\n"
    assert refused(doc).field == "probe.tenants[0].id"


# -- one rule with the CRDs ----------------------------------------------------------------


def _crd_spec(kind: str) -> dict[str, Any]:
    (version,) = (v for v in crd(kind)["spec"]["versions"] if v.get("storage"))
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def test_the_keyring_and_the_crd_have_one_tenant_id_rule() -> None:
    tenant_id = _crd_spec("CanaryProbe")["properties"]["tenants"]["items"]["properties"]["id"]
    assert (tenant_id["pattern"], tenant_id["maxLength"]) == (TENANT_ID_PATTERN, TENANT_ID_MAX_LENGTH)
    for refused_id in ("acme-", "acme.", "-acme", "acme\n", "a" * 64, "ac me"):
        with pytest.raises(KeyringError):
            Keyring.generate([refused_id])
    assert "a" * 63 in Keyring.generate(["a" * 63])


def test_the_crd_refuses_line_breaks_in_headers_and_a_garbage_pagerduty_url() -> None:
    """The operator reads CameraIntegrations with this schema (and the API server
    enforces the same ``pattern`` on create)."""
    schema = Schema.of("CameraIntegration")
    example_file = Path(__file__).parents[2] / "examples" / "cameraintegration.yaml"
    documents = yaml.safe_load_all(example_file.read_text())
    (spec,) = (d["spec"] for d in documents if d.get("kind") == "CameraIntegration")
    schema.read(spec, where="spec")  # the example is valid

    broken = copy.deepcopy(spec)
    broken["viewer"]["snapshot"]["headers"] = {"X-Tenant": "{tenant}\r\nX-Injected: 1"}
    with pytest.raises(SpecError) as raised:
        schema.read(broken, where="spec")
    assert raised.value.field == "spec.viewer.snapshot.headers.X-Tenant"

    broken = copy.deepcopy(spec)
    broken.setdefault("pagerduty", {"routingKeySecretRef": {"name": "pd", "key": "key"}})["url"] = (
        "http://:::/"
    )
    with pytest.raises(SpecError) as raised:
        schema.read(broken, where="spec")
    assert raised.value.field == "spec.pagerduty.url"


def test_a_keyring_file_is_read_capped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from canarywatch.cli import main

    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"version": 1, "tenants": {}}) + " " * 2_000_000)
    argv = f"frame render --keyring {ring} --tenant a --camera 1 --seq 1 --out {tmp_path / 'f.png'}"
    assert main(argv.split()) == 2
    assert "is larger than 1024 KiB" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["/dev/zero", "laughs"])
def test_the_relays_config_is_read_with_the_same_bounds(tmp_path: Path, source: str) -> None:
    from canarywatch.relay import RelayConfigError, load_relay_config

    path = Path(source)
    if source == "laughs":
        path = tmp_path / "relay.yaml"
        path.write_text(f"tenants: {{acme-7: t}}\nadmin_token: {billion_laughs()}\n")
    with pytest.raises(RelayConfigError) as raised:
        load_relay_config(path)
    assert raised.value.field == "<file>"
    assert "larger than 256 KiB" in raised.value.message or "billion-laughs" in raised.value.message
