"""A listed track call's properties become its Talon.One custom event's
attributes: flattened, checked and coerced exactly as an identify's traits are,
with a note for each property left out. A track call is never an Engage call."""

from __future__ import annotations

from typing import Any

import pytest

from destinations.services.mapping import (
    COLLISION,
    EMPTY_OBJECT,
    NOT_LISTED,
    PROPERTIES_NOT_OBJECT,
    AttributeRule,
    AttributeType,
    MappingResult,
    Note,
    map_track,
)

RULES = (
    AttributeRule("cart_total", AttributeType.NUMBER),
    AttributeRule("coupon", AttributeType.STRING),
)


def track(properties: Any = ..., **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "track", "event": "Order Completed", "userId": "u1"}
    if properties is not ...:
        event["properties"] = properties
    return {**event, **fields}


def test_listed_properties_are_flattened_coerced_and_the_rest_noted() -> None:
    properties = {"cart": {"total": 1}, "cart_total": "2.5", "empty": {}, "coupon": 7, "other": 1}

    result = map_track(track(properties), RULES)

    assert result == MappingResult(
        {"cart_total": 2.5, "coupon": "7"},
        (
            Note("empty", EMPTY_OBJECT),
            Note("cart_total", COLLISION.format(loser="cart.total", winner="cart_total")),
            Note("other", NOT_LISTED),
        ),
    )


@pytest.mark.parametrize("properties", [[1], "gold", 7])
def test_properties_that_are_not_an_object_are_noted(properties: Any) -> None:
    assert map_track(track(properties), RULES) == MappingResult(
        {}, (Note("properties", PROPERTIES_NOT_OBJECT),)
    )


@pytest.mark.parametrize("properties", [..., None, {}])
def test_no_properties_is_an_event_without_attributes(properties: Any) -> None:
    assert map_track(track(properties), RULES) == MappingResult({}, ())


def test_an_engage_context_does_not_pass_a_property_through() -> None:
    personas = {"computation_class": "audience", "computation_key": "vip"}

    result = map_track(track({"vip": True}, context={"personas": personas}), RULES)

    assert result == MappingResult({}, (Note("vip", NOT_LISTED),))
