"""manage.py create_user: people get an admin account in one role, with staff
status (the admin lets in staff only), and a password nobody else chose or saw."""

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client

from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def typed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the person types at getpass's prompts, in order (getpass reads the
    terminal itself, not stdin)."""
    answers: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: answers.pop(0))
    return answers


def create_user(*args: str, stdin: io.StringIO | None = None) -> str:
    out = io.StringIO()
    call_command("create_user", *args, stdin=stdin or io.StringIO(), stdout=out)
    return out.getvalue()


def can_open_the_admin(user: User) -> bool:
    client = Client()
    client.force_login(user)
    return client.get("/admin/").status_code == 200


def test_without_a_terminal_a_strong_password_is_generated_and_printed_once(roles):
    out = create_user("mia", "--role", "marketer", "--email", "mia@example.com")

    user = User.objects.get(username="mia")
    password = out.split("Password (shown only now): ")[1].strip()
    assert len(password) >= 24
    assert out.count(password) == 1
    assert user.check_password(password)
    assert (user.is_staff, user.is_superuser, user.email) == (True, False, "mia@example.com")
    assert list(user.groups.values_list("name", flat=True)) == ["Marketer"]
    assert out.startswith("Created mia: staff, in the group Marketer.")
    assert can_open_the_admin(user)
    assert not user.has_perm("destinations.manage_connection")


def test_generated_passwords_differ(roles):
    first = create_user("a", "--role", "marketer").split(": ")[-1].strip()
    second = create_user("b", "--role", "marketer").split(": ")[-1].strip()

    assert first != second


def test_an_operator_manages_the_connection(roles):
    create_user("otto", "--role", "operator", stdin=io.StringIO(f"{PASSWORD}\n"))

    user = User.objects.get(username="otto")
    assert list(user.groups.values_list("name", flat=True)) == ["Operator"]
    assert user.has_perm("destinations.manage_connection")
    assert can_open_the_admin(user)


def test_password_stdin_reads_the_first_line_and_prints_no_password(roles):
    out = create_user(
        "otto", "--role", "operator", "--password-stdin", stdin=io.StringIO(f"{PASSWORD}\nrest\n")
    )

    assert User.objects.get(username="otto").check_password(PASSWORD)
    assert "Password" not in out
    assert PASSWORD not in out


@pytest.mark.parametrize(
    ("line", "why"),
    [("\n", "The password is empty"), ("password\n", "This password is too common")],
)
def test_a_refused_password_from_stdin_creates_nobody(roles, line, why):
    with pytest.raises(CommandError, match=why):
        create_user("otto", "--role", "operator", "--password-stdin", stdin=io.StringIO(line))

    assert not User.objects.exists()


def test_a_terminal_is_asked_twice(roles, typed):
    typed.extend([PASSWORD, PASSWORD])

    out = create_user("mia", "--role", "marketer", stdin=Terminal())

    assert User.objects.get(username="mia").check_password(PASSWORD)
    assert typed == []
    assert PASSWORD not in out


def test_two_different_answers_create_nobody(roles, typed):
    typed.extend([PASSWORD, PASSWORD + "x"])

    with pytest.raises(CommandError, match="The two passwords differ; nothing was created"):
        create_user("mia", "--role", "marketer", stdin=Terminal())

    assert not User.objects.exists()


def test_an_existing_user_is_refused_before_any_password_is_asked(roles, make_user, typed):
    existing = make_user("mia")

    with pytest.raises(CommandError, match="A user named 'mia' already exists"):
        create_user("mia", "--role", "operator", stdin=Terminal())

    existing.refresh_from_db()
    assert not existing.groups.exists()
    assert existing.check_password(PASSWORD)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["mia", "--role", "marketer", "--email", "not-an-email"], "Enter a valid email address."),
        (["mia lee", "--role", "marketer"], "Enter a valid username."),
    ],
)
def test_invalid_names_and_emails_create_nobody(roles, args, why):
    with pytest.raises(CommandError, match=why):
        create_user(*args)

    assert not User.objects.exists()


def test_only_the_two_roles_exist(roles):
    with pytest.raises(CommandError, match="invalid choice: 'admin'"):
        create_user("mia", "--role", "admin")


def test_without_the_roles_migrations_it_says_to_migrate(roles):
    Group.objects.filter(name="Marketer").delete()

    with pytest.raises(CommandError, match="The group Marketer does not exist: run python manage"):
        create_user("mia", "--role", "marketer")

    assert not User.objects.exists()
