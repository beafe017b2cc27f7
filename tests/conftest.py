"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/support holds helpers shared by the tiers (control plane, tool availability)
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

# One definition of the control-plane fixtures for every tier, hence one control plane.
from cluster_fixtures import control_plane, namespace, pytest_terminal_summary

from canarywatch.markers import Decoder, Keyring

__all__ = ["control_plane", "namespace", "pytest_terminal_summary"]

TENANTS = ("acme-7", "bravo-2", "charlie-3", "delta-4")


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring.generate(TENANTS)


@pytest.fixture(scope="session")
def decoder(keyring: Keyring) -> Decoder:
    return Decoder(keyring)
