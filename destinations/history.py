"""The value history of settings: who changed which attribute row or setting,
from what to what (django-auditlog). Secrets are recorded as changed, never
with their values; Operators read it in the admin (Audit log entries)."""

from auditlog.registry import auditlog

from destinations.models import (
    AttributeMapping,
    Destination,
    EventMapping,
    EventProperty,
    TalonAudience,
)

SECRET_FIELDS = [
    "api_key",
    "management_api_key",
    "shared_secret",
    "previous_shared_secret",
    "write_key_digest",
]
HIDDEN = "[secret]"


def hide(value: str) -> str:
    """Not half of it, as auditlog's default mask keeps: nothing of it."""
    return HIDDEN if value else ""


def register() -> None:
    auditlog.register(
        Destination,
        mask_fields=SECRET_FIELDS,
        mask_callable="destinations.history.hide",
        # The catalog read is not a setting anyone changed.
        exclude_fields=["updated_at", "catalog_fetched_at", "catalog_error"],
    )
    for model in (AttributeMapping, EventMapping, EventProperty, TalonAudience):
        auditlog.register(model)
