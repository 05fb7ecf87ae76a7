from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from destinations.services import secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS, "
        "so that the other keys can then be removed (docs/security.md)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = secrets.reencrypt_all()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Re-encrypted {count} value(s) with the first key. Keys after the first "
            "can now be removed from FIELD_ENCRYPTION_KEYS."
        )
