"""HTTP sessions for the requests canarywatch sends out on its users' behalf: PagerDuty
events and kill-switch webhooks. Only these honour the standard proxy environment
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, read by aiohttp's ``trust_env``), so an
operator behind an egress proxy can still page and switch an integration off.

Not through a proxy, on purpose:

- viewers fetching from the integration under test: a viewer stands in for a hub on a
  home network, and a proxy injected into every pod (a cluster-wide ``HTTPS_PROXY``)
  would change what the integration sees, hide the network profile and could cache
  frames itself; an integration reachable only through a proxy is configured on the
  CameraIntegration, not through the environment;
- the operator scraping its viewers' ``/metrics`` (pod to pod) and the Kubernetes API
  (its own client and configuration).
"""

from __future__ import annotations

import aiohttp

from canarywatch import __version__
from canarywatch.httpclient import client_session

__all__ = ["USER_AGENT", "outbound_session"]

USER_AGENT = f"canarywatch/{__version__}"


def outbound_session(*, timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientSession:
    """A ``httpclient.client_session`` (credentials stay at their origin) that goes through
    the proxy the environment names, and bypasses it for ``NO_PROXY`` hosts. ``trust_env``
    would also read ``~/.netrc``; the image has none."""
    if timeout is None:
        return client_session(headers={"User-Agent": USER_AGENT}, trust_env=True)
    return client_session(headers={"User-Agent": USER_AGENT}, trust_env=True, timeout=timeout)
