"""Properties of map_identify over any JSON traits and any rule set (hypothesis)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from destinations.services.mapping import (
    ATTRIBUTE_NAME_RE,
    MAX_SAFE_INTEGER,
    MAX_STRING_LENGTH,
    AttributeRule,
    AttributeType,
    MappingConfig,
    attribute_name_error,
    map_identify,
)

T = AttributeType
RFC3339_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
ITEM_TYPE = {T.LIST_STRING: T.STRING, T.LIST_NUMBER: T.NUMBER, T.LIST_TIME: T.TIME}
EXAMPLES = settings(max_examples=300, deadline=None)

# A small pool, so that trait keys, rows and Engage keys meet often.
NAMES = ["a", "b", "a_b", "email", "Email", "vip", "address", "address_city", "city", "x_y_z"]
ODD_KEYS = ["", "a.b", "first name", "e-mail", "straße", "_x", "1a", "a\n", "ä", "a b"]
keys = st.sampled_from(NAMES + ODD_KEYS) | st.text(max_size=8)

# Strings that the coercions look at twice.
TRICKY_STRINGS = [
    "42",
    " 4.2 ",
    "1e3",
    "1e999",
    "007",
    "-0",
    "9007199254740993",
    "true",
    "FALSE",
    "yes",
    "1990-05-17",
    "2024-03-01T10:30:00+01:00",
    "2024-03-01 10:30",
    "2024-02-30",
    "0001-01-01",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "\x00",
    "\ud800",
    "x" * 10_001,
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, -(10**30), 10**11, 10**15])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(TRICKY_STRINGS)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)
traits_values = st.dictionaries(keys, json_values, max_size=6) | json_values

valid_names = st.sampled_from(NAMES) | st.from_regex(ATTRIBUTE_NAME_RE)
# Invalid rows too: the admin refuses them, but the mapping must not rely on it.
rule_names = valid_names | st.sampled_from(ODD_KEYS)
rule_sets = st.dictionaries(rule_names, st.sampled_from(list(AttributeType)), max_size=6)
personas = st.none() | st.fixed_dictionaries(
    {
        "computation_class": st.sampled_from(["audience", "trait", "journey_step", "other"]),
        "computation_key": keys,
    }
)


def event_of(traits: Any, persona: dict[str, Any] | None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "identify", "userId": "u1", "traits": traits}
    if persona is not None:
        event["context"] = {"personas": persona}
    return event


def config_of(rules: dict[str, AttributeType], forward_engage: bool) -> MappingConfig:
    return MappingConfig(
        rules=tuple(AttributeRule(name, type_) for name, type_ in rules.items()),
        forward_engage=forward_engage,
    )


def has_type(value: Any, type_: AttributeType) -> bool:
    """Whether value is a valid Talon.One value of type_, as the mapping promises."""
    if type_ in ITEM_TYPE:
        return isinstance(value, list) and all(has_type(item, ITEM_TYPE[type_]) for item in value)
    if type_ in (T.STRING, T.LOCATION):
        return (
            isinstance(value, str)
            and len(value) <= MAX_STRING_LENGTH
            and not re.search(r"[\x00\ud800-\udfff]", value)
        )
    if type_ == T.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return abs(value) <= MAX_SAFE_INTEGER if isinstance(value, int) else math.isfinite(value)
    if type_ == T.BOOLEAN:
        return isinstance(value, bool)
    return (
        isinstance(value, str)
        and RFC3339_UTC.fullmatch(value) is not None
        and datetime.fromisoformat(value).tzinfo is not None
    )


def flattened_names(traits: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every name the mapping must account for: each leaf and each empty object."""
    for key, value in traits.items():
        if isinstance(value, dict) and value:
            yield from flattened_names(value, (*path, key))
        else:
            yield "_".join((*path, key))


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    return value


@EXAMPLES
@given(traits_values, rule_sets, personas, st.booleans())
def test_output_is_always_valid(
    traits: Any,
    rules: dict[str, AttributeType],
    persona: dict[str, Any] | None,
    forward_engage: bool,
) -> None:
    result = map_identify(event_of(traits, persona), config_of(rules, forward_engage))

    body = json.dumps(result.attributes, allow_nan=False, ensure_ascii=False)
    body.encode("utf-8")
    engage_key = persona["computation_key"] if persona and forward_engage else None
    for name, value in result.attributes.items():
        assert ATTRIBUTE_NAME_RE.match(name)
        if name in rules:
            assert has_type(value, rules[name]), (name, value, rules[name])
        else:
            # Unlisted names come only from the Engage trait, with a value of some type.
            assert engage_key is not None
            assert name == engage_key or name.startswith(engage_key + "_")
            assert any(has_type(value, type_) for type_ in AttributeType), (name, value)
            if persona and persona["computation_class"] in ("audience", "journey_step"):
                assert isinstance(value, bool)
    for note in result.notes:
        assert isinstance(note.attribute, str)
        assert note.reason


@EXAMPLES
@given(st.dictionaries(keys, json_values, max_size=6), rule_sets, personas, st.booleans())
def test_nothing_is_dropped_silently(
    traits: dict[str, Any],
    rules: dict[str, AttributeType],
    persona: dict[str, Any] | None,
    forward_engage: bool,
) -> None:
    result = map_identify(event_of(traits, persona), config_of(rules, forward_engage))

    noted = {note.attribute for note in result.notes}
    for name in flattened_names(traits):
        assert name in result.attributes or name in noted, name


@EXAMPLES
@given(st.dictionaries(keys, json_values, max_size=6), rule_sets)
def test_key_order_does_not_change_what_is_sent(
    traits: dict[str, Any], rules: dict[str, AttributeType]
) -> None:
    config = config_of(rules, True)
    forward = map_identify(event_of(traits, None), config)
    backward = map_identify(event_of(reversed_keys(traits), None), config)
    assert forward.attributes == backward.attributes


@EXAMPLES
@given(st.text(max_size=12) | st.from_regex(ATTRIBUTE_NAME_RE))
def test_name_error_agrees_with_the_pattern(name: str) -> None:
    error = attribute_name_error(name)
    assert (error is None) == bool(ATTRIBUTE_NAME_RE.match(name))
    assert error is None or error.startswith("Talon.One attribute names ")
