"""Admin logins are throttled per user name (django-axes)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings

from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def log_in(client, password, username="otto", address="203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture
def user(make_user):
    return make_user("otto", is_superuser=True)


def test_settings_lock_after_five_failures_for_fifteen_minutes():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username"]


def test_the_right_password_works_before_the_limit(client, user):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "wrong").status_code == 200  # the form again, with an error

    assert log_in(client, PASSWORD).status_code == 302
    assert not AccessAttempt.objects.exists()  # a success resets the count


def test_after_the_limit_even_the_right_password_is_refused_until_the_cool_off_ends(client, user):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")

    locked = log_in(client, PASSWORD)

    assert locked.status_code == 429
    assert "too many login attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session

    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME
    )
    assert log_in(client, PASSWORD).status_code == 302


def test_spreading_guesses_over_addresses_does_not_help(client, user):
    for number in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong", address=f"198.51.100.{number}")

    assert log_in(client, PASSWORD, address="192.0.2.1").status_code == 429


def test_a_locked_user_name_does_not_lock_others(client, user, make_user):
    make_user("mia", is_superuser=True)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")

    assert log_in(client, PASSWORD, username="mia").status_code == 302


def test_the_password_is_not_recorded(client, user):
    log_in(client, "my-secret-guess")

    attempt = AccessAttempt.objects.get()
    assert "my-secret-guess" not in attempt.post_data
