"""A viewer pod's one Kubernetes API call, with its ServiceAccount: create a LeakIncident.

A pod is given its ServiceAccount's token and the cluster's CA in
``/var/run/secrets/kubernetes.io/serviceaccount`` and the API server's address in
``KUBERNETES_SERVICE_HOST``/``_PORT``; the viewer POSTs the LeakIncident's JSON there
and reads the status. The Kubernetes client library would do the same for ~19 MiB
more per viewer pod (its ~340 modules with pydantic; ``canarywatch bench footprint``),
so the library is left to local runs with a ``KUBECONFIG`` (``agents.viewer``).

Like the library: the token is read again for every request (the kubelet rotates
projected tokens), the server must present a certificate of that CA, and no proxy from
the environment is used. Unlike a default urllib opener, redirects are not followed:
the token goes to the API server and nowhere else.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from canarywatch.agents.env import EnvError

__all__ = ["SERVICE_ACCOUNT_DIR", "ApiStatusError", "ReportRejected", "in_cluster_creator"]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: Seconds for connecting and for each read: an attempt must fit in the shutdown flush.
TIMEOUT = 5.0
_HOST = "KUBERNETES_SERVICE_HOST"
_PORT = "KUBERNETES_SERVICE_PORT"

Manifest = Mapping[str, Any]


class ReportRejected(Exception):
    """The API server refused the LeakIncident itself (400/422): sending it again cannot help."""


class ApiStatusError(Exception):
    """Any other HTTP error status; ``status`` and ``reason`` as the client library's
    ``ApiException`` has them (the reporter logs those and tries again)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.reason = reason


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then an HTTPError like any other status


def in_cluster_creator(
    environ: Mapping[str, str],
    namespace: str,
    *,
    path: str,
    account_dir: Path | None = None,
) -> Callable[[Manifest], None]:
    """A blocking ``create(manifest)`` POSTing to ``path`` (``/apis/<group>/<version>/
    namespaces/{namespace}/<plural>``) of the API server the pod's environment names,
    with the token and CA in ``account_dir`` (default: ``SERVICE_ACCOUNT_DIR``).

    Raises ``EnvError`` now when the pod has no usable address, token or CA.
    """
    account_dir = account_dir or SERVICE_ACCOUNT_DIR
    host, port = environ.get(_HOST, ""), environ.get(_PORT, "")
    if not host or not port:
        raise EnvError(_PORT if host else _HOST, "the API server's address is missing (in-cluster config)")
    token_file = account_dir / "token"
    try:
        _token(token_file)
        context = ssl.create_default_context(cafile=str(account_dir / "ca.crt"))
    except (OSError, ValueError, ssl.SSLError) as error:
        raise EnvError(_HOST, f"no Kubernetes API credentials in {account_dir}: {error}") from None
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    url = f"https://{authority}{path.format(namespace=quote(namespace, safe=''))}"
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context), _NoRedirect()
    )

    def create(manifest: Manifest) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps(dict(manifest)).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {_token(token_file)}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with opener.open(request, timeout=TIMEOUT) as response:
                response.read()
        except urllib.error.HTTPError as error:
            with error:
                body = error.read(2000).decode(errors="replace")
            if error.code == 409:  # an earlier attempt got through; its answer was lost
                return
            if error.code in (400, 422):
                raise ReportRejected(f"HTTP {error.code}: {body[:500]}") from None
            raise ApiStatusError(error.code, str(error.reason)) from None

    return create


def _token(path: Path) -> str:
    token = path.read_text(encoding="ascii").strip()
    if not token:
        raise ValueError(f"{path.name} is empty")
    return token
