"""A text field stored encrypted with Fernet (cryptography's MultiFernet), and
the rule every API key and shared secret follows.

Keys come from settings.FIELD_ENCRYPTION_KEYS: the first encrypts, all decrypt,
so keys rotate by putting a new one first and re-saving rows (`rotate_secrets`).
"""

import re
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models

# Printable ASCII without spaces: what an HTTP header carries unchanged. A pasted
# zero-width space or line break would otherwise fail at delivery time.
_SECRET = re.compile(r"[\x21-\x7e]+")
PRINTABLE_ASCII_RULE = "Use printable ASCII characters only, without spaces or line breaks."


def is_valid_secret(value: str) -> bool:
    return _SECRET.fullmatch(value) is not None


def validate_secret(value: str) -> None:
    # The message never quotes the value: it is a secret.
    if not is_valid_secret(value):
        raise ValidationError(PRINTABLE_ASCII_RULE, code="invalid_secret")


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must hold url-safe base64 Fernet keys of 32 bytes."
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # Never echo the token: name the cause an operator can fix.
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: none of FIELD_ENCRYPTION_KEYS matches it."
        ) from None


class EncryptedTextField(models.TextField):
    """Holds plaintext in Python, Fernet ciphertext in the database."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return encrypt(value) if value else ""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str:
        return decrypt(value) if value else ""
