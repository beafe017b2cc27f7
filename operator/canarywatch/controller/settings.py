"""The operator's configuration: one typed object, loaded once from ``CANARYWATCH_*``.

Every field has a default that is right for a Deployment in a cluster, so a plain
``canarywatch operator`` starts; the Helm chart sets the ones that depend on the
install (namespaces, image, the operator's own namespace). A value that does not parse
stops the operator at start-up with a ``SettingsError`` naming the variable and what it
accepts, never half-way through an incident.

==========================================  ==============================================
variable                                    meaning (default)
==========================================  ==============================================
CANARYWATCH_NAMESPACES                      namespaces to watch, comma-separated; empty or
                                            ``*``: every namespace (empty)
CANARYWATCH_OPERATOR_NAMESPACE              where the leader-election Lease lives (the
                                            pod's own namespace, read from its
                                            ServiceAccount mount when unset)
CANARYWATCH_POD_NAME                        this replica's identity in the Lease
                                            (``<hostname>-<pid>``)
CANARYWATCH_AGENT_IMAGE                     image of the camera and viewer pods
                                            (``ghcr.io/canarywatch/canarywatch:<version>``)
CANARYWATCH_AGENT_IMAGE_PULL_POLICY         Always, IfNotPresent or Never (IfNotPresent)
CANARYWATCH_CLUSTER_NAME                    the cluster's name in pages' source and
                                            details (none)
CANARYWATCH_AGENT_IMAGE_PULL_SECRETS        Secrets (in each probe's namespace) for pulling
                                            the agent image, comma-separated (none)
CANARYWATCH_AGENT_PRIORITY_CLASS_NAME       priority class of the agent pods (none)
CANARYWATCH_AGENT_POD_LABELS                extra agent pod labels, a JSON object ({})
CANARYWATCH_AGENT_POD_ANNOTATIONS           extra agent pod annotations, a JSON object ({})
CANARYWATCH_AGENT_MAX_UNAVAILABLE           maxUnavailable of the PodDisruptionBudget of
                                            each probe's cameras and of its viewers (a
                                            count or a percentage), or ``off`` (1)
CANARYWATCH_PAGERDUTY_EVENTS_URL            Events API v2 endpoint for integrations whose
                                            spec.pagerduty has no url (PagerDuty's)
CANARYWATCH_PAGERDUTY_TIMEOUT_SECONDS       per delivery attempt (10)
CANARYWATCH_PAGERDUTY_MAX_ATTEMPTS          attempts before a page is retried later (6)
CANARYWATCH_PAGERDUTY_RETRY_SECONDS         first backoff delay, doubled per attempt (1)
CANARYWATCH_LISTEN_HOST                     address of /metrics and the liveness probe
                                            (0.0.0.0)
CANARYWATCH_METRICS_PORT                    port of /metrics (9090)
CANARYWATCH_LIVENESS_PORT                   port of kopf's /healthz (8080)
CANARYWATCH_STATUS_INTERVAL_SECONDS         CanaryProbe status summaries, at most one per
                                            probe per interval, and re-validation of a
                                            Degraded CameraIntegration (30)
CANARYWATCH_CAMERA_START_GRACE_SECONDS      a camera Deployment this young with no pod
                                            available yet is starting, not down (120)
CANARYWATCH_RESOLVE_CHECK_SECONDS           how often open incidents are checked for
                                            resolution (10)
CANARYWATCH_KILL_CAP_MAX_KILLS              default of spec.policy.killCap.maxKills (3)
CANARYWATCH_KILL_CAP_WINDOW_SECONDS         default of spec.policy.killCap.windowSeconds
                                            (3600)
CANARYWATCH_KILL_SWITCH_NAMESPACES          namespaces, besides an integration's own, that
                                            its kill-switch actions may act in,
                                            comma-separated; ``*``: any (none)
CANARYWATCH_LEADER_ELECTION                 true: replicas elect a leader with a Lease;
                                            false: this replica acts alone (true)
CANARYWATCH_LEASE_NAME                      the Lease's name (canarywatch-operator)
CANARYWATCH_LEASE_DURATION_SECONDS          how long a leader's claim lasts unrenewed (15)
CANARYWATCH_LEASE_RENEW_DEADLINE_SECONDS    a leader that could not renew for this long
                                            stops acting (10)
CANARYWATCH_LEASE_RETRY_SECONDS             renew / acquire attempts interval (2)
CANARYWATCH_API_CONCURRENCY                 Kubernetes API calls in flight at once (16)
CANARYWATCH_RECONCILE_CONCURRENCY           CanaryProbes reconciled at once, and their API
                                            calls in flight: more only queue at a busy API
                                            server, in front of a kill switch's calls (4)
CANARYWATCH_LOG_LEVEL                       DEBUG, INFO, WARNING or ERROR (INFO)
CANARYWATCH_REPORT_UNWATCHED                true: list CameraIntegrations/CanaryProbes of
                                            every namespace and report those outside
                                            CANARYWATCH_NAMESPACES (needs a cluster-wide
                                            list; ``controller/unwatched.py``) (false)
==========================================  ==============================================
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from canarywatch import __version__
from canarywatch.controller.manifests.agentpods import RESERVED_PREFIXES, AgentPodOptions, is_max_unavailable
from canarywatch.errors import FieldError
from canarywatch.incidents.pagerduty import EVENTS_URL

__all__ = ["ENV_PREFIX", "OperatorSettings", "SettingsError"]

ENV_PREFIX = "CANARYWATCH_"
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

T = TypeVar("T")


class SettingsError(FieldError):
    """A ``CANARYWATCH_*`` variable has a value the operator cannot use."""

    @property
    def variable(self) -> str:
        """The variable's name: ``field``, by the name this error's callers use."""
        return self.field


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Everything the operator reads from its environment; see the module docstring."""

    #: Namespaces watched; empty means every namespace (a ClusterRole is then needed).
    namespaces: tuple[str, ...] = ()
    #: Namespace of the leader-election Lease; None only when leader election is off.
    operator_namespace: str | None = None
    #: This replica's name in the Lease (its pod name in a cluster).
    identity: str = "canarywatch-operator"
    agent_image: str = f"ghcr.io/canarywatch/canarywatch:{__version__}"
    agent_image_pull_policy: str = "IfNotPresent"
    #: The cluster's name, so a page says which cluster leaks (pages' source).
    cluster_name: str | None = None
    #: Pull Secrets, priority class, extra labels/annotations, disruption budgets.
    agent_pod_options: AgentPodOptions = field(default_factory=AgentPodOptions)
    #: Events API endpoint for integrations whose spec.pagerduty.url is unset.
    pagerduty_events_url: str = EVENTS_URL
    pagerduty_timeout_seconds: float = 10.0
    pagerduty_max_attempts: int = 6
    pagerduty_retry_seconds: float = 1.0
    listen_host: str = "0.0.0.0"
    metrics_port: int = 9090
    liveness_port: int = 8080
    #: A CanaryProbe's status summary is refreshed at most once per interval; a Degraded
    #: CameraIntegration is validated again this often.
    status_interval_seconds: float = 30.0
    #: A camera Deployment younger than this with no pod available is starting, not down.
    camera_start_grace_seconds: float = 120.0
    #: Open incidents of an active integration are checked this often for resolution.
    resolve_check_seconds: float = 10.0
    #: Kill cap for integrations whose spec.policy.killCap leaves it out.
    kill_cap_max_kills: int = 3
    kill_cap_window_seconds: float = 3600.0
    #: Namespaces besides an integration's own that its kill-switch actions may act in
    #: (the confused-deputy guard: a CameraIntegration must not switch off another team's
    #: workloads). ``("*",)``: any namespace.
    kill_switch_namespaces: tuple[str, ...] = ()
    leader_election: bool = True
    lease_name: str = "canarywatch-operator"
    lease_duration_seconds: float = 15.0
    lease_renew_deadline_seconds: float = 10.0
    lease_retry_seconds: float = 2.0
    #: Kubernetes API calls of the operator's own client in flight at once.
    api_concurrency: int = 16
    #: CanaryProbes reconciled at once, and the API calls in flight for them (``kube.bulk``).
    reconcile_concurrency: int = 4
    log_level: str = "INFO"
    #: Report objects in namespaces not watched (a namespaced operator only).
    report_unwatched: bool = False

    def __post_init__(self) -> None:
        if self.leader_election and not self.operator_namespace:
            raise SettingsError(
                f"{ENV_PREFIX}OPERATOR_NAMESPACE",
                "required for leader election outside a pod (the namespace of the Lease); "
                f"or set {ENV_PREFIX}LEADER_ELECTION=false to run a single replica",
            )
        if not self.lease_retry_seconds < self.lease_renew_deadline_seconds < self.lease_duration_seconds:
            raise SettingsError(
                f"{ENV_PREFIX}LEASE_RENEW_DEADLINE_SECONDS",
                "need LEASE_RETRY_SECONDS < LEASE_RENEW_DEADLINE_SECONDS < LEASE_DURATION_SECONDS, so "
                "a leader stops acting before another replica may take over; got "
                f"{self.lease_retry_seconds:g} < {self.lease_renew_deadline_seconds:g} < "
                f"{self.lease_duration_seconds:g}",
            )

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def kill_switch_may_act_in(self, namespace: str, *, integration_namespace: str) -> bool:
        """Whether an integration in ``integration_namespace`` may have kill-switch
        actions in ``namespace``: its own, or one the install allowlists."""
        return (
            namespace == integration_namespace
            or namespace in self.kill_switch_namespaces
            or self.kill_switch_namespaces == ("*",)
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> OperatorSettings:
        """Read every ``CANARYWATCH_*`` variable of ``environ`` (``os.environ`` by default).

        ``overrides`` (field names: command-line options) replace what the environment
        says, before the combination is checked.
        """
        unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(unknown)}")
        env = _Env(os.environ if environ is None else environ)
        # The dataclass defaults, so each default is written once.
        d: dict[str, Any] = {name: f.default for name, f in cls.__dataclass_fields__.items()}
        leader_election = env.boolean("LEADER_ELECTION", d["leader_election"])
        operator_namespace = env.text("OPERATOR_NAMESPACE", "") or _pod_namespace()
        values: dict[str, Any] = dict(
            namespaces=env.namespaces("NAMESPACES"),
            operator_namespace=operator_namespace or None,
            identity=env.text("POD_NAME", "") or f"{socket.gethostname()}-{os.getpid()}",
            agent_image=env.text("AGENT_IMAGE", d["agent_image"]),
            agent_image_pull_policy=env.choice(
                "AGENT_IMAGE_PULL_POLICY", d["agent_image_pull_policy"], _PULL_POLICIES
            ),
            cluster_name=env.text("CLUSTER_NAME", "") or None,
            agent_pod_options=AgentPodOptions(
                image_pull_secrets=env.names("AGENT_IMAGE_PULL_SECRETS"),
                priority_class_name=env.text("AGENT_PRIORITY_CLASS_NAME", ""),
                labels=env.string_map("AGENT_POD_LABELS"),
                annotations=env.string_map("AGENT_POD_ANNOTATIONS"),
                max_unavailable=env.max_unavailable("AGENT_MAX_UNAVAILABLE", "1"),
            ),
            pagerduty_events_url=env.url("PAGERDUTY_EVENTS_URL", d["pagerduty_events_url"]),
            pagerduty_timeout_seconds=env.seconds(
                "PAGERDUTY_TIMEOUT_SECONDS", d["pagerduty_timeout_seconds"]
            ),
            pagerduty_max_attempts=env.integer("PAGERDUTY_MAX_ATTEMPTS", d["pagerduty_max_attempts"], 1, 100),
            pagerduty_retry_seconds=env.seconds("PAGERDUTY_RETRY_SECONDS", d["pagerduty_retry_seconds"]),
            listen_host=env.text("LISTEN_HOST", d["listen_host"]),
            metrics_port=env.integer("METRICS_PORT", d["metrics_port"], 0, 65535),
            liveness_port=env.integer("LIVENESS_PORT", d["liveness_port"], 0, 65535),
            status_interval_seconds=env.seconds("STATUS_INTERVAL_SECONDS", d["status_interval_seconds"]),
            camera_start_grace_seconds=env.seconds(
                "CAMERA_START_GRACE_SECONDS", d["camera_start_grace_seconds"]
            ),
            resolve_check_seconds=env.seconds("RESOLVE_CHECK_SECONDS", d["resolve_check_seconds"]),
            kill_cap_max_kills=env.integer("KILL_CAP_MAX_KILLS", d["kill_cap_max_kills"], 0, 1_000_000),
            kill_cap_window_seconds=env.seconds("KILL_CAP_WINDOW_SECONDS", d["kill_cap_window_seconds"]),
            kill_switch_namespaces=env.namespace_allowlist("KILL_SWITCH_NAMESPACES"),
            leader_election=leader_election,
            lease_name=env.dns_name("LEASE_NAME", d["lease_name"]),
            lease_duration_seconds=env.seconds("LEASE_DURATION_SECONDS", d["lease_duration_seconds"]),
            lease_renew_deadline_seconds=env.seconds(
                "LEASE_RENEW_DEADLINE_SECONDS", d["lease_renew_deadline_seconds"]
            ),
            lease_retry_seconds=env.seconds("LEASE_RETRY_SECONDS", d["lease_retry_seconds"]),
            api_concurrency=env.integer("API_CONCURRENCY", d["api_concurrency"], 1, 256),
            reconcile_concurrency=env.integer("RECONCILE_CONCURRENCY", d["reconcile_concurrency"], 1, 256),
            log_level=env.choice("LOG_LEVEL", d["log_level"], _LOG_LEVELS, upper=True),
            report_unwatched=env.boolean("REPORT_UNWATCHED", d["report_unwatched"]),
        )
        return cls(**(values | overrides))


def _pod_namespace() -> str:
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return ""


class _Env:
    """Typed reads of ``CANARYWATCH_<name>``; each error names the full variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _parse(self, name: str, default: T, parse: Callable[[str], T], accepted: str) -> T:
        variable = f"{ENV_PREFIX}{name}"
        raw = self._environ.get(variable)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except (ValueError, TypeError):
            # The value is shown: none of these settings is a secret.
            raise SettingsError(variable, f"expected {accepted}, got {raw!r}") from None

    def text(self, name: str, default: str) -> str:
        return self._parse(name, default, str, "a string")

    def boolean(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError(raw)

        return self._parse(name, default, parse, "true or false")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if not low <= value <= high:
                raise ValueError(raw)
            return value

        return self._parse(name, default, parse, f"an integer from {low} to {high}")

    def seconds(self, name: str, default: float) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(raw)
            return value

        return self._parse(name, default, parse, "a number of seconds > 0")

    def choice(self, name: str, default: str, accepted: tuple[str, ...], *, upper: bool = False) -> str:
        def parse(raw: str) -> str:
            value = raw.upper() if upper else raw
            if value not in accepted:
                raise ValueError(raw)
            return value

        return self._parse(name, default, parse, f"one of {', '.join(accepted)}")

    def url(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            if not raw.startswith(("http://", "https://")) or any(c.isspace() for c in raw):
                raise ValueError(raw)
            return raw

        return self._parse(name, default, parse, "an absolute http:// or https:// URL")

    def dns_name(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            if not _is_dns_label(raw):
                raise ValueError(raw)
            return raw

        return self._parse(name, default, parse, "a DNS-1123 label (lowercase letters, digits, '-')")

    def names(self, name: str) -> tuple[str, ...]:
        def parse(raw: str) -> tuple[str, ...]:
            names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
            if not all(_is_dns_subdomain(n) for n in names):
                raise ValueError(raw)
            return names

        return self._parse(name, (), parse, "comma-separated object names (DNS-1123 subdomains)")

    def string_map(self, name: str) -> dict[str, str]:
        def parse(raw: str) -> dict[str, str]:
            value = json.loads(raw)
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ValueError(raw)
            if any(str(k).startswith(RESERVED_PREFIXES) for k in value):
                raise ValueError(raw)
            return {str(k): v for k, v in value.items()}

        accepted = f"a JSON object of strings, no key starting with {' or '.join(RESERVED_PREFIXES)}"
        return self._parse(name, {}, parse, accepted)

    def max_unavailable(self, name: str, default: str | None) -> str | None:
        def parse(raw: str) -> str | None:
            if raw.lower() == "off":
                return None
            if not is_max_unavailable(raw):
                raise ValueError(raw)
            return raw

        return self._parse(name, default, parse, "a count >= 1, a percentage like 25%, or off")

    def namespaces(self, name: str) -> tuple[str, ...]:
        def parse(raw: str) -> tuple[str, ...]:
            if raw == "*":
                return ()
            names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
            if not all(_is_dns_label(n) for n in names):
                raise ValueError(raw)
            return names

        return self._parse(name, (), parse, "comma-separated namespace names, or * for every namespace")

    def namespace_allowlist(self, name: str) -> tuple[str, ...]:
        def parse(raw: str) -> tuple[str, ...]:
            names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
            if names == ("*",):
                return names
            if not all(_is_dns_label(n) for n in names):
                raise ValueError(raw)
            return names

        return self._parse(name, (), parse, "comma-separated namespace names, or * for any namespace")


def _is_dns_subdomain(value: str) -> bool:
    return len(value) <= 253 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", value) is not None


def _is_dns_label(value: str) -> bool:
    return re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value) is not None
