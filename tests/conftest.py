"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from canarywatch.markers import Decoder, Keyring

TENANTS = ("acme-7", "bravo-2", "charlie-3", "delta-4")


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring.generate(TENANTS)


@pytest.fixture(scope="session")
def decoder(keyring: Keyring) -> Decoder:
    return Decoder(keyring)
