"""Writes to destination settings (the CLI and provisioning use these)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from destinations.models import AttributeMapping, Destination


@transaction.atomic
def upsert_destination(
    *,
    slug: str,
    name: str,
    base_url: str,
    api_key: str,
    shared_secret: str,
    run_rule_engine: bool = False,
    enabled: bool = True,
    attributes: list[tuple[str, str]] | None = None,
) -> tuple[Destination, bool]:
    """Create or update by slug; given attributes replace the current rows.

    Raises ValidationError (nothing written) when a value is invalid.
    """
    if attributes is not None:
        names = [name.lower() for name, _ in attributes]
        if len(set(names)) != len(names):
            raise ValidationError(
                "An attribute is listed twice (names may not differ only in case)."
            )
    destination = Destination.objects.filter(slug=slug).first() or Destination(slug=slug)
    created = destination.pk is None
    destination.name = name
    destination.base_url = base_url
    destination.api_key = api_key
    destination.shared_secret = shared_secret
    destination.run_rule_engine = run_rule_engine
    destination.enabled = enabled
    destination.full_clean()
    destination.save()
    if attributes is not None:
        destination.attributes.all().delete()
        rows = [AttributeMapping(destination=destination, name=n, type=t) for n, t in attributes]
        for row in rows:
            row.full_clean()
        AttributeMapping.objects.bulk_create(rows)
    return destination, created
