"""Talon.One custom-attribute types and the sandbox's attribute catalogue."""

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

# Talon.One attribute names are case-sensitive identifiers.
NAME_PATTERN = re.compile(r"[A-Za-z]\w*", re.ASCII)

# Used when the sandbox is started without --attribute flags.
DEFAULT_CATALOGUE: dict[str, str] = {
    "email": "string",
    "firstName": "string",
    "lastName": "string",
    "plan": "string",
    "age": "number",
    "vip": "boolean",
    "address_city": "string",
    "address_country": "string",
    "createdAt": "time",
    "order_completed_last_30days": "boolean",
    "lifetime_value": "number",
    "favourite_categories": "(list string)",
}

# Exact type checks (not isinstance): json.loads only produces these types, and
# bool must not pass as a number.


def _is_string(value: Any) -> bool:
    return type(value) is str


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _is_boolean(value: Any) -> bool:
    return type(value) is bool


def _is_time(value: Any) -> bool:
    """RFC 3339 date-time with a time zone offset."""
    if type(value) is not str or len(value) < 11 or value[10] not in "Tt ":
        return False
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def check_list(value: Any) -> bool:
        return type(value) is list and all(check(item) for item in value)

    return check_list


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": _is_string,
    "number": _is_number,
    "boolean": _is_boolean,
    "time": _is_time,
    "location": _is_string,
    "(list string)": _list_of(_is_string),
    "(list number)": _list_of(_is_number),
    "(list time)": _list_of(_is_time),
    "(list location)": _list_of(_is_string),
}

ATTRIBUTE_TYPES: tuple[str, ...] = tuple(_TYPE_CHECKS)


def value_matches(type_name: str, value: Any) -> bool:
    """Whether a (non-null) JSON value is valid for an attribute of this type."""
    return _TYPE_CHECKS[type_name](value)


def validate_catalogue(raw: Any) -> dict[str, str]:
    """Check a `{"name": "type"}` catalogue; raise ValueError naming the problem."""
    if not isinstance(raw, Mapping):
        raise ValueError('attributes must be a JSON object {"name": "type"}')
    for name, type_name in raw.items():
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"invalid attribute name {name!r}")
        if type_name not in _TYPE_CHECKS:
            raise ValueError(
                f"attribute {name!r} has unknown type {type_name!r};"
                f" expected one of {', '.join(ATTRIBUTE_TYPES)}"
            )
    return dict(raw)


def parse_attribute_flags(flags: Iterable[str]) -> dict[str, str]:
    """Build a catalogue from `NAME:TYPE` strings, e.g. `tags:(list string)`."""
    catalogue: dict[str, str] = {}
    for flag in flags:
        name, separator, type_name = flag.partition(":")
        if not separator:
            raise ValueError(f"expected NAME:TYPE, got {flag!r}")
        catalogue[name.strip()] = type_name.strip()
    return validate_catalogue(catalogue)
