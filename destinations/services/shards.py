"""Delivery shards: a destination's profiles split by a hash of the integrationId,
each shard with a flusher (and a lease) of its own, so N workers flush one
destination in parallel while a profile still never has two requests in flight
(all its rows are in one shard)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import F, Func, IntegerField, Q, QuerySet
from django.db.models.functions import Mod

from destinations.models import InboundEvent


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def events(self, rows: QuerySet[InboundEvent]) -> QuerySet[InboundEvent]:
        """The rows of this shard: those whose integrationId hashes to its index."""
        if self.count == 1:
            return rows
        return rows.alias(
            shard=Mod(
                Func(F("user_id"), function="hashtext", output_field=IntegerField()).bitand(
                    0x7FFFFFFF
                ),
                self.count,
                output_field=IntegerField(),
            )
        ).filter(Q(shard=self.index))


WHOLE = Shard(0, 1)


def shard_count() -> int:
    """DELIVERY_SHARDS on PostgreSQL; one elsewhere (SQLite has one writer anyway,
    and no hash function to split by)."""
    return settings.DELIVERY_SHARDS if connection.vendor == "postgresql" else 1
