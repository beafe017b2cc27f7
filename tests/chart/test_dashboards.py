"""Grafana dashboards and alert rules against what canarywatch really exposes.

* The dashboards are valid JSON with the conventions of issue 5 (schema version, the
  ``${datasource}`` variable, uid, tags, units and a description on every panel), and
  the chart holds byte-identical copies of them.
* Every PromQL expression (panel targets, variable queries, rules) parses with the real
  ``promtool``.
* Every ``canarywatch_*`` metric a dashboard or rule names is in ``METRIC_NAMES`` (with
  the histogram suffixes) and is served by a running ``canarywatch demo --fault
  xiaomi-2019``, with the labels the queries filter and group on.
* A real Prometheus (the Debian package binary) scrapes a healthy ``canarywatch demo
  --fault none`` and a leaking ``canarywatch run`` against ``canarywatch relay --fault
  xiaomi-2019`` (which, unlike the demo, keeps serving ``/metrics`` after the switch-off)
  with the alert rules loaded; every variable query and every panel query then returns
  data, every rule evaluates without error, and the cross-tenant alert fires for the
  leaking integration only.

The binaries come from ``hack/install-prometheus.sh``; without them the tests skip,
except under CI (``CI`` set) or ``CANARYWATCH_REQUIRE_CHART_TOOLS=1``, where they fail.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_rules import RULES, require_binary, rule_groups

from canarywatch.coverage import CoverageTarget, assess
from canarywatch.demo import ADMIN_TOKEN, DEMO_TENANTS, demo_config
from canarywatch.metrics import METRIC_NAMES, Metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from controlplane import free_port
from daemons import Daemon, die_with_parent

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
CHART_DASHBOARDS = REPO / "charts" / "canarywatch" / "files" / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
CLI = [sys.executable, "-m", "canarywatch.cli"]

# Labels Prometheus adds to every scraped series (kubernetes SD / prometheus-operator),
# and `cluster`, which a multi-cluster setup adds (external or target label).
TARGET_LABELS = {"cluster", "namespace", "job", "instance", "pod", "service", "container", "endpoint"}
# What Grafana puts in for its built-in variables, for a 1 s scrape interval and a 2 s
# step: $__rate_interval = max($__interval + scrape interval, 4 x scrape interval).
SCRAPE_INTERVAL_S = 1
STEP_S = 2
BUILTINS = {"__rate_interval": f"{4 * SCRAPE_INTERVAL_S}s", "__interval": f"{STEP_S}s"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DATASOURCE_UIDS = ("${datasource}", "-- Grafana --")  # the variable, or Grafana's own annotations
HEALTHY = "reference-relay"  # the integration `canarywatch demo` names
LEAKING = "relay-xiaomi-2019"
LEAK_ALERTS = (
    "CanarywatchCrossTenantLeak",
    "CanarywatchForeignFrames",
    "CanarywatchMisroutedFrames",
    "CanarywatchForgedFrames",
)

# ---------------------------------------------------------------------------------------
# Reading dashboards and rules
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    where: str  # "canarywatch-overview / Frame age / B", for messages
    expr: str
    instant: bool


@dataclass(frozen=True)
class Variable:
    name: str
    selector: str  # the series selector of label_values(selector, label)
    label: str


def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def all_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def panel_queries(board: dict[str, Any]) -> list[Query]:
    return [
        Query(
            f"{board['uid']} / {panel['title']} / {target['refId']}", target["expr"], bool(target["instant"])
        )
        for panel in all_panels(board)
        for target in panel.get("targets", [])
    ]


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$", re.S)


def variables(board: dict[str, Any]) -> list[Variable]:
    found = []
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = _LABEL_VALUES.match(query.strip())
        assert match, f"{board['uid']}: variable {var['name']} is not label_values(selector, label)"
        found.append(Variable(var["name"], match["selector"], match["label"]))
    return found


def rule_exprs() -> list[Query]:
    return [
        Query(f"rules / {rule.get('alert') or rule['record']}", rule["expr"], True)
        for group in rule_groups()
        for rule in group["rules"]
    ]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's variable interpolation: ``$name``, ``${name}`` and ``[[name]]``."""

    def value(match: re.Match[str]) -> str:
        name = match["a"] or match["b"] or match["c"]
        if name not in values:
            raise KeyError(f"unknown variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(?P<a>\w+)\}|\[\[(?P<b>\w+)\]\]|\$(?P<c>\w+)", value, expr)


def grafana_regex(values: list[str]) -> str:
    """A multi-value variable as Grafana renders it into a Prometheus regex matcher."""
    escaped = [re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


_METRIC = re.compile(r"(?<![\w:])(canarywatch_\w+)(?![\w:])")
_SELECTOR = re.compile(r"(?<![\w:])(canarywatch_\w+)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def every_expression() -> list[Query]:
    queries = rule_exprs()
    for path in DASHBOARD_FILES:
        board = load(path)
        queries += panel_queries(board)
        queries += [Query(f"{board['uid']} / ${v.name}", v.selector, True) for v in variables(board)]
    return queries


# ---------------------------------------------------------------------------------------
# Conventions (no binaries needed)
# ---------------------------------------------------------------------------------------


def test_there_are_two_dashboards() -> None:
    assert [p.name for p in DASHBOARD_FILES] == ["canarywatch-overview.json", "canarywatch-probe.json"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_follows_the_grafana_conventions(path: Path) -> None:
    board = load(path)
    assert board["schemaVersion"] >= 39
    assert board["uid"] == path.stem and len(board["uid"]) <= 40
    assert board["title"].startswith("canarywatch / ") and board["description"]
    assert "canarywatch" in board["tags"]
    assert board.get("id") is None  # provisioned dashboards must not carry a database id
    datasource_vars = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in datasource_vars] == [("datasource", "prometheus")]
    for var in board["templating"]["list"]:
        assert var.get("description"), f"variable {var['name']} has no description"
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
    ids = [p["id"] for p in all_panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in all_panels(board):
        if panel["type"] == "row":
            continue
        title = panel.get("title", "?")
        assert panel.get("description"), f"panel {title!r} has no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"panel {title!r} has no unit"
        assert panel["datasource"] == DATASOURCE, title
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, title
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, title
        targets = panel.get("targets", [])
        assert targets, f"panel {title!r} has no query"
        assert len({t["refId"] for t in targets}) == len(targets), title
        for t in targets:
            assert t["datasource"] == DATASOURCE, title
            assert t["expr"].strip(), title


def test_no_dashboard_pins_a_datasource() -> None:
    """Every datasource reference is the variable (or Grafana's own annotations)."""

    def walk(node: object, path: str) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if (
                    key == "datasource"
                    and isinstance(value, dict)
                    and value.get("uid") not in DATASOURCE_UIDS
                ):
                    yield f"{path}.{key} = {value}"
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{path}[{i}]")

    pinned = [p for path in DASHBOARD_FILES for p in walk(load(path), path.name)]
    assert pinned == []


def test_dashboard_uids_are_unique() -> None:
    uids = [load(p)["uid"] for p in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))


def test_the_chart_holds_byte_identical_copies_of_the_dashboards() -> None:
    """The chart can only read files inside itself; these copies must not drift."""
    assert sorted(p.name for p in CHART_DASHBOARDS.glob("*")) == [p.name for p in DASHBOARD_FILES]
    for path in DASHBOARD_FILES:
        copy = CHART_DASHBOARDS / path.name
        assert copy.read_bytes() == path.read_bytes(), f"cp dashboards/{path.name} {copy.relative_to(REPO)}"


def _histograms() -> set[str]:
    return {family.name for family in Metrics().registry.collect() if family.type == "histogram"}


def queryable_names() -> set[str]:
    """METRIC_NAMES as series names: histograms as their _bucket, _sum and _count."""
    histograms = _histograms()
    names = set()
    for name in METRIC_NAMES:
        if name in histograms:
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def test_every_metric_named_by_a_dashboard_or_rule_is_in_metric_names() -> None:
    unknown = {
        f"{q.where}: {name}" for q in every_expression() for name in metric_names(q.expr) - queryable_names()
    }
    assert unknown == set()


def test_dashboards_and_rules_together_use_every_metric() -> None:
    """A metric nobody charts or alerts on is either missing a panel or dead weight."""
    used = {name for q in every_expression() for name in metric_names(q.expr)}
    unused = {n for n in METRIC_NAMES if not {n, f"{n}_bucket", f"{n}_sum", f"{n}_count"} & used}
    assert unused == set()


# ---------------------------------------------------------------------------------------
# promtool: every expression parses
# ---------------------------------------------------------------------------------------


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    """Each panel query (variables filled in as Grafana would) and each variable's selector
    becomes a recording rule, so `promtool check rules` parses it with Prometheus's parser."""
    values = {
        **BUILTINS,
        "__range": "1h",
        **{
            v: ".*"
            for v in (
                "cluster",
                "namespace",
                "integration",
                "probe",
                "tenant",
                "camera",
                "path",
                "network_profile",
            )
        },
    }
    rules = []
    where = {}
    for i, query in enumerate(every_expression()):
        record = f"dashboard_query:{i}"
        where[record] = query.where
        rules.append({"record": record, "expr": substitute(query.expr, values)})
    generated = tmp_path / "dashboard-queries.rules.yaml"
    generated.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    result = subprocess.run(
        [require_binary("promtool"), "check", "rules", str(generated)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    for record, place in where.items():
        output = output.replace(f'"{record}"', f"{record} ({place})")
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# ---------------------------------------------------------------------------------------
# What a running canarywatch exposes
# ---------------------------------------------------------------------------------------


def _spawn(name: str, argv: list[str], workdir: Path) -> Daemon:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,  # Daemon.stop() signals the whole group
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
        )
    return Daemon(name, popen, log_path)


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(what: str, check: Callable[[], bool], processes: list[Daemon], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in processes:
            if not proc.alive():
                pytest.fail(
                    f"{proc.name} exited ({proc.popen.returncode}) waiting for {what}:\n{proc.tail()}"
                )
        with contextlib.suppress(OSError, ValueError, KeyError):
            if check():
                return
        time.sleep(0.25)
    logs = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in processes)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


OPERATOR_ONLY = {"canarywatch_unwatched_objects", "canarywatch_coverage_shortfall_fetches_per_second"}


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Sample name → label names, from scraping `canarywatch demo --fault xiaomi-2019`
    for as long as it runs (it exits ~2 s after switching the relay off)."""
    workdir = tmp_path_factory.mktemp("demo-xiaomi")
    port = free_port()
    demo = _spawn(
        "demo",
        [
            *CLI,
            "demo",
            "--fault",
            "xiaomi-2019",
            "--duration",
            "30",
            "--metrics-port",
            str(port),
            "--out",
            "out",
        ],
        workdir,
    )
    labels: dict[str, set[str]] = defaultdict(set)
    scrapes = 0
    deadline = time.monotonic() + 90
    try:
        while demo.alive() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                text = _get(f"http://127.0.0.1:{port}/metrics").decode()
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        labels[sample.name] |= set(sample.labels)
                scrapes += 1
            time.sleep(0.2)
    finally:
        demo.stop(grace=10)
    assert demo.popen.returncode == 0, f"the demo did not catch the leak:\n{demo.tail()}"
    assert scrapes >= 3, f"/metrics on port {port} answered {scrapes} time(s):\n{demo.tail()}"
    # Set only by the operator, never by the demo (a namespaced one's unwatched objects,
    # controller/unwatched.py; a coverageTarget's shortfall): their labels are those of
    # the metrics module's own exposition.
    operator_only = Metrics()
    operator_only.record_unwatched({("CanaryProbe", "team-c"): 1})
    target = CoverageTarget(leak_rate=0.01, detect_within_seconds=60)
    rows = assess([("snapshot", "poor", 1.0, 1)], target)
    operator_only.record_coverage(namespace="ns", integration="i", probe="p", rows=rows, targeted=True)
    for family in text_string_to_metric_families(generate_latest(operator_only.registry).decode()):
        for sample in family.samples:
            if sample.name in OPERATOR_ONLY:
                labels[sample.name] |= set(sample.labels)
    return dict(labels)


def test_a_running_demo_exposes_every_metric_name(exposed: dict[str, set[str]]) -> None:
    assert queryable_names() - exposed.keys() == set()


def test_every_metric_a_dashboard_or_rule_uses_is_exposed(exposed: dict[str, set[str]]) -> None:
    missing = {f"{q.where}: {n}" for q in every_expression() for n in metric_names(q.expr) - exposed.keys()}
    assert missing == set()


def test_queries_filter_and_group_only_on_labels_the_metrics_have(exposed: dict[str, set[str]]) -> None:
    """A matcher or `by` on a label a metric does not carry silently matches nothing or
    collapses everything; Prometheus cannot tell, so check it here."""
    # a recording rule's series carry the labels its outermost aggregation keeps
    recorded = {
        rule["record"]: {x.strip() for x in _GROUPING.findall(rule["expr"])[0].split(",")}
        for group in rule_groups()
        for rule in group["rules"]
        if "record" in rule
    }
    problems = []
    for q in every_expression():
        for name, matchers in _SELECTOR.findall(q.expr):
            for label in set(_MATCHER_LABEL.findall(matchers)) - exposed.get(name, set()) - TARGET_LABELS:
                problems.append(f"{q.where}: {name} has no label {label!r}")
        names = metric_names(q.expr) | {r for r in recorded if r in q.expr}
        labels = {**exposed, **recorded}
        available = set().union(*(labels.get(n, set()) for n in names)) | TARGET_LABELS
        for group in _GROUPING.findall(q.expr):
            for label in {x.strip() for x in group.split(",") if x.strip()} - available:
                problems.append(f"{q.where}: grouping on {label!r}, which none of {sorted(names)} has")
    assert problems == []


# ---------------------------------------------------------------------------------------
# A real Prometheus scraping running canarywatch processes
# ---------------------------------------------------------------------------------------


class Prometheus:
    def __init__(self, port: int, started: float) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.started = started

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = json.loads(_get(url, timeout=10))
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
            raise AssertionError(f"{path} {params}: HTTP {e.code}: {body.get('error')}") from e
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, *, instant: bool) -> list[dict[str, Any]]:
        now = time.time()
        if instant:
            result: list[dict[str, Any]] = self.api("query", query=expr, time=f"{now:.3f}")["result"]
            return result
        start = max(self.started, now - 120)
        return list(
            self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{now:.3f}", step=str(STEP_S))[
                "result"
            ]
        )

    def has(self, expr: str) -> bool:
        return bool(self.query(expr, instant=True))


def _finite_values(result: list[dict[str, Any]]) -> list[float]:
    values = []
    for series in result:
        points = series.get("values") or [series["value"]]
        values += [float(v) for _, v in points if math.isfinite(float(v))]
    return values


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus scraping a healthy demo and a leaking standalone run, rules loaded."""
    prometheus_bin = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    healthy_port, leak_port, relay_port, receiver_port, web_port = (free_port() for _ in range(5))
    (workdir / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
                    "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
                    "evaluation_interval": "1s",
                },
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    # the target labels a Kubernetes scrape gives (namespace) and a
                    # multi-cluster one adds (cluster), for the dashboards' variables
                    {
                        "job_name": "canarywatch-healthy",
                        "static_configs": [
                            {
                                "targets": [f"127.0.0.1:{healthy_port}"],
                                "labels": {"cluster": "test", "namespace": "demo"},
                            }
                        ],
                    },
                    {
                        "job_name": "canarywatch-leak",
                        "static_configs": [
                            {
                                "targets": [f"127.0.0.1:{leak_port}"],
                                "labels": {"cluster": "test", "namespace": "shop"},
                            }
                        ],
                    },
                ],
            }
        )
    )
    # The leaking side: what `canarywatch demo` runs, as separate processes, so that the
    # monitor keeps serving /metrics after the kill switch (`run` does not stop early).
    tokens = {t: f"tok-{t}-{secrets.token_hex(4)}" for t in DEMO_TENANTS}
    (workdir / "relay.yaml").write_text(
        yaml.safe_dump(
            {"tenants": tokens, "admin_token": ADMIN_TOKEN, "fault": "xiaomi-2019", "event_every_frames": 4}
        )
    )
    config = demo_config(
        f"http://127.0.0.1:{relay_port}",
        tokens=tokens,
        fps=2.0,
        metrics_port=leak_port,
        pd_url=f"http://127.0.0.1:{receiver_port}/v2/enqueue",
        routing_key="R" * 32,
    )
    config["integration"]["name"] = LEAKING
    (workdir / "leak.yaml").write_text(yaml.safe_dump(config))

    processes: list[Daemon] = []
    try:
        processes.append(
            _spawn(
                "prometheus",
                [
                    prometheus_bin,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{web_port}",
                ],
                workdir,
            )
        )
        _wait_for(
            "Prometheus /-/ready", lambda: bool(_get(f"http://127.0.0.1:{web_port}/-/ready")), processes, 60
        )
        started = time.time()
        processes.append(
            _spawn(
                "demo-healthy",
                [
                    *CLI,
                    "demo",
                    "--fault",
                    "none",
                    "--duration",
                    "180",
                    "--metrics-port",
                    str(healthy_port),
                    "--out",
                    "healthy",
                ],
                workdir,
            )
        )
        relay = _spawn("relay", [*CLI, "relay", "--config", "relay.yaml", "--port", str(relay_port)], workdir)
        receiver = _spawn("pd-receiver", [*CLI, "pd-receiver", "--port", str(receiver_port)], workdir)
        processes += [relay, receiver]
        _wait_for(
            "relay and PagerDuty receiver",
            lambda: _port_open(relay_port) and _port_open(receiver_port),
            processes,
            60,
        )
        processes.append(
            _spawn(
                "run-xiaomi",
                [*CLI, "run", "--config", "leak.yaml", "--duration", "180", "--out", "leak"],
                workdir,
            )
        )
        prom = Prometheus(web_port, started)
        healthy, leak = 'job="canarywatch-healthy"', 'job="canarywatch-leak"'
        _wait_for(
            "10 scrapes of healthy frames",
            lambda: prom.has(
                f'count_over_time(canarywatch_frames_total{{{healthy}, verdict="ok"}}[1m]) >= 10'
            ),
            processes,
            90,
        )
        _wait_for(
            "the leak switched off, paged, and scraped 5 times since",
            lambda: all(
                prom.has(f"count_over_time({m}{{{leak}}}[1m]) >= 5")
                for m in (
                    "canarywatch_killswitch_actions_total",
                    "canarywatch_pagerduty_events_total",
                    "canarywatch_shutdown_seconds_count",
                )
            ),
            processes,
            90,
        )
        _wait_for(
            "coverage measured twice on both",
            lambda: all(
                prom.has(f"count_over_time(canarywatch_coverage_detect_seconds{{{job}}}[1m]) >= 2")
                for job in (healthy, leak)
            ),
            processes,
            60,
        )
        _wait_for(
            "CanarywatchCrossTenantLeak firing",
            lambda: prom.has('ALERTS{alertname="CanarywatchCrossTenantLeak", alertstate="firing"}'),
            processes,
            30,
        )
        yield prom
    finally:
        for proc in reversed(processes):
            proc.stop(grace=10)


def _resolve_variables(prom: Prometheus, board: dict[str, Any], problems: list[str]) -> dict[str, str]:
    """Fill the variables the way Grafana does on load: "All" of every label_values query,
    in order, each query seeing the variables before it."""
    values = {**BUILTINS, "__range": f"{math.ceil(time.time() - prom.started)}s"}
    for var in variables(board):
        selector = substitute(var.selector, values)
        found = prom.api(f"label/{var.label}/values", **{"match[]": selector, "start": f"{prom.started:.3f}"})
        if not found:
            problems.append(f"{board['uid']}: variable ${var.name} has no values ({selector})")
        values[var.name] = grafana_regex(sorted(found)) if found else ".*"
    return values


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_panel_query_returns_data_from_a_real_prometheus(prometheus: Prometheus, path: Path) -> None:
    board = load(path)
    problems: list[str] = []
    values = _resolve_variables(prometheus, board, problems)
    for query in panel_queries(board):
        expr = substitute(query.expr, values)
        try:
            result = prometheus.query(expr, instant=query.instant)
        except AssertionError as e:
            problems.append(f"{query.where}: {e}")
            continue
        if not _finite_values(result):
            problems.append(f"{query.where}: no data for\n{expr}")
    assert problems == [], "\n".join(problems)


def test_every_rule_evaluates_cleanly_in_a_real_prometheus(prometheus: Prometheus) -> None:
    groups = prometheus.api("rules")["groups"]
    evaluated = {r["name"]: r for g in groups for r in g["rules"]}
    defined = {rule.get("alert") or rule["record"] for g in rule_groups() for rule in g["rules"]}
    assert evaluated.keys() == defined
    broken = {name: r.get("lastError") for name, r in evaluated.items() if r["health"] != "ok"}
    assert broken == {}


def test_the_leak_alerts_fire_for_the_leaking_integration_only(prometheus: Prometheus) -> None:
    active = prometheus.api("alerts")["alerts"]
    leak_alerts = {
        (a["labels"]["alertname"], a["labels"].get("integration"), a["state"])
        for a in active
        if a["labels"]["alertname"] in LEAK_ALERTS
    }
    assert ("CanarywatchCrossTenantLeak", LEAKING, "firing") in leak_alerts
    assert {a for a in leak_alerts if a[1] != LEAKING} == set()
    suspended = [
        a["state"]
        for a in active
        if a["labels"]["alertname"] == "CanarywatchIntegrationSuspended"
        and a["labels"].get("integration") == LEAKING
    ]
    assert suspended in (["pending"], ["firing"])
    # the healthy demo is watched, frames flow: nothing about it at all
    assert [a for a in active if a["labels"].get("integration") == HEALTHY] == []


def test_published_and_seen_join_on_the_labels_of_the_not_delivered_alert(prometheus: Prometheus) -> None:
    """CanarywatchFramesNotDelivered joins the cameras' published counts with the viewers'
    seen counts; a join that matched nothing would keep it quiet for ever. On the healthy
    demo, as scraped, every camera that publishes is matched by frames its tenant saw."""
    by = "namespace, integration, probe, tenant, camera"
    healthy = 'job="canarywatch-healthy"'

    def cameras(expr: str) -> set[tuple[str, ...]]:
        keys = [k.strip() for k in by.split(",")]
        return {tuple(s["metric"].get(k, "") for k in keys) for s in prometheus.query(expr, instant=True)}

    published = cameras(f"sum by ({by}) (rate(canarywatch_frames_published_total{{{healthy}}}[1m])) > 0")
    delivered = cameras(
        f"sum by ({by}) (rate(canarywatch_frames_published_total{{{healthy}}}[1m])) > 0"
        f" and on ({by}) sum by ({by}) (rate(canarywatch_frames_seen_total{{{healthy}}}[1m])) > 0"
    )
    assert len(published) == 2 * len(DEMO_TENANTS)  # the demo's two cameras per tenant
    assert delivered == published


def test_the_incident_panels_count_the_first_incident_of_a_process(prometheus: Prometheus) -> None:
    """canarywatch creates an incident counter at 1 with its first incident, which
    increase() never sees; the panels must show it, once."""
    board = load(DASHBOARDS / "canarywatch-overview.json")
    values = _resolve_variables(prometheus, board, [])
    exprs = {
        p["title"]: substitute(p["targets"][0]["expr"], values) for p in all_panels(board) if "targets" in p
    }
    opened = prometheus.query(f'sum(canarywatch_incidents_total{{integration="{LEAKING}"}})', instant=True)
    incidents = float(opened[0]["value"][1])
    assert incidents >= 1
    over_time = prometheus.query(exprs["Incidents over time by verdict"], instant=False)
    leaking = [s for s in over_time if s["metric"]["integration"] == LEAKING]
    assert sum(float(v) for s in leaking for _, v in s["values"]) == incidents
    in_range = prometheus.query(exprs["Incidents in range"], instant=True)
    assert sum(float(s["value"][1]) for s in in_range) == incidents
