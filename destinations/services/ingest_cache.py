"""What an ingest request needs of a destination, kept a few seconds per process.

Without it every request reads the destination (decrypting its secrets), its
attribute rows and its track-event mappings: four statements, more than the
insert itself. The process that changes a destination or its mapping rows
forgets what it kept at once (signals, connected in apps.py); the others keep it
at most INGEST_CONFIG_CACHE_SECONDS (0: not kept). So disabling a destination,
replacing its secret or editing its mappings takes effect everywhere within
that time. A rotation's end is not cached: the entry keeps the previous secret
and its expiry, and each request decides whether it is still accepted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction

from destinations import selectors
from destinations.models import Destination
from destinations.services.mapping import AttributeRule, AttributeType, MappingConfig

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class TrackRule:
    """A Segment track event forwarded as a Talon.One custom event."""

    talon_event_type: str
    properties: tuple[AttributeRule, ...]


@dataclass(frozen=True)
class IngestConfig:
    mapping: MappingConfig
    events: dict[str, TrackRule]
    audiences_as_memberships: bool


def load_config(destination: Destination) -> IngestConfig:
    """The destination's mapping rules, read now (three statements)."""
    mode = destination.engage_audiences
    modes = Destination.EngageAudiences
    rules = tuple(
        AttributeRule(name=row.name, type=AttributeType(row.type))
        for row in destination.attributes.all()
    )
    events = {
        mapping.segment_event: TrackRule(
            talon_event_type=mapping.talon_event_type,
            properties=tuple(
                AttributeRule(name=p.name, type=AttributeType(p.type))
                for p in mapping.properties.all()
            ),
        )
        for mapping in destination.event_mappings.prefetch_related("properties")
    }
    return IngestConfig(
        mapping=MappingConfig(
            rules=rules,
            forward_engage=destination.forward_engage,
            audiences_as_attributes=mode in (modes.ATTRIBUTE, modes.BOTH),
        ),
        events=events,
        audiences_as_memberships=mode in (modes.AUDIENCE, modes.BOTH),
    )


class _Cache:
    def __init__(self) -> None:
        self.destinations: dict[str, tuple[float, Destination | None]] = {}
        self.configs: dict[int, tuple[float, IngestConfig]] = {}

    def get(self, table: dict[K, tuple[float, V]], key: K, load: Callable[[], V]) -> V:
        now = time.monotonic()
        entry = table.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        seconds = settings.INGEST_CONFIG_CACHE_SECONDS
        if value is not None and seconds > 0:
            table[key] = (now + seconds, value)
        return value


_cache = _Cache()


def enabled_destination(slug: str) -> Destination | None:
    """The enabled destination of the slug. Unknown and disabled slugs are not
    kept: each costs its read, as before."""
    return _cache.get(_cache.destinations, slug, lambda: selectors.enabled_destination(slug))


def config(destination: Destination) -> IngestConfig:
    return _cache.get(_cache.configs, destination.pk, lambda: load_config(destination))


def clear() -> None:
    # A new cache, not an emptied one: a value read before the clear (in another
    # thread) is put into the old cache's table, which nobody reads any more.
    global _cache
    _cache = _Cache()


def forget(using: str | None = None, **kwargs: Any) -> None:
    """A destination or one of its mapping rows changed (or is gone): read them
    again. Now, and once more after the commit: a request of another thread in
    between reads the rows as they were before it."""
    clear()
    transaction.on_commit(clear, using=using)
