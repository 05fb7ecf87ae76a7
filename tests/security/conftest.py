from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from destinations.models import Destination

# Distinctive values, so that a leak is found by a plain substring search.
API_KEY = "tk-integration-key-4f9a1c7e"
SECRET = "seg-shared-secret-8d2b6e0f"
OLD_SECRET = "seg-old-secret-31c5a9d4"
BASE_URL = "https://acme-corp.europe-west1.talon.one"
PASSWORD = "a-long-passphrase-1"

roles_migration = importlib.import_module("destinations.migrations.0003_roles")


@pytest.fixture
def destination(db: None) -> Destination:
    return Destination.objects.create(
        name="Acme", slug="acme", base_url=BASE_URL, api_key=API_KEY, shared_secret=SECRET
    )


# The migrations that give the roles their permissions, in order.
ROLE_GRANTS = [
    roles_migration.ROLES,
    *(
        importlib.import_module(f"destinations.migrations.{name}").GRANTS
        for name in (
            "0008_refused_attribute_roles",
            "0010_kind_roles",
            "0012_history_role",
            "0014_attribute_catalog",
        )
    ),
]


@pytest.fixture
def roles(db: None) -> None:
    """The groups that the roles migrations created. Transactional tests (e2e)
    flush every table when they end, so put back what a flush removed."""
    for grants in ROLE_GRANTS:
        for name, permissions in grants.items():
            group, _ = Group.objects.get_or_create(name=name)
            group.permissions.add(
                *(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                    for app_label, codename in permissions
                )
            )


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, *groups: str, **fields: Any) -> User:
        user = User.objects.create_user(username, password=PASSWORD, is_staff=True, **fields)
        user.groups.set(Group.objects.filter(name__in=groups))
        return user

    return make


@pytest.fixture
def marketer(roles: None, make_user: Callable[..., User]) -> User:
    return make_user("mia", "Marketer")


@pytest.fixture
def operator(roles: None, make_user: Callable[..., User]) -> User:
    return make_user("otto", "Operator")


@pytest.fixture
def superuser(make_user: Callable[..., User]) -> User:
    return make_user("root", is_superuser=True)


@pytest.fixture
def login(client: Client) -> Callable[[User], Client]:
    def as_user(user: User) -> Client:
        client.force_login(user)
        return client

    return as_user


def messages_shown(response: Any) -> list[tuple[int, str]]:
    """The admin's messages on a page, as (level, text)."""
    return [(message.level, message.message) for message in response.context["messages"]]


def change_form_data(response: Any) -> dict[str, Any]:
    """The POST data of an admin change page as rendered (form, inlines, management forms)."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data: dict[str, Any] = {}
    for form in forms:
        for field in form:
            value = field.value()
            if value is None or value is False:
                continue
            data[field.html_name] = "on" if value is True else value
    return data
