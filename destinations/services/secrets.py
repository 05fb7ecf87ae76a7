"""Secrets: which Segment secrets a destination accepts, their rotation, and the
re-encryption of every stored secret with the current encryption key."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.apps import apps
from django.db import transaction

from destinations.fields import EncryptedTextField
from destinations.models import Destination


def accepted_secrets(destination: Destination, now: datetime) -> list[str]:
    """The current shared secret and, until its rotation window ends, the previous one."""
    secrets = [destination.shared_secret] if destination.shared_secret else []
    if rotation_ends_at(destination, now) is not None:
        secrets.append(destination.previous_shared_secret)
    return secrets


def rotation_ends_at(destination: Destination, now: datetime) -> datetime | None:
    """Until when the previous secret is accepted; None when it is not (any more).
    A previous secret without an end is never accepted: rotations always end."""
    expires_at = destination.previous_secret_expires_at
    if destination.previous_shared_secret and expires_at is not None and now < expires_at:
        return expires_at
    return None


def accepts_unsigned(destination: Destination) -> bool:
    return destination.accept_unsigned and not destination.shared_secret


def set_shared_secret(
    destination: Destination, secret: str, *, keep_previous_for: timedelta, now: datetime
) -> None:
    """Replace the shared secret (unsaved). The replaced one stays accepted for
    keep_previous_for, so events Segment signed before its settings changed, and
    its retries, still get in; zero ends any rotation at once."""
    replaced = destination.shared_secret
    if not secret or secret == replaced:
        return
    destination.shared_secret = secret
    if replaced and keep_previous_for > timedelta(0):
        destination.previous_shared_secret = replaced
        destination.previous_secret_expires_at = now + keep_previous_for
    else:
        end_rotation(destination)


def end_rotation(destination: Destination) -> None:
    """Stop accepting the previous secret (unsaved), and forget it."""
    destination.previous_shared_secret = ""
    destination.previous_secret_expires_at = None


def clear_shared_secret(destination: Destination) -> None:
    """Remove the shared secret and any previous one (unsaved): for a destination
    that accepts unsigned events."""
    destination.shared_secret = ""
    end_rotation(destination)


@transaction.atomic
def reencrypt_all() -> int:
    """Re-encrypt every stored encrypted value with the first of FIELD_ENCRYPTION_KEYS.

    Reading decrypts with any listed key, writing encrypts with the first (what
    MultiFernet.rotate does), so afterwards the other keys can be removed.
    Returns how many values were re-encrypted.
    """
    count = 0
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if not names:
            continue
        for row in model._default_manager.select_for_update().only("pk", *names):
            values = {name: getattr(row, name) for name in names if getattr(row, name)}
            if values:
                model._default_manager.filter(pk=row.pk).update(**values)
                count += len(values)
    return count
