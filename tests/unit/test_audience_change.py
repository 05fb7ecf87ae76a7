"""Which identify calls are Engage audience entries or exits (a membership row,
when the destination sends audiences as memberships): an audience's own key,
named by context.personas, with a boolean trait of that name. Anything else is
not one, and never an error: the call still updates the profile."""

from __future__ import annotations

from typing import Any

import pytest

from destinations.services.mapping import AudienceChange, audience_change

PERSONAS = {"computation_class": "audience", "computation_key": "vip", "computation_id": "aud_1"}


def call(traits: Any = ..., context: Any = ...) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "identify", "userId": "u1"}
    if traits is not ...:
        event["traits"] = traits
    if context is not ...:
        event["context"] = context
    return event


@pytest.mark.parametrize("member", [True, False])
def test_an_audiences_boolean_trait_is_an_entry_or_exit(member: bool) -> None:
    change = audience_change(call({"vip": member}, {"personas": PERSONAS}))

    assert change == AudienceChange(key="vip", computation_id="aud_1", member=member)


@pytest.mark.parametrize("computation_id", [..., 7, None])
def test_without_a_textual_computation_id_it_is_empty(computation_id: Any) -> None:
    personas = {key: value for key, value in PERSONAS.items() if key != "computation_id"}
    if computation_id is not ...:
        personas["computation_id"] = computation_id

    change = audience_change(call({"vip": True}, {"personas": personas}))

    assert change == AudienceChange(key="vip", computation_id="", member=True)


CASES = {
    "no-context": call({"vip": True}),
    "context-null": call({"vip": True}, None),
    "context-text": call({"vip": True}, "personas"),
    "no-personas": call({"vip": True}, {"ip": "1.2.3.4"}),
    "no-traits": call(context={"personas": PERSONAS}),
    "traits-null": call(None, {"personas": PERSONAS}),
    "computed-trait": call(
        {"vip": True}, {"personas": {**PERSONAS, "computation_class": "computed_trait"}}
    ),
    "key-a-list": call({"vip": True}, {"personas": {**PERSONAS, "computation_key": ["vip"]}}),
    "key-empty": call({"": True}, {"personas": {**PERSONAS, "computation_key": ""}}),
    "not-boolean": call({"vip": "yes"}, {"personas": PERSONAS}),
    "trait-missing": call({"email": "a@x.io"}, {"personas": PERSONAS}),
}


@pytest.mark.parametrize("event", CASES.values(), ids=CASES.keys())
def test_anything_else_is_not_an_audience_change(event: dict[str, Any]) -> None:
    assert audience_change(event) is None
