"""Writes to destination settings (the CLI and provisioning use these)."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from destinations.models import AttributeMapping, Destination
from destinations.services import refusals, secrets, tracking

DEFAULT_ROTATION = timedelta(hours=24)


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
    keep_previous_secret_for: timedelta = DEFAULT_ROTATION,
    accept_first_event_signature: bool = False,
    write_key: str | None = None,
) -> tuple[Destination, bool]:
    """Create or update by slug; given attributes replace the current rows.

    A changed shared secret is rotated: the replaced one stays accepted for
    keep_previous_secret_for (Segment's settings change after ours, and it
    retries signed events for hours). Raises ValidationError (nothing written)
    when a value is invalid.
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
    secrets.set_shared_secret(
        destination, shared_secret, keep_previous_for=keep_previous_secret_for, now=timezone.now()
    )
    destination.run_rule_engine = run_rule_engine
    destination.enabled = enabled
    destination.accept_first_event_signature = accept_first_event_signature
    if write_key:
        try:
            destination.write_key_digest = tracking.checked_digest(destination, write_key)
        except tracking.InvalidWriteKey as exc:
            raise ValidationError(str(exc)) from None
    destination.full_clean()
    destination.save()
    if attributes is not None:
        destination.attributes.all().delete()
        rows = [AttributeMapping(destination=destination, name=n, type=t) for n, t in attributes]
        for row in rows:
            row.full_clean()
        AttributeMapping.objects.bulk_create(rows)
        refusals.retry_now([destination.pk])
    return destination, created
