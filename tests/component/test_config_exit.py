"""`canarywatch run --config FILE` as a user runs it: a hostile, huge or wrong
configuration exits 2 naming the field, never a traceback, and within bounded memory
(the process runs under a 1 GiB address-space limit: a reader that expanded a billion
laughs or read /dev/zero would die of MemoryError, exit 1, and fail the test).

Unit tests (tests/unit/test_config_limits.py) cover each rule in detail; these are the
end-to-end exit codes, one real process per case, each bounded by a timeout.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "standalone.yaml"
CLI = [sys.executable, "-m", "canarywatch.cli"]
ADDRESS_SPACE = 1 << 30
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
WEBHOOK = '    webhook: {method: POST, url: "http://127.0.0.1:9000/v3/admin/kill",\n'


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _laughs() -> str:
    nodes = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    nodes += [f"&l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 9)]
    return "[" + ", ".join(nodes) + "]"


def _with(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def _pagerduty(block: str) -> Callable[[str], str]:
    return _with("  policy: {mode: enforce}\n", f"  policy: {{mode: enforce}}\n  pagerduty: {block}\n")


# (case, how the example is spoiled, bytes to write instead (None: the edited text), field)
CASES: list[tuple[str, Callable[[str], str] | None, Callable[[str], bytes] | None, str]] = [
    ("utf-16", None, lambda text: text.encode("utf-16"), "<file>: "),
    ("nesting", None, lambda _: b"integration: " + b"[" * 100_000 + b"]" * 100_000, "<file>: "),
    ("billion-laughs", _with("  name: acme-cloud", f"  name: {_laughs()}"), None, "<file>: "),
    (
        "token /dev/zero",
        _with("tokenFrom: {env: BRAVO_TOKEN}", "tokenFrom: {file: /dev/zero}"),
        None,
        "probe.tenants[1].tokenFrom.file: ",
    ),
    (
        "routing key /dev/zero",
        _pagerduty("{routingKeyFrom: {file: /dev/zero}}"),
        None,
        "integration.pagerduty.routingKey.file: ",
    ),
    ("routing key length", _pagerduty('{routingKey: "abc123"}'), None, "integration.pagerduty.routingKey: "),
    (
        "pagerduty url",
        _pagerduty(f'{{routingKey: "{ROUTING_KEY}", url: "http://:::::/v2"}}'),
        None,
        "integration.pagerduty.url: ",
    ),
    (
        "webhook header CR/LF",
        _with(
            'headers: {Authorization: "Bearer ADMIN"}', 'headers: {Authorization: "Bearer ADMIN\\r\\nX: 1"}'
        ),
        None,
        "integration.killSwitch.webhook.headers.Authorization: ",
    ),
    (
        "argv NUL",
        _with(
            WEBHOOK,
            '    command: {argv: ["/bin/true", "a\\0b"]}\n    webhook: {method: POST, url: "http://127.0.0.1:9000/v3/admin/kill",\n',
        ),
        None,
        "integration.killSwitch.command.argv[1]: ",
    ),
]


@pytest.mark.parametrize(("case", "edit", "raw", "field"), CASES, ids=[case[0] for case in CASES])
def test_a_bad_config_exits_2_naming_the_field(
    tmp_path: Path,
    case: str,
    edit: Callable[[str], str] | None,
    raw: Callable[[str], bytes] | None,
    field: str,
) -> None:
    text = EXAMPLE.read_text()
    config = tmp_path / "monitor.yaml"
    if raw is not None:
        config.write_bytes(raw(text))
    else:
        assert edit is not None
        config.write_text(edit(text))
    result = subprocess.run(
        [*CLI, "run", "--config", str(config), "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BRAVO_TOKEN": "t-bravo"},
        preexec_fn=_limit_memory,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"--config {config}: {field}" in result.stderr, result.stderr[-2000:]
    assert len(result.stderr) < 2000  # no value quoted whole


def test_a_config_that_is_dev_zero_exits_2() -> None:
    result = subprocess.run(
        [*CLI, "run", "--config", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert result.returncode == 2 and "<file>: /dev/zero is larger than 256 KiB" in result.stderr
