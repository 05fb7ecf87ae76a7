from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from destinations.models import Destination, InboundEvent
from destinations.services import backfill, ingest

SHOWN_IN_DRY_RUN = 20


class Command(BaseCommand):
    help = (
        "Feed Segment events from a file through ingest, as if Segment had sent them: "
        "JSON lines (one event a line) or a CSV of userId plus trait columns, gzip accepted. "
        "Interrupted, run it again: it resumes where it stopped, sending nothing twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--destination", required=True, metavar="SLUG")
        parser.add_argument("--format", choices=["jsonl", "csv"], help="Default: by extension.")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument(
            "--timestamp",
            help="When CSV rows happened (ISO 8601); default: the file's modification time. "
            "Live events newer than this win over the file's values.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Store and send nothing.")
        parser.add_argument(
            "--restart", action="store_true", help="Ignore the checkpoint of an earlier run."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        destination = Destination.objects.filter(slug=options["destination"]).first()
        if destination is None:
            raise CommandError(f"No destination {options['destination']!r}.")
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        run = _Run(self, destination, path, options)
        try:
            run.go()
        except backfill.BackfillError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            self.stderr.write(
                f"\nInterrupted after line {run.done}. Run the same command again to resume."
            )
            run.report()
            raise SystemExit(130) from None
        run.report()


class _Run:
    def __init__(
        self, command: Command, destination: Destination, path: Path, options: dict[str, Any]
    ) -> None:
        self.command = command
        self.destination = destination
        self.path = path
        self.dry_run: bool = options["dry_run"]
        self.batch_size: int = options["batch_size"]
        self.format = options["format"] or backfill.file_format(path)
        self.timestamp = _timestamp(options["timestamp"]) or backfill.file_time(path)
        self.checkpoint = backfill.checkpoint_path(path, destination)
        resume = not (options["restart"] or self.dry_run)
        self.start = backfill.read_checkpoint(self.checkpoint) if resume else 0
        self.done = self.start
        self.totals = backfill.Totals()
        self.shown = 0

    def go(self) -> None:
        total = backfill.count_lines(self.path)
        if self.start:
            self.command.stdout.write(f"Resuming after line {self.start} of {total}.")
        batch: list[ingest.Event] = []
        # On standard error, beside the command's output: rate and time left.
        with tqdm(
            total=total, initial=self.start, unit=" lines", file=sys.stderr, mininterval=1
        ) as progress:
            for line in backfill.read(self.path, self.format, self.timestamp):
                if line.number <= self.start:
                    continue
                self.totals.lines += 1
                if line.problem:
                    self.totals.invalid[line.problem] += 1
                elif line.event is not None:
                    batch.append(line.event)
                if len(batch) >= self.batch_size:
                    self._store(batch, line.number)
                    progress.update(line.number - progress.n)
                    batch = []
            self._store(batch, total)
            progress.update(total - progress.n)
        if not self.dry_run:
            self.checkpoint.unlink(missing_ok=True)

    def _store(self, events: list[ingest.Event], upto: int) -> None:
        if events and self.dry_run:
            self._show(ingest.plan(self.destination, events))
        elif events:
            self.totals.add(ingest.ingest(self.destination, events))
        if not self.dry_run:
            self.checkpoint.write_text(str(upto))
        self.done = upto

    def _show(self, rows: list[InboundEvent]) -> None:
        known = set(
            InboundEvent.objects.filter(
                destination=self.destination, message_id__in=[row.message_id for row in rows]
            ).values_list("message_id", flat=True)
        )
        for row in rows:
            if row.message_id in known:
                self.totals.duplicates += 1
            elif row.status == InboundEvent.Status.PENDING:
                self.totals.accepted += 1
                if self.shown < SHOWN_IN_DRY_RUN:
                    self.shown += 1
                    call = row.attributes if row.kind != InboundEvent.Kind.AUDIENCE else row.call
                    self.command.stdout.write(
                        f"would send {row.kind} for {row.user_id}: "
                        f"{json.dumps(call, ensure_ascii=False)}"
                    )
            else:
                self.totals.skipped[row.reason] += 1

    def report(self) -> None:
        totals = self.totals
        verb = "would be " if self.dry_run else ""
        out = self.command.stdout
        out.write(
            f"{totals.lines} lines read: {totals.accepted} events {verb}accepted, "
            f"{totals.duplicates} duplicates, {sum(totals.skipped.values())} skipped, "
            f"{sum(totals.invalid.values())} invalid lines."
        )
        for reason, count in totals.skipped.most_common():
            out.write(f"  skipped {count}: {reason}")
        for problem, count in totals.invalid.most_common():
            out.write(f"  invalid {count}: {problem}")


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError("--timestamp must be an ISO 8601 date-time with a UTC offset.")
    return parsed
