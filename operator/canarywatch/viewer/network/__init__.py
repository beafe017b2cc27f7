"""Impaired networks for hub viewers: profiles, an application-level shaper, ``tc netem``.

The 2019 leak reached only hubs on *poor connections*: the integration decided from
the hub's network hints which path (and which cache) to use. A viewer therefore has to
*be* on a poor network, not pretend to be, and has to tell the integration about it
the way a real client does:

- ``profiles``: ``NetworkProfile`` describes an impairment (bandwidth, latency ± jitter,
  request loss, mid-body stalls); presets ``good``, ``poor`` and ``extreme``, or an
  explicit mapping from a ``CanaryProbe``'s ``networkProfiles``.
- ``shaper``: ``Shaper`` applies a profile to the viewer's own HTTP requests,
  unprivileged: latency before each request, lost requests turning into timeouts, body
  reads paced to the bandwidth, stalls in the middle of bodies. It *measures* the round
  trips and throughput it gets and sends the Network Information client hints
  (``ECT``, ``Downlink``, ``RTT``, see ``hints``) derived from that measurement.
  ``ShapedTcpRelay`` carries what no HTTP client reads (RTSP over TCP, read by FFmpeg)
  through the same profile, as a loopback relay the client connects to; for RTSP it
  refuses redirects (``rtsp_redirects``), which the client would follow past it, and
  signs a Digest ``Authorization`` again for the server's URL (``rtsp_digest``).
  Nothing is declared: a viewer on the ``poor`` profile is seen as slow because it is.
- ``netem``: ``netem_commands`` renders the same profile as ``tc qdisc`` commands for
  privileged runs that want the kernel to do the impairment (a pod with ``NET_ADMIN``).

Client hints before anything is measured: none. Browsers send a default estimate
(typically ``4g``) on their first requests; an integration treats a request without
hints exactly like a fast one (the reference relay serves the original rendition), so
omitting them changes nothing for the integration while never claiming a figure that
was not measured. Each hint appears once its own measurement exists: ``RTT`` and
``ECT`` after the first response, ``Downlink`` after the first response large enough
to time (``MIN_THROUGHPUT_SAMPLE_BYTES``). That is why a hub's MJPEG stream waits for
the first measurement (``viewer.runner``): opened earlier it would ask for the
rendition of a fast link for as long as it stays open.

Importing this package does not import aiohttp (the manifest builders use the profiles).
"""

from canarywatch.viewer.network.hints import (
    MIN_THROUGHPUT_SAMPLE_BYTES,
    NetworkEstimate,
    client_hints,
    effective_connection_type,
)
from canarywatch.viewer.network.netem import netem_commands
from canarywatch.viewer.network.profiles import EXTREME, GOOD, POOR, PRESETS, NetworkProfile, ProfileError
from canarywatch.viewer.network.rtsp_digest import DigestCredentials
from canarywatch.viewer.network.rtsp_redirects import RedirectRefused
from canarywatch.viewer.network.shaper import (
    STREAM_STALL_UNIT_BYTES,
    ShapedResponse,
    ShapedStream,
    ShapedTcpRelay,
    Shaper,
)

__all__ = [
    "EXTREME",
    "GOOD",
    "MIN_THROUGHPUT_SAMPLE_BYTES",
    "POOR",
    "PRESETS",
    "STREAM_STALL_UNIT_BYTES",
    "DigestCredentials",
    "NetworkEstimate",
    "NetworkProfile",
    "ProfileError",
    "RedirectRefused",
    "ShapedResponse",
    "ShapedStream",
    "ShapedTcpRelay",
    "Shaper",
    "client_hints",
    "effective_connection_type",
    "netem_commands",
]
