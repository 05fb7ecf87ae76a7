"""Talon.One's attribute catalog: read with the destination's Management API key
into TalonAttribute rows, which the destination page checks the attribute rows
against (destinations/selectors/catalog.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from destinations.models import AttributeMapping, Destination, TalonAttribute
from destinations.services.mapping import AttributeType
from destinations.services.refusals import retry_now
from destinations.talon_one import MANAGEMENT_PAGE_SIZE, CatalogError, ManagementClient

logger = logging.getLogger(__name__)

NO_KEY = "No Management API key: add one to check the attribute rows against Talon.One."
_NAME_LIMIT = TalonAttribute._meta.get_field("name").max_length
_TYPE_LIMIT = TalonAttribute._meta.get_field("type").max_length


class RowExists(Exception):
    """The destination forwards an attribute of this name already (in any case);
    the message is the row's name."""


def refresh(destination: Destination, *, page_size: int = MANAGEMENT_PAGE_SIZE) -> str:
    """Read the catalog and replace the destination's TalonAttribute rows with it.

    Returns "" on success, else why it failed; either way it is recorded on the
    destination (catalog_error; catalog_fetched_at on success only, so the rows
    kept from the last good read still say when they were read)."""
    if not destination.management_api_key:
        error = NO_KEY
    else:
        client = ManagementClient(
            destination.base_url, destination.management_api_key, page_size=page_size
        )
        try:
            attributes = client.customer_profile_attributes()
        except CatalogError as exc:
            error = str(exc)
        else:
            _store(destination, attributes)
            return ""
    logger.warning("Attribute catalog of %s not read: %s", destination.slug, error)
    Destination.objects.filter(pk=destination.pk).update(catalog_error=error)
    destination.catalog_error = error
    return error


def _store(destination: Destination, attributes: Iterable) -> None:
    rows: dict[str, TalonAttribute] = {}
    for attribute in attributes:
        # A name or type longer than the columns is no attribute a row could match.
        if len(attribute.name) <= _NAME_LIMIT and len(attribute.type) <= _TYPE_LIMIT:
            rows.setdefault(
                attribute.name,
                TalonAttribute(
                    destination=destination,
                    name=attribute.name,
                    type=attribute.type,
                    title=attribute.title[:255],
                    talon_id=attribute.talon_id,
                ),
            )
    now = timezone.now()
    with transaction.atomic():
        TalonAttribute.objects.filter(destination=destination).delete()
        TalonAttribute.objects.bulk_create(rows.values())
        Destination.objects.filter(pk=destination.pk).update(
            catalog_fetched_at=now, catalog_error=""
        )
    destination.catalog_fetched_at, destination.catalog_error = now, ""


def refresh_all() -> dict[str, str]:
    """Every enabled destination with a Management API key (the daily beat task),
    one after the other: each read keeps to Talon.One's rate. Slug → error."""
    destinations = Destination.objects.filter(enabled=True).exclude(management_api_key="")
    return {destination.slug: refresh(destination) for destination in destinations}


def add_row(destination: Destination, name: str, type_: str) -> AttributeMapping:
    """Forward one more attribute (a suggestion taken from the destination page).
    Raises RowExists, or ValueError for a type or name a row cannot have."""
    if type_ not in AttributeType.__members__.values():
        raise ValueError(f"{type_} is not a type an attribute row can have.")
    if (existing := destination.attributes.filter(name__iexact=name).first()) is not None:
        raise RowExists(existing.name)
    row = AttributeMapping(destination=destination, name=name, type=type_)
    row.full_clean()
    row.save()
    # The new row may be what Talon.One refused before: ask it again.
    retry_now([destination.pk])
    return row
