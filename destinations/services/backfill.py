"""Backfill: Segment events from a file, through the same validation, mapping,
dedupe and outbox as webhooks.

A file is JSON lines (one Segment event a line) or a CSV of userId plus trait
columns (one identify a row), either possibly gzip. Every event gets a stable
messageId (its own, or one derived from the file's content and line), so a
run that is interrupted and started again stores nothing twice; a checkpoint
beside the file lets it skip the lines already stored instead of re-reading
them. CSV rows carry no time: they are given the file's modification time
(or --timestamp), so live events newer than the file still win.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from destinations.models import Destination
from destinations.services import ingest

USER_ID_COLUMNS = ("userId", "user_id")


class BackfillError(ValueError):
    """The file cannot be read as a whole (no userId column, not UTF-8, say)."""


@dataclass
class Totals:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)  # lines no event came from

    def add(self, summary: ingest.IngestSummary) -> None:
        self.accepted += summary.accepted
        self.duplicates += summary.duplicates
        self.skipped.update(summary.skipped_reasons)


@dataclass(frozen=True)
class Line:
    number: int  # from 1, as editors count
    event: ingest.Event | None  # None: the line holds no event (blank, or see problem)
    problem: str = ""


def open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    # Returned open: the caller closes it (with).
    raw: IO[bytes] = gzip.open(path, "rb") if gzipped else path.open("rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def count_lines(path: Path) -> int:
    with open_text(path) as text:
        return sum(1 for _ in text)


def file_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "csv" if name.endswith(".csv") else "jsonl"


def read(path: Path, fmt: str, timestamp: datetime) -> Iterator[Line]:
    """Every line of the file as an event, or why it is not one."""
    digest = hashlib.sha256(path.name.encode()).hexdigest()[:12]
    with open_text(path) as text:
        try:
            if fmt == "csv":
                yield from _csv_lines(text, digest, timestamp)
            else:
                yield from _json_lines(text)
        except UnicodeDecodeError as exc:
            raise BackfillError(f"The file is not UTF-8 text ({exc.reason}).") from None


def _json_lines(text: IO[str]) -> Iterator[Line]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            yield Line(number, None)
            continue
        try:
            data = ingest.load_json(line.encode(), settings.INGEST_MAX_EVENT_BYTES)
            (event,) = ingest.events_from([data], 1)
        except (ingest.InvalidPayload, ingest.PayloadTooLarge) as exc:
            yield Line(number, None, str(exc))
            continue
        yield Line(number, event)


def _csv_lines(text: IO[str], digest: str, timestamp: datetime) -> Iterator[Line]:
    reader = csv.reader(text)
    header = next(reader, None)
    column = next((c for c in USER_ID_COLUMNS if header and c in header), None)
    if header is None or column is None:
        raise BackfillError("The CSV's first row must name the columns, one of them userId.")
    user_index = header.index(column)
    yield Line(1, None)  # the header
    for number, values in enumerate(reader, start=2):
        if not any(values):
            yield Line(number, None)
            continue
        if len(values) != len(header):
            yield Line(number, None, f"{len(values)} values for {len(header)} columns")
            continue
        traits = {
            name: value
            for index, (name, value) in enumerate(zip(header, values, strict=True))
            if index != user_index and value != ""
        }
        event: dict[str, Any] = {
            "type": "identify",
            "userId": values[user_index],
            "traits": traits,
            "timestamp": timestamp.isoformat(),
        }
        content = json.dumps([number, values], ensure_ascii=False).encode()
        event["messageId"] = f"backfill-{digest}-{hashlib.sha256(content).hexdigest()[:32]}"
        yield Line(number, ingest.events_from([event], 1)[0])


def checkpoint_path(path: Path, destination: Destination) -> Path:
    return path.with_name(f"{path.name}.backfill-{destination.slug}.progress")


def read_checkpoint(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def file_time(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
