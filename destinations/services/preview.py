"""The mapping preview: what a Segment event would become in Talon.One, without
storing or sending anything.

It runs the real code paths: ingest's plan() for the rows and notes, the
handlers' request functions and the Talon.One client for each request, whose
transport is replaced by one that records instead of sending. What delivery
would leave out today (values older than one already delivered, attributes
Talon.One refused recently) is left out here too, with the reason. Only the
dry run (ask_talon_one) sends: a profile update with dry=true, which Talon.One
validates without storing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings

from destinations.models import Destination, InboundEvent, TalonAudience
from destinations.services import ingest, outbox, refusals
from destinations.services.handlers import audiences, events, profiles
from destinations.talon_one import Outcome, Result, TalonOneClient

# A pasted batch is previewed event by event, up to this many.
MAX_EVENTS = 20
BULK_NOTE = (
    "Sent in bulk: other profiles' updates due at the same time share the request "
    "(up to 1,000 profiles)."
)
NEW_AUDIENCE_NOTE = (
    "The audience is created in Talon.One first (once); its id then replaces audienceId null."
)
NOTHING_LEFT = "nothing would be sent: every attribute is left out (see the notes)"
DRY_RUN_KIND = InboundEvent.Kind.PROFILE


@dataclass(frozen=True)
class PlannedRequest:
    method: str
    path: str  # with the query; no host: marketers never see the base URL
    body: dict[str, Any] | None
    note: str = ""

    @property
    def body_json(self) -> str:
        return json.dumps(self.body, indent=2, ensure_ascii=False)


@dataclass
class RowPreview:
    """One row plan() makes of the event, and the requests it would become."""

    kind: str  # InboundEvent.Kind, "" when skipped
    kind_label: str
    user_id: str
    status: str
    reason: str
    attributes: dict[str, Any]
    notes: list[dict[str, str]]
    requests: list[PlannedRequest] = field(default_factory=list)


@dataclass
class Preview:
    rows: list[RowPreview] = field(default_factory=list)
    error: str = ""

    @property
    def profile_update(self) -> RowPreview | None:
        """The row a dry run asks Talon.One about."""
        return next((r for r in self.rows if r.kind == DRY_RUN_KIND and r.requests), None)


class _Recorder(TalonOneClient):
    """The real client's request building, with nothing sent and no key."""

    def __init__(self) -> None:
        super().__init__(base_url="", api_key="")
        self.requests: list[PlannedRequest] = []

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> Result:
        self.requests.append(PlannedRequest(method, path, body))
        return Result(method, path, body or {}, Outcome.SUCCESS, None, "", "", 0)


def preview(destination: Destination, text: str) -> Preview:
    """What the pasted event(s) would become for the destination."""
    try:
        data = ingest.load_json(text.encode(), settings.INGEST_MAX_REQUEST_BYTES)
        parsed = ingest.events_from(data, MAX_EVENTS)
    except (ingest.InvalidPayload, ingest.PayloadTooLarge) as exc:
        return Preview(error=str(exc))
    rows = ingest.plan(destination, parsed)
    delivered = outbox.delivered_timestamps(destination, {row.user_id for row in rows})
    refused = refusals.active(destination)
    known = {a.key: a for a in TalonAudience.objects.filter(destination=destination)}
    return Preview(rows=[_row(destination, row, delivered, refused, known) for row in rows])


def _row(
    destination: Destination,
    row: InboundEvent,
    delivered: dict[str, dict[str, str]],
    refused: dict[str, str],
    known: dict[str, TalonAudience],
) -> RowPreview:
    result = RowPreview(
        kind=row.kind,
        kind_label=row.get_kind_display() if row.kind else "nothing sent",
        user_id=row.user_id,
        status=row.status,
        reason=row.reason,
        attributes=dict(row.attributes),
        notes=list(row.notes),
    )
    if row.status != InboundEvent.Status.PENDING:
        return result
    recorder = _Recorder()
    previous = delivered.get(row.user_id, {})
    if row.kind == InboundEvent.Kind.PROFILE:
        _profile(destination, row, previous, refused, recorder, result)
    elif row.kind == InboundEvent.Kind.EVENT:
        events.track(recorder, row)
    elif row.kind == InboundEvent.Kind.AUDIENCE:
        _audience(destination, row, previous, known, recorder, result)
    else:
        recorder.delete_customer_data(row.user_id)
    result.requests = recorder.requests
    return result


def _profile(
    destination: Destination,
    row: InboundEvent,
    previous: dict[str, str],
    refused: dict[str, str],
    recorder: _Recorder,
    result: RowPreview,
) -> None:
    (entry,) = profiles.coalesce([row], {row.user_id: previous})
    for name in entry.stale.get(row.pk, []):
        result.notes.append({"attribute": name, "reason": profiles.STALE_REASON.format(names=name)})
    for name in sorted(set(entry.attributes) & set(refused)):
        del entry.attributes[name]
        result.notes.append(
            {"attribute": name, "reason": f"{profiles.REFUSED_NOTE}: {refused[name]}"}
        )
    result.attributes = entry.attributes
    if not entry.attributes:
        result.reason = NOTHING_LEFT
        return
    profiles.update(recorder, {entry.integration_id: entry.attributes}, destination.run_rule_engine)
    if not destination.run_rule_engine:
        recorder.requests[-1] = _with_note(recorder.requests[-1], BULK_NOTE)


def _audience(
    destination: Destination,
    row: InboundEvent,
    previous: dict[str, str],
    known: dict[str, TalonAudience],
    recorder: _Recorder,
    result: RowPreview,
) -> None:
    key = row.call["key"]
    sent_at = previous.get(audiences.state_key(key))
    if sent_at and row.timestamp < datetime.fromisoformat(sent_at):
        result.reason = audiences.STALE_REASON
        return
    audience = known.get(key) or TalonAudience(
        destination=destination, key=key, computation_id=row.call.get("computation_id", "")
    )
    if audience.talon_id is None:
        recorder.create_audience(key, audiences.creation_id(audience))
    recorder.update_audiences([audiences.change_body(audience, row)])
    if audience.talon_id is None:
        recorder.requests[-1] = _with_note(recorder.requests[-1], NEW_AUDIENCE_NOTE)


def _with_note(request: PlannedRequest, note: str) -> PlannedRequest:
    return PlannedRequest(request.method, request.path, request.body, note)


@dataclass(frozen=True)
class DryRun:
    """Talon.One's answer to the profile update, sent with dry=true."""

    method: str
    path: str
    body: dict[str, Any]
    status: int | None
    accepted: bool
    answer: str  # Talon.One's message, or what went wrong
    response: str

    @property
    def body_json(self) -> str:
        return json.dumps(self.body, indent=2, ensure_ascii=False)


def ask_talon_one(destination: Destination, row: RowPreview) -> DryRun:
    """Sends the profile update with runRuleEngine=true&dry=true (Talon.One takes
    dry only with the rule engine): it checks the attributes and changes nothing."""
    client = TalonOneClient(destination.base_url, destination.api_key)
    result = client.update_profile(row.user_id, row.attributes, run_rule_engine=True, dry=True)
    return DryRun(
        method=result.method,
        path=result.url.removeprefix(destination.base_url),
        body=result.body,
        status=result.status,
        accepted=result.outcome is Outcome.SUCCESS,
        answer=result.summary(),
        response=result.response_body,
    )
