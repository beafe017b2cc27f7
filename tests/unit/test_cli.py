"""The command-line contract: keys generate, frame render/decode, exit codes."""

import json
import stat
from pathlib import Path

import pytest

from canarywatch.cli import main


@pytest.fixture
def ring(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    assert main(["keys", "generate", "--tenants", "acme-7,bravo-2", "--out", str(path)]) == 0
    return path


def test_keyring_file_is_private(ring: Path) -> None:
    assert stat.S_IMODE(ring.stat().st_mode) == 0o600
    assert set(json.loads(ring.read_text())["tenants"]) == {"acme-7", "bravo-2"}


def test_generate_refuses_to_overwrite(ring: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--tenants", "x", "--out", str(ring)]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_render_then_decode_as_each_viewer(
    ring: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str
) -> None:
    out = tmp_path / f"f{ext}"
    args = [
        "frame",
        "render",
        "--keyring",
        str(ring),
        "--tenant",
        "acme-7",
        "--camera",
        "3",
        "--seq",
        "42",
        "--time",
        "1795000000",
        "--width",
        "640",
        "--height",
        "360",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "frame",
                "decode",
                "--keyring",
                str(ring),
                "--tenant",
                "acme-7",
                "--camera",
                "3",
                str(out),
            ]
        )
        == 0
    )
    assert main(["frame", "decode", "--keyring", str(ring), "--tenant", "bravo-2", str(out)]) == 0
    assert (
        main(
            [
                "frame",
                "decode",
                "--keyring",
                str(ring),
                "--tenant",
                "acme-7",
                "--camera",
                "3",
                "--max-age",
                "60",
                str(out),
            ]
        )
        == 0
    )
    own, other, stale = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert own == {
        **own,
        "file": str(out),
        "verdict": "ok",
        "tenant": "acme-7",
        "camera": 3,
        "seq": 42,
        "time": 1795000000.0,
        "reason": None,
    }
    assert other["verdict"] == "cross_tenant" and "bravo-2" in other["reason"]
    assert stale["verdict"] == "stale"


def test_decode_reports_undecodable_with_reason(
    ring: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert main(["frame", "decode", "--keyring", str(ring), str(junk)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["verdict"] == "undecodable" and "truncated" in record["reason"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frame", "decode", "--keyring", "/nonexistent.json", "x.jpg"], "--keyring"),
        (
            [
                "frame",
                "render",
                "--keyring",
                "RING",
                "--tenant",
                "zed",
                "--camera",
                "0",
                "--seq",
                "0",
                "--out",
                "o.png",
            ],
            "--tenant",
        ),
        (
            [
                "frame",
                "render",
                "--keyring",
                "RING",
                "--tenant",
                "acme-7",
                "--camera",
                "0",
                "--seq",
                "0",
                "--out",
                "o.gif",
            ],
            "--out",
        ),
        (["frame", "decode", "--keyring", "RING", "--camera", "1", "x.jpg"], "--camera"),
        (["frame", "decode", "--keyring", "RING", "/nonexistent.jpg"], "/nonexistent.jpg"),
        (["keys", "generate", "--tenants", "ok,not ok!", "--out", "OUT"], "--tenants"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(
    ring: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.replace("RING", str(ring)).replace("OUT", str(tmp_path / "new.json")) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_argparse_range_errors_exit_2(ring: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(
            [
                "frame",
                "render",
                "--keyring",
                str(ring),
                "--tenant",
                "acme-7",
                "--camera",
                "70000",
                "--seq",
                "0",
                "--out",
                "o.png",
            ]
        )
    assert e.value.code == 2
    assert "--camera must be in 0..65535" in capsys.readouterr().err


def test_bad_keyring_content_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "tenants": {"a": {"key": "AAAA"}}}')
    assert main(["frame", "decode", "--keyring", str(bad), "x.jpg"]) == 2
    assert "tenants.a.key" in capsys.readouterr().err
