"""Admin accounts in the roles the migrations create (docs/security.md)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

# --role on the command line → the group of the roles migrations.
ROLES = {"marketer": "Marketer", "operator": "Operator"}


def check_new_username(username: str) -> None:
    """Raises ValidationError when the name is taken: asked before a password is."""
    if get_user_model().objects.filter(username=username).exists():
        raise ValidationError(
            f"A user named '{username}' already exists; change them in the admin "
            "(Authentication and Authorization → Users)."
        )


def generate_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 random bits


@transaction.atomic
def create_user(*, username: str, role: str, password: str, email: str = "") -> AbstractUser:
    """A staff user (the admin lets in staff only) in the role's group, nothing
    more: not a superuser. Raises ValidationError, with nothing written, for a
    taken or invalid name, an invalid email, or a password the validators refuse."""
    check_new_username(username)
    group = Group.objects.filter(name=ROLES[role]).first()
    if group is None:
        raise ValidationError(
            f"The group {ROLES[role]} does not exist: run python manage.py migrate first."
        )
    user = get_user_model()(username=username, email=email, is_staff=True)
    user.full_clean(exclude=["password"])
    validate_password(password, user)
    user.set_password(password)
    user.save()
    user.groups.add(group)
    return user
