"""No API key or shared secret in logs, audit rows, task arguments, error pages or the admin."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from axes.models import AccessAttempt, AccessLog
from django.contrib.admin.models import LogEntry
from django.test import override_settings
from django.views.debug import ExceptionReporter

from destinations.admin import DestinationAdmin
from destinations.models import AttributeMapping, DeliveryAttempt, Destination, InboundEvent
from destinations.services import delivery, nudge
from tests.conftest import CATALOGUE, identify, sign
from tests.security.conftest import API_KEY, OLD_SECRET, SECRET, change_form_data

pytestmark = pytest.mark.django_db

WRONG_API_KEY = "tk-revoked-key-77e0b3a1"
ALL_SECRETS = (API_KEY, SECRET, OLD_SECRET, WRONG_API_KEY)


def assert_no_secret(text: str, where: str) -> None:
    for value in ALL_SECRETS:
        assert value not in text, f"{value!r} found in {where}"


@pytest.fixture
def sent_tasks(monkeypatch) -> list[tuple]:
    sent: list[tuple] = []
    monkeypatch.setattr(
        nudge.celery_app, "send_task", lambda *args, **kwargs: sent.append((args, kwargs))
    )
    return sent


@pytest.fixture
def live_destinations(sandbox, sandbox_server):
    """One destination whose key Talon.One (the sandbox) accepts, one whose key it refuses."""
    sandbox.reset(attributes=CATALOGUE, api_keys=[API_KEY])
    made = []
    for slug, key in (("acme", API_KEY), ("revoked", WRONG_API_KEY)):
        destination = Destination.objects.create(
            name=slug.title(),
            slug=slug,
            base_url=sandbox_server.url,
            api_key=key,
            shared_secret=SECRET,
            previous_shared_secret=OLD_SECRET,
        )
        AttributeMapping.objects.create(destination=destination, name="plan", type="string")
        made.append(destination)
    return made


def test_ingest_and_delivery_leave_no_secret_anywhere(
    client, live_destinations, sent_tasks, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    headers = [
        lambda raw: {"X-Signature": sign(raw, SECRET)},
        lambda raw: {"Authorization": f"Bearer {SECRET}"},
        lambda raw: {"Authorization": "Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()},
        lambda raw: {"X-Signature": sign(raw, OLD_SECRET)},  # expired: refused
        lambda raw: {"Authorization": f"Bearer {SECRET}x"},  # wrong: refused
    ]
    with django_capture_on_commit_callbacks(execute=True):
        for slug in ("acme", "revoked"):
            for number, make_headers in enumerate(headers):
                raw = json.dumps(identify(f"user-{number}", f"m-{number}")).encode()
                client.post(
                    f"/api/v1/segment/{slug}/",
                    raw,
                    content_type="application/json",
                    headers=make_headers(raw),
                )
            client.post(
                f"/api/v1/segment/{slug}/",
                b"{not json",
                content_type="application/json",
                headers={"Authorization": f"Bearer {SECRET}"},
            )
    for destination in live_destinations:
        delivery.flush(destination.pk)

    statuses = dict(InboundEvent.objects.values_list("destination__slug", "status").distinct())
    assert statuses == {"acme": "delivered", "revoked": "failed"}  # both paths ran
    assert sent_tasks  # flushes were queued
    assert_no_secret(repr(sent_tasks), "task arguments")
    for record in caplog.records:
        assert_no_secret(record.getMessage(), f"log record {record.name}")
        assert_no_secret(repr(record.args), f"log record arguments {record.name}")
    assert_no_secret(caplog.text, "formatted log output")
    for model in (InboundEvent, DeliveryAttempt, LogEntry, AccessAttempt, AccessLog):
        assert_no_secret(repr(list(model.objects.values())), model.__name__)


@pytest.fixture
def failing_ingest(monkeypatch, client):
    def fail(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("destinations.services.ingest.ingest", fail)
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_error_pages_show_no_secret(failing_ingest, destination, debug, caplog):
    raw = json.dumps(identify()).encode()
    with override_settings(DEBUG=debug):
        response = failing_ingest.post(
            "/api/v1/segment/acme/",
            raw,
            content_type="application/json",
            headers={"Authorization": f"Bearer {SECRET}"},
        )

    assert response.status_code == 500
    assert_no_secret(response.content.decode(), "the error page")
    assert_no_secret(caplog.text, "the error log")


def error_report(caplog) -> str:
    """What the production error report (e.g. Django's mail to ADMINS) holds for the
    last request error: its traceback with every frame's variables, and the request."""
    [record] = [r for r in caplog.records if r.name == "django.request" and r.exc_info]
    reporter = ExceptionReporter(record.request, *record.exc_info, is_email=True)
    return reporter.get_traceback_html() + reporter.get_traceback_text()


def test_an_error_report_from_inside_authentication_hides_its_variables(
    monkeypatch, client, destination, caplog
):
    def fail(*args):
        raise RuntimeError("comparison failed")

    monkeypatch.setattr("destinations.services.ingest.hmac.compare_digest", fail)
    client.raise_request_exception = False

    response = client.post(
        "/api/v1/segment/acme/",
        b"{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {SECRET}"},
    )

    assert response.status_code == 500
    report = error_report(caplog)
    assert "comparison failed" in report
    assert "accepted" in report  # the frame is there, its values are not
    assert_no_secret(report, "the error report")


def test_an_admin_error_report_hides_the_posted_secrets(
    monkeypatch, login, superuser, destination, caplog
):
    def fail(*args):
        raise RuntimeError("could not save")

    monkeypatch.setattr(DestinationAdmin, "save_model", fail)
    client = login(superuser)
    client.raise_request_exception = False
    url = f"/admin/destinations/destination/{destination.pk}/change/"
    data = change_form_data(client.get(url))
    data.update({"api_key": WRONG_API_KEY, "shared_secret": OLD_SECRET, "_save": "Save"})

    response = client.post(url, data)

    assert response.status_code == 500
    report = error_report(caplog)
    assert "could not save" in report
    assert "shared_secret" in report  # the POST data is there, the values are not
    assert_no_secret(report, "the admin's error report")


def test_admin_pages_never_show_secrets(login, superuser, destination):
    client = login(superuser)
    destination.previous_shared_secret = OLD_SECRET
    destination.save()
    pages = [
        "/admin/destinations/destination/",
        f"/admin/destinations/destination/{destination.pk}/change/",
        f"/admin/destinations/destination/{destination.pk}/history/",
        "/admin/admin/logentry/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200
        assert_no_secret(response.content.decode(), page)
