"""A viewer pod's in-cluster credentials (``agents.kubeapi``): what is missing or
unusable is a configuration error naming the variable, before the viewer starts; and
building the creator loads no Kubernetes client library (a fresh interpreter counts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from daemons import make_pki

from canarywatch.agents.env import EnvError
from canarywatch.agents.viewer import kubernetes_creator

_ENV = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}


def _throwaway_ca(directory: Path) -> Path:
    """A CA certificate of its own (a machine without a system CA bundle runs these too)."""
    make_pki(directory, ca_name="canarywatch kubeapi test", server_ips=["127.0.0.1"], leaves={})
    return directory / "ca.crt"


def _account(tmp_path: Path, *, token: str | None = "t0ken", ca: str | None = None) -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    if token is not None:
        (account / "token").write_text(token)
    if ca is not None:
        (account / "ca.crt").write_text(ca)
    else:
        (account / "ca.crt").write_bytes(_throwaway_ca(tmp_path / "pki").read_bytes())
    return account


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"KUBERNETES_SERVICE_HOST": "127.0.0.1"}, "KUBERNETES_SERVICE_PORT"),
        ({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": ""}, "KUBERNETES_SERVICE_PORT"),
    ],
)
def test_an_address_without_a_port_names_the_variable(
    tmp_path: Path, environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(EnvError) as error:
        kubernetes_creator(environ, "ns", service_account_dir=_account(tmp_path))
    assert error.value.variable == variable


@pytest.mark.parametrize(
    ("token", "ca", "problem"),
    [
        (None, None, "token"),
        ("  \n", None, "token is empty"),
        ("t0ken", "not a certificate", "ca.crt"),
    ],
)
def test_missing_or_unusable_credentials_are_a_configuration_error(
    tmp_path: Path, token: str | None, ca: str | None, problem: str
) -> None:
    account = _account(tmp_path, token=token, ca=ca)
    with pytest.raises(EnvError) as error:
        kubernetes_creator(_ENV, "ns", service_account_dir=account)
    assert error.value.variable == "KUBERNETES_SERVICE_HOST"
    assert str(account) in str(error.value) and "t0ken" not in str(error.value)
    if problem != "ca.crt":
        assert problem in str(error.value)


def test_a_viewer_pod_reports_without_the_client_library(tmp_path: Path) -> None:
    # The client library is ~340 modules and ~19 MiB of every viewer pod
    # (`canarywatch bench footprint`); in a cluster the viewer does without it.
    account = _account(tmp_path)
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from canarywatch.agents.viewer import kubernetes_creator\n"
        f"kubernetes_creator({_ENV!r}, 'ns', service_account_dir=Path({str(account)!r}))\n"
        "print(json.dumps([m for m in ('kubernetes', 'av') if m in sys.modules]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []
