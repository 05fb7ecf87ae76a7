"""Reads."""

from destinations.models import Destination


def enabled_destination(slug: str) -> Destination | None:
    return Destination.objects.filter(slug=slug, enabled=True).first()
