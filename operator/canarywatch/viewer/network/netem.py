"""``tc netem`` commands for a network profile, for privileged runs (pure)."""

from __future__ import annotations

import re

from canarywatch.viewer.network.profiles import NetworkProfile

__all__ = ["netem_commands"]

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # IFNAMSIZ is 16 including the NUL
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


def netem_commands(
    profile: NetworkProfile,
    *,
    interface: str = "eth0",
    namespace: str | None = None,
    ifb: str = "ifb0",
) -> list[list[str]]:
    """The ``tc``/``ip`` commands (argv lists) that impose ``profile`` on ``interface``.

    Only for privileged runs (``NET_ADMIN`` in the viewer pod's network namespace, or
    root on a host with ``namespace`` naming an ``ip netns``); the ``Shaper`` needs no
    privileges and is what tests and the demo use. Run them in order; ``[]`` means the
    profile has nothing to impose. Pass each through ``shlex.join`` to print it.

    - latency, jitter and loss go on the interface's egress (the viewer's requests):
      added there, they lengthen every round trip. Kernel loss drops *packets*, which
      TCP retransmits, so it shows as latency spikes rather than the lost requests the
      ``Shaper`` produces.
    - bandwidth limits what the viewer *receives*, so ingress traffic is redirected to
      an ``ifb`` device and rate-limited on its egress (a qdisc cannot delay ingress).
    - stalls have no netem equivalent; only the ``Shaper`` applies them.
    """
    for argument, name in (("interface", interface), ("ifb", ifb)):
        if not _IFNAME.match(name):
            raise ValueError(
                f"{argument} must be a Linux interface name (1-15 of A-Z a-z 0-9 _ . -), got {name!r}"
            )
    if namespace is not None and not _NETNS.match(namespace):
        raise ValueError(f"namespace must be an ip-netns name (A-Z a-z 0-9 _ . -), got {namespace!r}")
    prefix = [] if namespace is None else ["ip", "netns", "exec", namespace]
    commands: list[list[str]] = []
    egress: list[str] = []
    if profile.latency_s > 0 or profile.jitter_s > 0:
        egress += ["delay", _tc_time(profile.latency_s)]
        if profile.jitter_s > 0:
            egress.append(_tc_time(profile.jitter_s))
    if profile.loss > 0:
        egress += ["loss", f"{profile.loss * 100:g}%"]
    if egress:
        commands.append([*prefix, "tc", "qdisc", "replace", "dev", interface, "root", "netem", *egress])
    if profile.bandwidth_bps is not None:
        commands += [
            [*prefix, "ip", "link", "add", ifb, "type", "ifb"],
            [*prefix, "ip", "link", "set", ifb, "up"],
            [*prefix, "tc", "qdisc", "replace", "dev", interface, "handle", "ffff:", "ingress"],
            [
                *prefix,
                *("tc", "filter", "replace", "dev", interface, "parent", "ffff:", "matchall"),
                *("action", "mirred", "egress", "redirect", "dev", ifb),
            ],
            [
                *prefix,
                *("tc", "qdisc", "replace", "dev", ifb, "root", "netem"),
                *("rate", f"{round(profile.bandwidth_bps)}bit"),
            ],
        ]
    return commands


def _tc_time(seconds: float) -> str:
    # tc parses "300ms" and "1.5ms"; microsecond precision is more than netem keeps.
    return f"{round(seconds * 1e6) / 1e3:g}ms"
