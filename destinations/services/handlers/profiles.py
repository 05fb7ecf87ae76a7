"""Profile updates: an identify's attributes → PUT /v2/customer_profiles.

A profile's pending events are coalesced attribute by attribute (newest Segment
timestamp wins, and never a value older than one already delivered) and sent
in bulk, up to 1,000 profiles a request (or one request per profile when the
rule engine runs). Talon.One refuses a whole update for one bad attribute or
profile, and its error's format is not documented: a refused bulk is halved
down to single profiles, and a refused profile's attributes are halved down to
the ones it refuses, which are remembered for the destination (refusals).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from destinations.models import Destination, InboundEvent
from destinations.services import outbox, refusals
from destinations.services.outbox import Outcome, Sender, Status
from destinations.talon_one import BULK_LIMIT, Result, TalonOneClient
from destinations.talon_one import Outcome as Answer

logger = logging.getLogger(__name__)

STALE_REASON = "not sent: a newer value was already delivered for {names}"
ALL_STALE_REASON = "nothing sent: every attribute is older than a value already delivered"
ALL_REFUSED_REASON = "nothing sent: Talon.One refused every attribute: {details}"
REFUSED_NOTE = "refused by Talon.One (create it there, or stop forwarding it)"
FINDING_REFUSED = "finding what Talon.One refuses"


@dataclass
class Entry:
    """What one profile gets in one request, and the events it came from."""

    integration_id: str
    events: list[InboundEvent] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    timestamps: dict[str, datetime] = field(default_factory=dict)
    stale: dict[int, list[str]] = field(default_factory=dict)
    delivered: dict[str, str] = field(default_factory=dict)  # attribute → ISO timestamp
    refused: dict[str, str] = field(default_factory=dict)  # attribute → Talon.One's answer


class ProfileUpdates:
    kind = InboundEvent.Kind.PROFILE

    def deliver(self, sender: Sender, events: list[InboundEvent]) -> None:
        # The claim read each profile's delivered timestamps with its rows.
        _Run(sender).send(coalesce(events, {e.user_id: e.delivered for e in events}))


def coalesce(events: list[InboundEvent], delivered: dict[str, dict[str, str]]) -> list[Entry]:
    """Events in Segment-timestamp order; per attribute the newest wins, and a
    value older than one already delivered is left out."""
    entries: dict[str, Entry] = {}
    for event in events:
        entry = entries.get(event.user_id)
        if entry is None:
            entry = entries[event.user_id] = Entry(
                event.user_id, delivered=delivered.get(event.user_id, {})
            )
        entry.events.append(event)
        for name, value in event.attributes.items():
            sent_at = entry.delivered.get(name)
            if sent_at and event.timestamp < datetime.fromisoformat(sent_at):
                entry.stale.setdefault(event.pk, []).append(name)
                continue
            entry.attributes[name] = value
            entry.timestamps[name] = event.timestamp
    return list(entries.values())


def update(
    client: TalonOneClient, profiles: dict[str, dict[str, Any]], run_rule_engine: bool
) -> Result:
    """The request profiles' updates make: one profile a request with the rule
    engine, in bulk without. The mapping preview shows it with a client that sends nothing."""
    if run_rule_engine:
        ((integration_id, attributes),) = profiles.items()
        return client.update_profile(integration_id, attributes, run_rule_engine=True)
    return client.update_profiles(profiles)


class _Run:
    """One flush's profile updates for a destination."""

    def __init__(self, sender: Sender):
        self.sender = sender
        self.destination = sender.destination
        self.refused = refusals.active(sender.destination)
        # With the rule engine, one request per profile; otherwise bulk requests.
        self.group_size = 1 if self.destination.run_rule_engine else BULK_LIMIT

    def send(self, entries: list[Entry]) -> None:
        outbox.finish(
            _events(e for e in entries if not e.attributes), Status.SKIPPED, ALL_STALE_REASON
        )
        queue = _chunks([entry for entry in entries if entry.attributes], self.group_size)
        while queue:
            group = self._leave_out_refused(queue.pop(0))
            if not group:
                continue
            result = self._update(group, {e.integration_id: e.attributes for e in group})
            if result.outcome is Answer.PERMANENT and result.status in (400, 413):
                if len(group) > 1:
                    self._record(group, result, Outcome.RETRY, "split in halves, resent")
                    half = len(group) // 2
                    queue[:0] = [group[:half], group[half:]]
                    continue
                if result.status == 400:
                    if self._isolate(group[0], result):
                        # The rest now leaves those attributes out: regroup into full requests.
                        queue = _chunks([e for g in queue for e in g], self.group_size)
                    continue
            self._settle(group, result)

    def _update(self, entries: list[Entry], profiles: dict[str, dict[str, Any]]) -> Result:
        run_rule_engine = self.destination.run_rule_engine
        return self.sender.send(
            _events(entries), lambda client: update(client, profiles, run_rule_engine)
        )

    def _leave_out_refused(self, group: list[Entry]) -> list[Entry]:
        """Leaves out the attributes Talon.One refused recently; a profile left
        with nothing to send fails with the reason."""
        counts: dict[str, int] = {}
        kept, emptied = [], []
        for entry in group:
            names = [name for name in entry.attributes if name in self.refused]
            for name in names:
                entry.refused[name] = self.refused[name]
                del entry.attributes[name]
                entry.timestamps.pop(name, None)
                counts[name] = counts.get(name, 0) + _carrying(entry, name)
            (kept if entry.attributes else emptied).append(entry)
        if counts:
            refusals.count(self.destination, counts)
        _fail_refused(emptied)
        return kept

    def _isolate(self, entry: Entry, first: Result) -> bool:
        """One profile's update was refused (400): send halves of its attributes
        until each refused one is alone, delivering the rest. Returns whether
        attributes were found refused (then remembered for the destination)."""
        self._record([entry], first, Outcome.RETRY, FINDING_REFUSED)
        names = sorted(entry.attributes)
        refused: dict[str, str] = {}
        accepted: list[str] = []
        if len(names) == 1:
            refused[names[0]] = first.summary()
        else:
            stack = [names[len(names) // 2 :], names[: len(names) // 2]]
            while stack:
                subset = stack.pop()
                result = self._update(
                    [entry],
                    {entry.integration_id: {name: entry.attributes[name] for name in subset}},
                )
                if result.outcome is Answer.SUCCESS:
                    note = f"{len(subset)} of {len(names)} attributes accepted"
                    self._record([entry], result, Outcome.SUCCESS, note)
                    accepted.extend(subset)
                elif result.outcome is Answer.PERMANENT and result.status == 400:
                    if len(subset) > 1:
                        self._record([entry], result, Outcome.RETRY, FINDING_REFUSED)
                        stack.extend([subset[len(subset) // 2 :], subset[: len(subset) // 2]])
                    else:
                        note = f"attribute {subset[0]} refused"
                        self._record([entry], result, Outcome.FAILED, note)
                        refused[subset[0]] = result.summary()
                else:
                    self._settle([entry], result)
                    return False
        if not accepted and not self._profile_accepted(entry, first):
            return False
        for name, message in refused.items():
            carrying = [e for e in entry.events if name in e.attributes]
            refusals.record(
                self.destination,
                name,
                message,
                example_value=entry.attributes[name],
                example_event_id=carrying[-1].pk if carrying else None,
                events=len(carrying),
            )
            entry.refused[name] = message
            del entry.attributes[name]
            entry.timestamps.pop(name, None)
        self.refused.update(refused)
        if entry.attributes:
            mark_delivered(self.destination, [entry], timezone.now())
        else:
            _fail_refused([entry])
        return True

    def _profile_accepted(self, entry: Entry, first: Result) -> bool:
        """Every attribute was refused: is it the profile itself? An update with no
        attributes tells, so that one bad profile never marks good attributes refused."""
        result = self._update([entry], {entry.integration_id: {}})
        if result.outcome is Answer.SUCCESS:
            note = "the profile itself is accepted: the attributes are refused"
            self._record([entry], result, Outcome.SUCCESS, note)
            return True
        if result.outcome is Answer.PERMANENT:
            self._record([entry], result, Outcome.FAILED, "the profile itself is refused")
            outbox.finish(entry.events, Status.FAILED, first.summary())
        else:
            self._settle([entry], result)
        return False

    def _settle(self, entries: list[Entry], result: Result) -> None:
        try:
            self._apply(entries, result)
        except Exception:
            # Whatever went wrong here, the events must not stay claimed in
            # silence: retry them (the request may have succeeded: upserts repeat safely).
            logger.exception("Could not settle a delivery of destination %s", self.destination.pk)
            outbox.back_off(
                _events(entries),
                f"retrying: internal error after {result.summary() or 'the request'}",
            )

    def _apply(self, entries: list[Entry], result: Result) -> None:
        events = _events(entries)
        if result.outcome is Answer.SUCCESS:
            self._record(entries, result, Outcome.SUCCESS)
            mark_delivered(self.destination, entries, timezone.now())
        elif result.outcome is Answer.PERMANENT:
            self._record(entries, result, Outcome.FAILED)
            outbox.finish(events, Status.FAILED, result.summary())
        else:
            self._record(entries, result, self.sender.retry_later(events, result))

    def _record(self, entries: list[Entry], result: Result, outcome: str, note: str = "") -> None:
        self.sender.record(
            _events(entries),
            result,
            outcome,
            note,
            integration_id=entries[0].integration_id if len(entries) == 1 else "",
            profiles=len(entries),
        )


@transaction.atomic
def mark_delivered(destination: Destination, entries: list[Entry], now: datetime) -> None:
    outbox.delivered(_events(entries), now)
    stale: dict[str, list[int]] = {}
    for entry in entries:
        for event_id, names in entry.stale.items():
            reason = STALE_REASON.format(names=", ".join(sorted(names)))
            stale.setdefault(reason, []).append(event_id)
    for reason, event_ids in stale.items():
        InboundEvent.objects.filter(pk__in=event_ids).update(reason=reason)
    _note_refused(entries)
    outbox.merge_timestamps(
        destination, {entry.integration_id: entry.timestamps for entry in entries}
    )


def _fail_refused(entries: list[Entry]) -> None:
    """Profiles whose every attribute Talon.One refused: failed, with its answers."""
    by_reason: dict[str, list[InboundEvent]] = {}
    for entry in entries:
        details = "; ".join(f"{name} ({entry.refused[name]})" for name in sorted(entry.refused))
        by_reason.setdefault(ALL_REFUSED_REASON.format(details=details), []).extend(entry.events)
    for reason, events in by_reason.items():
        outbox.finish(events, Status.FAILED, reason[:2000])
    _note_refused(entries)


def _note_refused(entries: list[Entry]) -> None:
    """On each event, a note for every attribute of its own that Talon.One refused."""
    notes: dict[int, list[dict[str, str]]] = {}
    for entry in entries:
        for event in entry.events:
            for name in sorted(set(event.attributes) & set(entry.refused)):
                reason = f"{REFUSED_NOTE}: {entry.refused[name]}"
                notes.setdefault(event.pk, []).append({"attribute": name, "reason": reason})
    if not notes:
        return
    rows = list(InboundEvent.objects.filter(pk__in=notes).only("id", "notes"))
    for row in rows:
        row.notes = [*row.notes, *(n for n in notes[row.pk] if n not in row.notes)]
    InboundEvent.objects.bulk_update(rows, ["notes"])


def _events(entries: Iterable[Entry]) -> list[InboundEvent]:
    return [event for entry in entries for event in entry.events]


def _carrying(entry: Entry, name: str) -> int:
    return sum(1 for event in entry.events if name in event.attributes)


def _chunks(entries: list[Entry], size: int) -> list[list[Entry]]:
    return [entries[i : i + size] for i in range(0, len(entries), size)]
