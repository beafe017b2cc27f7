"""``IncidentLog``: the ``incidents.jsonl`` journal — appended, recovered, compacted."""

from __future__ import annotations

import json
from pathlib import Path

from canarywatch.incidents.records import IncidentLog, IncidentRecord, Intent


def _record(incident_id: str) -> IncidentRecord:
    return IncidentRecord(
        id=incident_id, integration="relay", probe="p", verdict="cross_tenant", reason="r",
        viewer_tenant="acme-7", viewer_camera=0, stream="s", path="snapshot", network_profile="good",
        observed_tenant="bravo-2", observed_camera=0, observed_seq=1, observed_time=1.0,
        frame_received_at=1.0, recorded_at=1.1, detection_seconds=0.1, mode="enforce",
        intent=Intent(page=True, kill=True),
    )  # fmt: skip


def test_a_new_log_on_an_existing_journal_recovers_it_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "incidents.jsonl"
    first = IncidentLog(path)
    record = _record("a")
    first.save(record)
    record.occurrences = 5
    first.save(record)
    first.save(record)  # unchanged: nothing appended
    assert len(path.read_text().splitlines()) == 2

    second = IncidentLog(path)  # a restart: recovered, compacted to one line per incident
    assert [r.id for r in second.recovered] == ["a"] and second.get("a") == record
    assert second.get("a").intent == Intent(page=True, kill=True)
    assert len(path.read_text().splitlines()) == 1
    second.save(_record("b"))
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "incidents.jsonl"
    log = IncidentLog(path)
    log.save(_record("a"))
    with path.open("ab") as handle:
        handle.write(b'{"id": "b", "integ')  # SIGKILL mid-write
    recovered = IncidentLog(path)
    assert [r.id for r in recovered.records()] == ["a"]
    recovered.save(_record("c"))  # does not glue onto the damaged line
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "c"]


def test_records_changed_in_place_are_journalled_by_flush(tmp_path: Path) -> None:
    path = tmp_path / "incidents.jsonl"
    log = IncidentLog(path)
    record = _record("a")
    log.save(record)
    record.occurrences = 40  # a storm updates the record without saving every frame
    log.flush()
    assert json.loads(path.read_text().splitlines()[-1])["occurrences"] == 40
    assert IncidentLog(path).get("a").occurrences == 40
