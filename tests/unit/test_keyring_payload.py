import json

import pytest

from canarywatch.markers.keyring import Keyring, KeyringError
from canarywatch.markers.payload import (
    PAYLOAD_BYTES,
    Payload,
    keyed_mac,
    mac,
    pack_signed,
    split_signed,
    tenant_tag,
)


def test_payload_roundtrips_all_fields() -> None:
    p = Payload(tenant_tag=tenant_tag("acme-7"), camera=65535, seq=2**32 - 1, time=1_795_000_000.25)
    assert Payload.from_bytes(p.to_bytes()) == p


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("camera", {"camera": 70000}), ("seq", {"seq": -1}), ("time", {"time": -5.0})],
)
def test_payload_rejects_out_of_range_fields(field: str, kwargs: dict[str, float]) -> None:
    base = {"tenant_tag": tenant_tag("a"), "camera": 0, "seq": 0, "time": 0.0}
    with pytest.raises(ValueError, match=field):
        Payload(**{**base, **kwargs})  # type: ignore[arg-type]


def test_signed_message_has_fixed_length_and_mac_depends_on_key() -> None:
    p = Payload(tenant_tag=tenant_tag("a"), camera=1, seq=2, time=3.0)
    a, b = pack_signed(p, b"k" * 32), pack_signed(p, b"j" * 32)
    assert len(a) == PAYLOAD_BYTES
    assert split_signed(a)[0] == split_signed(b)[0]
    assert split_signed(a)[1] != split_signed(b)[1]


def test_a_keyed_mac_is_the_mac_under_that_key_for_every_message() -> None:
    sign = keyed_mac(b"k" * 32)
    messages = [b"", b"a", bytes(range(14)), b"x" * 200]
    assert [sign(m) for m in messages] == [mac(b"k" * 32, m) for m in messages]
    assert sign(b"a") == mac(b"k" * 32, b"a")  # the prepared key is not consumed by use
    assert keyed_mac(b"j" * 32)(b"a") != sign(b"a")


@pytest.mark.parametrize("length", [16, 32, 63, 64, 65, 100, 200])
def test_a_keyed_mac_is_hmac_sha256_for_keys_shorter_and_longer_than_a_block(length: int) -> None:
    # RFC 2104: a key longer than SHA-256's 64-byte block is hashed first, a shorter one padded
    key = bytes((7 * i + length) % 256 for i in range(length))
    assert keyed_mac(key)(b"fields") == mac(key, b"fields")


def test_keyring_json_roundtrip_and_verify() -> None:
    ring = Keyring.generate(["acme-7", "bravo-2"])
    again = Keyring.from_json(ring.to_json())
    assert again.keys == ring.keys
    fields = Payload(tenant_tag=tenant_tag("bravo-2"), camera=0, seq=1, time=2.0).to_bytes()
    signed = pack_signed(Payload.from_bytes(fields), ring.key("bravo-2"))
    assert again.verify(*split_signed(signed)[:1], fields[1:4], split_signed(signed)[1]) == "bravo-2"


def test_verify_tries_every_key_whatever_the_tag_claims() -> None:
    ring = Keyring.generate(["acme-7", "bravo-2"])
    # tag says acme-7, but the MAC is bravo-2's: attribution follows the MAC
    fields = Payload(tenant_tag=tenant_tag("acme-7"), camera=0, seq=1, time=2.0).to_bytes()
    assert ring.verify(fields, fields[1:4], mac(ring.key("bravo-2"), fields)) == "bravo-2"
    assert ring.verify(fields, fields[1:4], b"\0" * 8) is None


def test_repr_never_shows_keys() -> None:
    ring = Keyring.generate(["acme-7"])
    assert "acme-7" in repr(ring)
    assert ring.to_json().split('"key": "')[1].split('"')[0] not in repr(ring)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"version": 2, "tenants": {}}, "version"),
        ({"version": 1, "tenants": {}}, "tenants"),
        ({"version": 1, "tenants": {"bad id!": {"key": "AAAA"}}}, "tenants.bad id!"),
        ({"version": 1, "tenants": {"a": {"key": "not base64!"}}}, "tenants.a.key"),
        ({"version": 1, "tenants": {"a": {"key": "AAAA"}}}, "tenants.a.key"),
        ({"version": 1, "tenants": {"a": {}}}, "tenants.a.key"),
    ],
)
def test_bad_keyrings_name_the_field(doc: object, field: str) -> None:
    with pytest.raises(KeyringError) as e:
        Keyring.from_json(json.dumps(doc))
    assert str(e.value).startswith(field)


def test_not_json_is_a_clear_error() -> None:
    with pytest.raises(KeyringError, match="not valid JSON"):
        Keyring.from_json("{")


def test_generate_rejects_duplicates_and_empty() -> None:
    with pytest.raises(KeyringError, match="twice"):
        Keyring.generate(["a", "a"])
    with pytest.raises(KeyringError, match="at least one"):
        Keyring.generate([])
