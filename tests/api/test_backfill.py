"""manage.py backfill: files of Segment events through the same ingest."""

import csv
import gzip
import json
import os
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from destinations.models import InboundEvent
from destinations.services import backfill, ingest
from tests.conftest import identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status


@pytest.fixture
def destination(make_destination):
    return make_destination(attributes=["email", "plan"])


def run(path, *args, capsys=None):
    call_command("backfill", str(path), "--destination", "acme", *args)
    return capsys.readouterr().out if capsys else ""


def write_csv(path, rows, header=("userId", "email", "plan")):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_json_lines_go_through_ingest_with_a_summary(destination, tmp_path, capsys):
    path = tmp_path / "events.jsonl.gz"
    lines = [
        json.dumps(identify("u1", "m1", traits={"email": "a@x.io"})),
        "",
        json.dumps({"type": "page", "userId": "u1", "messageId": "p1"}),
        "{not json",
        json.dumps(identify("u2", "m2", userId=4.5)),
        json.dumps(identify("u1", "m1", traits={"email": "a@x.io"})),
    ]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))

    out = run(path, capsys=capsys)

    assert "6 lines read: 1 events accepted, 1 duplicates, 2 skipped, 1 invalid lines." in out
    assert "skipped 1: page events are not delivered to Talon.One" in out
    assert "invalid 1: The body is not valid JSON" in out
    assert InboundEvent.objects.get(message_id="m1").status == Status.PENDING
    assert "must be a string or an integer" in InboundEvent.objects.get(message_id="m2").reason


def line_of(size: int, message_id: str) -> str:
    """A JSON line of `size` bytes, its newline included."""

    def line(padding: str) -> str:
        return json.dumps(identify("u1", message_id, traits={"email": "a@x.io", "pad": padding}))

    return line("x" * (size - len(line("")) - 1))


def test_a_json_line_is_read_up_to_the_event_size_limit(destination, tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    lines = [line_of(32768, "at-the-limit"), line_of(32769, "over"), json.dumps(identify())]
    path.write_text("\n".join(lines))
    assert [len(line) + 1 for line in lines[:2]] == [32768, 32769]

    out = run(path, capsys=capsys)

    assert "3 lines read: 2 events accepted, 0 duplicates, 0 skipped, 1 invalid lines." in out
    assert "invalid 1: The request body is larger than 32768 bytes." in out
    assert not InboundEvent.objects.filter(message_id="over").exists()


def test_a_csv_row_is_an_identify_at_the_files_time(destination, tmp_path, capsys):
    path = write_csv(tmp_path / "people.csv", [["u1", "a@x.io", "gold"], ["u2", "", "silver"]])
    os.utime(path, (1767225600, 1767225600))

    out = run(path, capsys=capsys)

    assert "3 lines read: 2 events accepted" in out
    rows = {e.user_id: e for e in InboundEvent.objects.all()}
    assert rows["u1"].attributes == {"email": "a@x.io", "plan": "gold"}
    assert rows["u2"].attributes == {"plan": "silver"}
    assert rows["u1"].timestamp == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_dry_run_shows_what_would_be_sent_and_stores_nothing(destination, tmp_path, capsys):
    path = write_csv(tmp_path / "people.csv", [["u1", "a@x.io", "gold"]])

    out = run(path, "--dry-run", capsys=capsys)

    assert 'would send profile for u1: {"email": "a@x.io", "plan": "gold"}' in out
    assert "1 events would be accepted" in out
    assert not InboundEvent.objects.exists()
    assert not backfill.checkpoint_path(path, destination).exists()


@pytest.mark.timeout(900)  # 200,000 events stored on two cores, whatever else runs
def test_100000_lines_interrupted_and_resumed_store_each_once(
    destination, tmp_path, capsys, monkeypatch
):
    path = write_csv(
        tmp_path / "audience.csv", [[f"u{i}", f"u{i}@x.io", "gold"] for i in range(100_000)]
    )
    real_ingest = ingest.ingest
    calls = []

    def interrupted(destination, events):
        calls.append(len(events))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_ingest(destination, events)

    monkeypatch.setattr(ingest, "ingest", interrupted)
    with pytest.raises(SystemExit) as stopped:
        run(path, "--batch-size", "10000")
    assert stopped.value.code == 130
    assert InboundEvent.objects.count() == 30_000
    assert backfill.read_checkpoint(backfill.checkpoint_path(path, destination)) == 30_001
    capsys.readouterr()
    monkeypatch.setattr(ingest, "ingest", real_ingest)

    out = run(path, "--batch-size", "10000", capsys=capsys)

    assert "Resuming after line 30001 of 100001." in out
    assert "70000 lines read: 70000 events accepted, 0 duplicates" in out
    assert InboundEvent.objects.count() == 100_000
    assert not backfill.checkpoint_path(path, destination).exists()
    again = run(path, "--batch-size", "10000", capsys=capsys)
    assert "100001 lines read: 0 events accepted, 100000 duplicates" in again


def test_a_csv_without_a_user_id_column_is_refused(destination, tmp_path):
    path = write_csv(tmp_path / "bad.csv", [["a@x.io"]], header=("email",))

    with pytest.raises(CommandError, match="userId"):
        run(path)
