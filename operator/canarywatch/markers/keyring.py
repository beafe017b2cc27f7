"""Per-tenant signing keys and their JSON file format.

Format (version 1)::

    {
      "version": 1,
      "tenants": {
        "acme-7":  {"key": "<base64 of 32 random bytes>"},
        "bravo-2": {"key": "..."}
      }
    }

Tenant ids are 1–63 characters of ``[A-Za-z0-9._-]`` (they end up in Kubernetes
names and Prometheus labels). Keys are at least 16 bytes; ``generate`` makes 32.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from canarywatch.api import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from canarywatch.errors import shown
from canarywatch.markers.payload import keyed_mac, tenant_tag

__all__ = ["KEYRING_VERSION", "MIN_KEY_BYTES", "Keyring", "KeyringError", "validate_tenant_id"]

KEYRING_VERSION = 1
MIN_KEY_BYTES = 16
_TENANT_RE = re.compile(TENANT_ID_PATTERN)


class KeyringError(ValueError):
    """The keyring is malformed; the message names the offending field."""


def validate_tenant_id(tenant: str, *, where: str = "tenant") -> str:
    # fullmatch: `$` alone would let a trailing newline through (the API server's `$` does not).
    if not isinstance(tenant, str) or len(tenant) > TENANT_ID_MAX_LENGTH or not _TENANT_RE.fullmatch(tenant):
        raise KeyringError(
            f"{where}: {shown(tenant)} is not a valid tenant id (1-63 characters of letters, "
            "digits, '.', '_', '-', starting and ending with a letter or digit)"
        )
    return tenant


@dataclass(frozen=True)
class Keyring:
    """Tenant id → secret key. Never log or print the keys themselves."""

    keys: Mapping[str, bytes]
    _by_tag: Mapping[bytes, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    # (tenant, keyed MAC) of the tenants with each tag, and of every tenant
    _signers_by_tag: Mapping[bytes, tuple[tuple[str, Callable[[bytes], bytes]], ...]] = field(
        init=False, repr=False, compare=False
    )
    _signers: tuple[tuple[str, bytes, Callable[[bytes], bytes]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_tag: dict[bytes, list[str]] = {}
        for tenant, key in self.keys.items():
            validate_tenant_id(tenant)
            if len(key) < MIN_KEY_BYTES:
                raise KeyringError(f"tenants.{tenant}.key: at least {MIN_KEY_BYTES} bytes required")
            by_tag.setdefault(tenant_tag(tenant), []).append(tenant)
        object.__setattr__(self, "_by_tag", {t: tuple(v) for t, v in by_tag.items()})
        macs = {tenant: keyed_mac(key) for tenant, key in self.keys.items()}
        signers = {t: tuple((tenant, macs[tenant]) for tenant in v) for t, v in by_tag.items()}
        object.__setattr__(self, "_signers_by_tag", signers)
        everyone = tuple((tenant, tenant_tag(tenant), macs[tenant]) for tenant in self.keys)
        object.__setattr__(self, "_signers", everyone)

    def __repr__(self) -> str:  # keys must never reach a log line
        return f"Keyring(tenants={sorted(self.keys)})"

    def __contains__(self, tenant: object) -> bool:
        return tenant in self.keys

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.keys))

    def __len__(self) -> int:
        return len(self.keys)

    def key(self, tenant: str) -> bytes:
        try:
            return self.keys[tenant]
        except KeyError:
            raise KeyringError(f"tenant {tenant!r} is not in the keyring") from None

    def knows_tag(self, tag: bytes) -> bool:
        """Whether any tenant in the keyring has this public tag (for error messages only)."""
        return tag in self._by_tag

    def candidates(self, tag: bytes) -> Iterator[tuple[str, bytes]]:
        """Tenants whose tag matches first (the usual case), then every other tenant.

        Trying every key keeps `forged` honest: a frame is only forged when its MAC
        fails under *all* known keys, whatever its tag claims.
        """
        first = self._by_tag.get(tag, ())
        for tenant in first:
            yield tenant, self.keys[tenant]
        for tenant, key in self.keys.items():
            if tenant not in first:
                yield tenant, key

    def verify(self, fields: bytes, tag: bytes, signature: bytes) -> str | None:
        """The tenant whose key produced `signature` over `fields`, or None."""

        # `candidates`' order, without its generator: this runs on every frame
        for tenant, sign in self._signers_by_tag.get(tag, ()):
            if hmac.compare_digest(sign(fields), signature):
                return tenant
        for tenant, own_tag, sign in self._signers:
            if own_tag != tag and hmac.compare_digest(sign(fields), signature):
                return tenant
        return None

    @classmethod
    def generate(cls, tenants: Iterable[str]) -> Keyring:
        keys: dict[str, bytes] = {}
        for tenant in tenants:
            validate_tenant_id(tenant)
            if tenant in keys:
                raise KeyringError(f"tenant {tenant!r} is listed twice")
            keys[tenant] = secrets.token_bytes(32)
        if not keys:
            raise KeyringError("tenants: at least one tenant is required")
        return cls(keys)

    def to_json(self) -> str:
        body = {
            "version": KEYRING_VERSION,
            "tenants": {t: {"key": base64.b64encode(k).decode()} for t, k in sorted(self.keys.items())},
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise KeyringError(f"keyring is not valid JSON: {e.msg} at line {e.lineno}") from e
        return cls.from_mapping(doc)

    @classmethod
    def from_mapping(cls, doc: object) -> Keyring:
        if not isinstance(doc, dict):
            raise KeyringError("keyring: expected a JSON object")
        if doc.get("version") != KEYRING_VERSION:
            raise KeyringError(f"version: expected {KEYRING_VERSION}, got {doc.get('version')!r}")
        tenants = doc.get("tenants")
        if not isinstance(tenants, dict) or not tenants:
            raise KeyringError("tenants: expected a non-empty object of tenant id → {key}")
        keys: dict[str, bytes] = {}
        for tenant, entry in tenants.items():
            validate_tenant_id(tenant, where=f"tenants.{tenant}")
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise KeyringError(f"tenants.{tenant}.key: expected a base64 string")
            try:
                keys[tenant] = base64.b64decode(entry["key"], validate=True)
            except (binascii.Error, ValueError) as e:
                raise KeyringError(f"tenants.{tenant}.key: not valid base64") from e
        return cls(keys)
