"""Secrets are stored encrypted, and the encryption key can be rotated."""

import io
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from destinations.models import Destination
from destinations.services import secrets
from tests.security.conftest import API_KEY, OLD_SECRET, SECRET

pytestmark = pytest.mark.django_db

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
ENCRYPTED = ("api_key", "shared_secret", "previous_shared_secret")


def stored(pk: int) -> dict[str, str]:
    """The columns as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(ENCRYPTED)} FROM destinations_destination WHERE id = %s",  # noqa: S608
            [pk],
        )
        return dict(zip(ENCRYPTED, cursor.fetchone(), strict=True))


def make_rotating_destination() -> Destination:
    destination = Destination(
        name="Acme",
        slug="acme",
        base_url="https://acme.talon.one",
        api_key=API_KEY,
        shared_secret=OLD_SECRET,
    )
    secrets.set_shared_secret(
        destination, SECRET, keep_previous_for=timedelta(hours=1), now=timezone.now()
    )
    destination.save()
    return destination


def test_secrets_are_stored_as_fernet_tokens():
    destination = make_rotating_destination()

    columns = stored(destination.pk)

    for name, plaintext in zip(ENCRYPTED, (API_KEY, SECRET, OLD_SECRET), strict=True):
        assert plaintext not in columns[name]
        assert columns[name].startswith("gAAAAA")  # Fernet's version byte, base64
    assert Destination.objects.get().previous_shared_secret == OLD_SECRET


def test_rotate_secrets_reencrypts_with_the_first_key_so_the_old_one_can_go():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_A]):
        destination = make_rotating_destination()
    before = stored(destination.pk)

    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_B, KEY_A]):
        call_command("rotate_secrets", stdout=(out := io.StringIO()))

    assert "Re-encrypted 3 value(s)" in out.getvalue()
    after = stored(destination.pk)
    for name in ENCRYPTED:
        assert after[name] != before[name]
        Fernet(KEY_B).decrypt(after[name].encode())  # readable with the new key alone
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_B]):
        reloaded = Destination.objects.get()
    assert (reloaded.api_key, reloaded.shared_secret, reloaded.previous_shared_secret) == (
        API_KEY,
        SECRET,
        OLD_SECRET,
    )


def test_removing_a_key_before_rotating_makes_secrets_unreadable_without_showing_them():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_A]):
        destination = make_rotating_destination()
    token = stored(destination.pk)["api_key"]

    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_B]):
        with pytest.raises(ImproperlyConfigured) as error:
            Destination.objects.get()
        with pytest.raises(CommandError, match="none of FIELD_ENCRYPTION_KEYS matches"):
            call_command("rotate_secrets")

    assert token not in str(error.value)
    assert API_KEY not in str(error.value)


def test_empty_secrets_stay_empty():
    destination = Destination.objects.create(
        name="Open", slug="open", base_url="https://open.talon.one", api_key=API_KEY
    )
    call_command("rotate_secrets", stdout=io.StringIO())
    assert stored(destination.pk)["shared_secret"] == ""
