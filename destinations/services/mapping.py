"""Segment identify traits → the "attributes" of a Talon.One customer-profile update.

Pure: no ORM, no I/O. Talon.One rejects a whole update when one attribute is
unknown or mistyped, so every value is checked against its row's type here and
anything doubtful is left out with a Note instead of being sent. The contract
(every decision, every reason string, worked examples) is docs/mapping.md; its
examples are the golden cases in tests/data/mapping.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property, lru_cache
from typing import Any


class AttributeType(enum.StrEnum):
    """Talon.One attribute types a row may have ("(list location)" is not offered)."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIME = "time"
    LOCATION = "location"
    LIST_STRING = "(list string)"
    LIST_NUMBER = "(list number)"
    LIST_TIME = "(list time)"


# Talon.One's own pattern. \Z, not $: Python's $ also matches before a trailing
# newline, Go's (Talon.One's) does not. re.ASCII: Go's \w is ASCII-only too.
ATTRIBUTE_NAME_RE: re.Pattern[str] = re.compile(r"^[A-Za-z]\w*\Z", re.ASCII)

MAX_DEPTH = 32
MAX_STRING_LENGTH = 10_000
# RFC 8259 §6: integers beyond ±(2**53 - 1) are not exchanged exactly between JSON parsers.
MAX_SAFE_INTEGER = 2**53 - 1
# |epoch| at or above this is milliseconds (1973-03-03 as ms), below it seconds (year 5138 as s).
EPOCH_MILLISECONDS_FROM = 10**11

# Reasons: the exact texts operators see in the audit log, documented in docs/mapping.md.
NOTHING_TO_SEND = "no listed trait and no Engage trait in this call; nothing sent"
TRAITS_NOT_OBJECT = "traits is not an object; no trait read"
NOT_LISTED = "not listed; not sent"
NOT_LISTED_CASE = "not listed; '{row}' is, but names are case-sensitive; not sent"
NOT_LISTED_INVALID_NAME = "not listed, and cannot be listed: {error}"
ENGAGE_OFF = "Engage trait not listed, and Engage pass-through is off; not sent"
INVALID_NAME = "not a valid Talon.One attribute name; not sent: {error}"
NULL_SKIPPED = "null; skipped, so Talon.One keeps the value it has"
EMPTY_OBJECT = "empty object; nothing to send"
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels; dropped"
COLLISION = (
    "'{loser}' also flattens to this name; '{winner}' wins (fewer levels, then alphabetical)"
)
CANNOT_BE = "cannot be sent as {type}: {detail}; dropped"
ENGAGE_UNTYPED = "Engage list without a row must hold only strings or only numbers; dropped"
ASSUMED_UTC = "date-time without a UTC offset; assumed UTC"
ENGAGE_NO_VALUE = "Engage call carries no trait named by its computation_key; nothing forwarded"
ENGAGE_UNKNOWN_CLASS = (
    "unknown Engage computation_class '{computation_class}'; treated as a plain trait"
)
AUDIENCE_AS_MEMBERSHIP = "Engage audience; sent as a Talon.One audience membership instead"
AUDIENCE_NOT_BOOLEAN = "Engage audience value is not true or false; no membership change"
PROPERTIES_NOT_OBJECT = "properties is not an object; no property read"

# Details: why a value is not of a type; the {detail} in CANNOT_BE.
KIND_NOT_ACCEPTED = "{kind} is not accepted"
NOT_A_NUMBER = "the string is not a decimal number"
NOT_FINITE = "the number is not finite"
UNSAFE_INTEGER = f"the integer is beyond ±{MAX_SAFE_INTEGER}, where JSON numbers lose precision"
NOT_A_BOOLEAN = 'the string is not "true" or "false"'
NOT_A_TIME = "the string is not an ISO 8601 date or date-time"
TIME_OUT_OF_RANGE = "the time is outside the years 1 to 9999"
STRING_TOO_LONG = f"the string is longer than {MAX_STRING_LENGTH} characters"
UNSTORABLE_TEXT = "the string holds a NUL character or a lone surrogate, which JSON stores reject"
LIST_OF_OBJECTS = "a list holding objects is not accepted"
LIST_ITEM = "item {index}: {detail}"

_LIST_ITEM_TYPE = {
    AttributeType.LIST_STRING: AttributeType.STRING,
    AttributeType.LIST_NUMBER: AttributeType.NUMBER,
    AttributeType.LIST_TIME: AttributeType.TIME,
}
# Journey steps are memberships, like audiences: true on entry, false on exit.
_MEMBERSHIP_CLASSES = frozenset({"audience", "journey_step"})
_ENGAGE_CLASSES = _MEMBERSHIP_CLASSES | {"trait"}
# JSON's number grammar: no "+5", ".5", "0x10", "1_000", "NaN", and no leading
# zeros, which mark identifiers such as postal codes ("01234"), not quantities.
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<fraction>\.[0-9]+)?(?P<exponent>[eE][+-]?[0-9]+)?")
_ISO_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]+))?)?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
_UNSTORABLE_RE = re.compile(r"[\x00\ud800-\udfff]")
# What JSON values are, besides objects: found without the (slower) Mapping check.
_NOT_MAPPINGS = frozenset({str, int, float, bool, type(None), list})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AttributeRule:
    name: str
    type: AttributeType


@dataclass(frozen=True)
class MappingConfig:
    rules: tuple[AttributeRule, ...]
    forward_engage: bool = True
    # False: Engage audiences become Talon.One audience memberships, not attributes.
    audiences_as_attributes: bool = True

    # Looked up for every trait of every event: built once per config.
    @cached_property
    def types(self) -> dict[str, AttributeType]:
        return {rule.name: rule.type for rule in self.rules}

    @cached_property
    def by_lower(self) -> dict[str, str]:
        return {rule.name.lower(): rule.name for rule in self.rules}


@dataclass(frozen=True)
class AudienceChange:
    """An Engage audience entry (member) or exit (not member)."""

    key: str
    computation_id: str
    member: bool


@dataclass(frozen=True)
class Note:
    """One dropped, ignored or changed value, for the audit log."""

    attribute: str
    reason: str


@dataclass(frozen=True)
class MappingResult:
    attributes: dict[str, Any]
    notes: tuple[Note, ...]


@lru_cache(maxsize=4096)  # the same trait names, event after event
def attribute_name_error(name: str) -> str | None:
    """Why Talon.One cannot have an attribute of this name, or None when it can."""
    if ATTRIBUTE_NAME_RE.match(name):
        return None
    if not name:
        return "Talon.One attribute names cannot be empty."
    if not ("A" <= name[0] <= "Z" or "a" <= name[0] <= "z"):
        return (
            f"Talon.One attribute names must start with an ASCII letter (A-Z or a-z), "
            f"not {name[0]!r}."
        )
    bad = "".join(dict.fromkeys(ch for ch in name if not ATTRIBUTE_NAME_RE.match("a" + ch)))
    shown = ", ".join(repr(ch) for ch in bad)
    return (
        f"Talon.One attribute names may hold only ASCII letters, digits and underscores, "
        f"not {shown}."
    )


def map_identify(event: Mapping[str, Any], config: MappingConfig) -> MappingResult:
    """The attributes to send for one identify call, and a note for everything left out."""
    notes: list[Note] = []
    traits = _traits(event, notes)
    engage = _engage_call(event, traits, config.forward_engage, notes)
    leaves = _resolve_collisions(_walk(traits, (), notes), notes)
    mapper = _Mapper(config, engage)
    for name, leaf in leaves.items():
        mapper.add(name, leaf)
    return MappingResult(attributes=mapper.attributes, notes=(*notes, *mapper.notes))


def map_track(event: Mapping[str, Any], rules: tuple[AttributeRule, ...]) -> MappingResult:
    """The attributes of the Talon.One event a track call becomes: its listed
    properties, flattened, checked and coerced exactly as traits are."""
    notes: list[Note] = []
    properties = event.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, Mapping):
        notes.append(Note(attribute="properties", reason=PROPERTIES_NOT_OBJECT))
        properties = {}
    leaves = _resolve_collisions(_walk(properties, (), notes), notes)
    mapper = _Mapper(MappingConfig(rules=rules, forward_engage=False), None)
    for name, leaf in leaves.items():
        mapper.add(name, leaf)
    return MappingResult(attributes=mapper.attributes, notes=(*notes, *mapper.notes))


def audience_change(event: Mapping[str, Any]) -> AudienceChange | None:
    """The Engage audience entry or exit an identify carries, if it is one."""
    context = event.get("context")
    personas = context.get("personas") if isinstance(context, Mapping) else None
    traits = event.get("traits")
    if not isinstance(personas, Mapping) or not isinstance(traits, Mapping):
        return None
    key = personas.get("computation_key")
    if personas.get("computation_class") != "audience" or not isinstance(key, str) or not key:
        return None
    member = traits.get(key)
    if not isinstance(member, bool):
        return None
    computation_id = personas.get("computation_id")
    return AudienceChange(
        key=key,
        computation_id=computation_id if isinstance(computation_id, str) else "",
        member=member,
    )


@dataclass(frozen=True)
class EngageTrait:
    """The Engage audience or computed trait an identify carries."""

    key: str
    computation_class: str
    value: Any
    type: AttributeType | None  # as it passes through without a row; None: it cannot


def flattened_traits(event: Mapping[str, Any]) -> dict[str, Any]:
    """The traits as map_identify names them (objects flattened with "_", name
    collisions resolved alike), unchecked: what a row would have to be named."""
    notes: list[Note] = []
    leaves = _resolve_collisions(_walk(_traits(event, notes), (), notes), notes)
    return {name: leaf.value for name, leaf in leaves.items()}


def engage_trait(event: Mapping[str, Any]) -> EngageTrait | None:
    """The Engage trait of a call (whether forwarded or not), if it has one."""
    traits = _traits(event, [])
    engage = _engage_call(event, traits, False, [])
    if engage is None or engage.key not in traits:
        return None
    value = traits[engage.key]
    return EngageTrait(
        key=engage.key,
        computation_class=engage.computation_class,
        value=value,
        type=None if value is None else _inferred_type(value, engage),
    )


class _Uncoercible(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class _Leaf:
    path: tuple[str, ...]
    value: Any

    @property
    def name(self) -> str:
        return "_".join(self.path)

    @property
    def shown(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class _Engage:
    key: str
    computation_class: str


class _Mapper:
    """Decides, leaf by leaf, what is sent; collects the attributes and notes."""

    def __init__(self, config: MappingConfig, engage: _Engage | None) -> None:
        self.types = config.types
        self.by_lower = config.by_lower
        self.engage = engage
        self.forward_engage = config.forward_engage
        self.audiences_as_attributes = config.audiences_as_attributes
        self.attributes: dict[str, Any] = {}
        self.notes: list[Note] = []

    def add(self, name: str, leaf: _Leaf) -> None:
        type_ = self.types.get(name)
        engage = self._pass_through(leaf)
        if self._is_engage(leaf) and not self._audience_as_attribute():
            note = AUDIENCE_AS_MEMBERSHIP if isinstance(leaf.value, bool) else AUDIENCE_NOT_BOOLEAN
            self._note(name, note)
        elif type_ is None and engage is None:
            self._note(name, self._unlisted_reason(name, leaf))
        elif error := attribute_name_error(name):
            self._note(name, INVALID_NAME.format(error=error))
        elif leaf.value is None:
            self._note(name, NULL_SKIPPED)
        elif type_ is not None:
            self._send(name, leaf.value, type_)
        elif engage is not None and (inferred := _inferred_type(leaf.value, engage)) is not None:
            self._send(name, leaf.value, inferred)
        else:
            self._note(name, ENGAGE_UNTYPED)

    def _audience_as_attribute(self) -> bool:
        return self.audiences_as_attributes or (
            self.engage is not None and self.engage.computation_class != "audience"
        )

    def _pass_through(self, leaf: _Leaf) -> _Engage | None:
        """The Engage call when this leaf is its trait and pass-through is on."""
        if self.forward_engage and self._is_engage(leaf):
            return self.engage
        return None

    def _is_engage(self, leaf: _Leaf) -> bool:
        return self.engage is not None and leaf.path[0] == self.engage.key

    def _send(self, name: str, value: Any, type_: AttributeType) -> None:
        try:
            self.attributes[name], remarks = _coerce(value, type_)
        except _Uncoercible as exc:
            self._note(name, CANNOT_BE.format(type=type_, detail=exc.detail))
            return
        for remark in remarks:
            self._note(name, remark)

    def _unlisted_reason(self, name: str, leaf: _Leaf) -> str:
        if self._is_engage(leaf):
            return ENGAGE_OFF
        if (row := self.by_lower.get(name.lower())) is not None:
            return NOT_LISTED_CASE.format(row=row)
        if error := attribute_name_error(name):
            return NOT_LISTED_INVALID_NAME.format(error=error)
        return NOT_LISTED

    def _note(self, name: str, reason: str) -> None:
        self.notes.append(Note(attribute=name, reason=reason))


def _traits(event: Mapping[str, Any], notes: list[Note]) -> Mapping[str, Any]:
    traits = event.get("traits")
    if traits is None:
        return {}
    if not isinstance(traits, Mapping):
        notes.append(Note(attribute="traits", reason=TRAITS_NOT_OBJECT))
        return {}
    return traits


def _engage_call(
    event: Mapping[str, Any], traits: Mapping[str, Any], forward: bool, notes: list[Note]
) -> _Engage | None:
    """The Engage audience or computed trait this call carries, if any.

    Found even when pass-through is off, so that the note can say why it was not sent.
    """
    context = event.get("context")
    personas = context.get("personas") if isinstance(context, Mapping) else None
    if not isinstance(personas, Mapping):
        return None
    key = personas.get("computation_key")
    computation_class = personas.get("computation_class")
    if not isinstance(key, str) or not key:
        return None
    if computation_class not in _ENGAGE_CLASSES:
        if forward:
            notes.append(
                Note(key, ENGAGE_UNKNOWN_CLASS.format(computation_class=computation_class))
            )
        return None
    if forward and key not in traits:
        notes.append(Note(key, ENGAGE_NO_VALUE))
    return _Engage(key=key, computation_class=computation_class)


def _walk(obj: Mapping[str, Any], prefix: tuple[str, ...], notes: list[Note]) -> Iterator[_Leaf]:
    """Every non-object value under obj, with its key path (objects are flattened)."""
    for key, value in obj.items():
        path = (*prefix, key)
        if type(value) in _NOT_MAPPINGS or not isinstance(value, Mapping):
            yield _Leaf(path, value)
        elif not value:
            notes.append(Note("_".join(path), EMPTY_OBJECT))
        elif len(path) == MAX_DEPTH:
            notes.append(Note("_".join(path), TOO_DEEP))
        else:
            yield from _walk(value, path, notes)


def _resolve_collisions(leaves: Iterator[_Leaf], notes: list[Note]) -> dict[str, _Leaf]:
    """One leaf per flattened name: the one with the fewest levels, then the smallest path.

    Independent of key order, which JSON does not give meaning to.
    """
    groups: dict[str, list[_Leaf]] = {}
    for leaf in leaves:
        groups.setdefault(leaf.name, []).append(leaf)
    resolved: dict[str, _Leaf] = {}
    for name, group in groups.items():
        if len(group) == 1:
            resolved[name] = group[0]
            continue
        winner = min(group, key=lambda leaf: (len(leaf.path), leaf.path))
        for loser in group:
            if loser is not winner:
                notes.append(Note(name, COLLISION.format(loser=loser.shown, winner=winner.shown)))
        resolved[name] = winner
    return resolved


def _inferred_type(value: Any, engage: _Engage) -> AttributeType | None:
    """The type of an Engage value that no row types: its own JSON type, no coercion.

    Audiences and journey steps are boolean in Talon.One, so they are checked as such.
    """
    if engage.computation_class in _MEMBERSHIP_CLASSES or isinstance(value, bool):
        return AttributeType.BOOLEAN
    if isinstance(value, int | float):
        return AttributeType.NUMBER
    if isinstance(value, str):
        return AttributeType.STRING
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return AttributeType.LIST_STRING
        if all(_is_number(item) for item in value):
            return AttributeType.LIST_NUMBER
    return None


def _coerce(value: Any, type_: AttributeType) -> tuple[Any, tuple[str, ...]]:
    """The value as type_, and remarks on assumptions made; raises _Uncoercible."""
    remarks: list[str] = []
    item_type = _LIST_ITEM_TYPE.get(type_)
    if item_type is None:
        result = _coerce_scalar(value, type_, remarks)
    else:
        result = _coerce_list(value, item_type, remarks)
    return result, tuple(dict.fromkeys(remarks)) if remarks else ()


def _coerce_list(value: Any, item_type: AttributeType, remarks: list[str]) -> list[Any]:
    # Whole list or nothing: Talon.One replaces the stored list, so a list
    # missing its bad items would silently delete values.
    if not isinstance(value, list):
        return [_coerce_scalar(value, item_type, remarks)]
    if any(isinstance(item, Mapping) for item in value):
        raise _Uncoercible(LIST_OF_OBJECTS)
    result = []
    for index, item in enumerate(value):
        try:
            result.append(_coerce_scalar(item, item_type, remarks))
        except _Uncoercible as exc:
            raise _Uncoercible(LIST_ITEM.format(index=index, detail=exc.detail)) from None
    return result


def _coerce_scalar(value: Any, type_: AttributeType, remarks: list[str]) -> Any:
    if type_ == AttributeType.TIME:
        text, assumed_utc = _to_time(value)
        if assumed_utc:
            remarks.append(ASSUMED_UTC)
        return text
    return _SCALAR_COERCERS[type_](value)


def _to_string(value: Any) -> str:
    # Numbers and booleans become their JSON spelling: lossless, and postal codes
    # or IDs often arrive as numbers.
    if isinstance(value, str):
        return _checked_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Uncoercible(NOT_FINITE)
        return repr(value)
    raise _Uncoercible(KIND_NOT_ACCEPTED.format(kind=_kind(value)))


def _to_location(value: Any) -> str:
    # Talon.One documents no location format, so only text the sender wrote is passed on.
    if isinstance(value, str):
        return _checked_text(value)
    raise _Uncoercible(KIND_NOT_ACCEPTED.format(kind=_kind(value)))


def _to_number(value: Any) -> int | float:
    if isinstance(value, str):
        value = _parse_number(value)
    if not _is_number(value):
        raise _Uncoercible(KIND_NOT_ACCEPTED.format(kind=_kind(value)))
    if isinstance(value, float) and not math.isfinite(value):
        raise _Uncoercible(NOT_FINITE)
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise _Uncoercible(UNSAFE_INTEGER)
    return value


def _parse_number(text: str) -> int | float:
    text = text.strip()
    match = _NUMBER_RE.fullmatch(text)
    if match is None:
        raise _Uncoercible(NOT_A_NUMBER)
    if match["fraction"] or match["exponent"]:
        return float(text)
    # 17 digits exceed MAX_SAFE_INTEGER; checked before int() so huge digit
    # strings never reach Python's int-from-string size limit.
    if len(text.lstrip("-")) > len(str(MAX_SAFE_INTEGER)):
        raise _Uncoercible(UNSAFE_INTEGER)
    return int(text)


def _to_boolean(value: Any) -> bool:
    # Numbers are refused: 1 may be a count as easily as a yes.
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise _Uncoercible(KIND_NOT_ACCEPTED.format(kind=_kind(value)))
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise _Uncoercible(NOT_A_BOOLEAN)
    return word == "true"


def _to_time(value: Any) -> tuple[str, bool]:
    """RFC 3339 in UTC ("Z"), and whether a missing offset was assumed to be UTC.

    Epochs are JSON numbers only: a digit string may be a date ("20240301").
    """
    if isinstance(value, str):
        return _from_iso(value.strip())
    if _is_number(value):
        return _from_epoch(_to_number(value)), False
    raise _Uncoercible(KIND_NOT_ACCEPTED.format(kind=_kind(value)))


def _from_epoch(number: int | float) -> str:
    try:
        if abs(number) >= EPOCH_MILLISECONDS_FROM:
            return _rfc3339(_EPOCH + timedelta(milliseconds=number))
        return _rfc3339(_EPOCH + timedelta(seconds=number))
    except OverflowError:
        raise _Uncoercible(TIME_OUT_OF_RANGE) from None


def _from_iso(text: str) -> tuple[str, bool]:
    match = _ISO_RE.fullmatch(text)
    if match is None:
        raise _Uncoercible(NOT_A_TIME)
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")  # datetime holds microseconds
    try:
        moment = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"] or 0),
            int(match["minute"] or 0),
            int(match["second"] or 0),
            int(fraction),
            tzinfo=_offset(match["offset"]),
        )
    except ValueError:
        raise _Uncoercible(NOT_A_TIME) from None
    try:
        text = _rfc3339(moment)
    except OverflowError:
        raise _Uncoercible(TIME_OUT_OF_RANGE) from None
    return text, match["hour"] is not None and match["offset"] is None


def _offset(text: str | None) -> timezone:
    """The UTC offset written; none (a date, or a naive date-time) means UTC."""
    if text is None or text in ("Z", "z"):
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise _Uncoercible(NOT_A_TIME)
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def _rfc3339(moment: datetime) -> str:
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    if moment.microsecond:
        text = text.rstrip("0")
    return text + "Z"


def _checked_text(text: str) -> str:
    # Never truncated: a shortened e-mail address or ID would be wrong data.
    if len(text) > MAX_STRING_LENGTH:
        raise _Uncoercible(STRING_TOO_LONG)
    if _UNSTORABLE_RE.search(text):
        raise _Uncoercible(UNSTORABLE_TEXT)
    return text


_SCALAR_COERCERS: dict[AttributeType, Callable[[Any], Any]] = {
    AttributeType.STRING: _to_string,
    AttributeType.LOCATION: _to_location,
    AttributeType.NUMBER: _to_number,
    AttributeType.BOOLEAN: _to_boolean,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"
