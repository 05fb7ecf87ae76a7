"""What an ingest request needs of a destination is kept a few seconds per web
process (services/ingest_cache.py): a change made in this process is seen by its
next request; one made elsewhere (here: an update() that sends no signal) once
INGEST_CONFIG_CACHE_SECONDS have passed."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from destinations.models import (
    AttributeMapping,
    Destination,
    EventMapping,
    EventProperty,
    InboundEvent,
)
from destinations.services import ingest_cache, secrets
from tests.conftest import identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

TTL = 5


@pytest.fixture(autouse=True)
def clock(settings, monkeypatch) -> list[float]:
    """The cache's own clock, moved by hand."""
    settings.INGEST_CONFIG_CACHE_SECONDS = TTL
    now = [1000.0]
    monkeypatch.setattr(ingest_cache, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


@pytest.fixture
def destination(make_destination):
    return make_destination(attributes=["email"])


def track(message_id: str) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "messageId": message_id,
        "properties": {"total": 5},
    }


def attributes(message_id: str) -> dict:
    return InboundEvent.objects.get(message_id=message_id).attributes


def test_a_warm_request_reads_nothing_of_the_destination(destination, post_events):
    post_events("acme", identify(message_id="m1"))

    with CaptureQueriesContext(connection) as queries:
        response = post_events("acme", identify(message_id="m2"))

    assert response.status_code == 200
    read = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert not any("destinations_destination" in sql for sql in read)
    assert not any("mapping" in sql or "eventproperty" in sql for sql in read)


def test_on_postgresql_a_warm_request_is_one_statement(destination, post_events):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement insert is PostgreSQL's")
    post_events("acme", identify(message_id="m1"))

    with CaptureQueriesContext(connection) as queries:
        response = post_events("acme", identify(message_id="m2"))

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    assert len(queries) == 1
    assert "INSERT INTO" in queries[0]["sql"]


def test_a_destination_disabled_here_refuses_the_next_request(destination, post_events):
    post_events("acme", identify(message_id="m1"))

    destination.enabled = False
    destination.save()

    assert post_events("acme", identify(message_id="m2")).status_code == 401


def test_a_destination_deleted_here_refuses_the_next_request(destination, post_events):
    post_events("acme", identify(message_id="m1"))

    destination.delete()

    assert post_events("acme", identify(message_id="m2")).status_code == 401


def test_a_secret_replaced_here_is_the_only_one_from_the_next_request(destination, post_events):
    post_events("acme", identify(message_id="m1"))

    secrets.set_shared_secret(
        destination, "a-new-secret", keep_previous_for=timedelta(0), now=timezone.now()
    )
    destination.save()

    assert post_events("acme", identify(message_id="m2")).status_code == 401
    assert post_events("acme", identify(message_id="m3"), secret="a-new-secret").status_code == 200


def test_the_previous_secret_is_refused_when_its_rotation_ends_though_kept(
    destination, post_events, monkeypatch
):
    secrets.set_shared_secret(
        destination, "a-new-secret", keep_previous_for=timedelta(minutes=1), now=timezone.now()
    )
    destination.save()
    assert post_events("acme", identify(message_id="m1")).status_code == 200  # kept now
    ends = destination.previous_secret_expires_at

    monkeypatch.setattr(timezone, "now", lambda: ends)

    assert post_events("acme", identify(message_id="m2")).status_code == 401
    assert post_events("acme", identify(message_id="m3"), secret="a-new-secret").status_code == 200


def test_attribute_rows_changed_here_map_the_next_request(destination, post_events):
    post_events("acme", identify(message_id="m1"))

    AttributeMapping.objects.create(destination=destination, name="plan", type="string")
    post_events("acme", identify(message_id="m2"))
    destination.attributes.get(name="email").delete()
    post_events("acme", identify(message_id="m3"))

    assert attributes("m1") == {"email": "ada@example.com"}
    assert attributes("m2") == {"email": "ada@example.com", "plan": "gold"}
    assert attributes("m3") == {"plan": "gold"}


def test_event_mappings_changed_here_map_the_next_request(destination, post_events):
    post_events("acme", track("m1"))

    mapping = EventMapping.objects.create(
        destination=destination, segment_event="Order Completed", talon_event_type="order"
    )
    post_events("acme", track("m2"))
    mapping.properties.create(name="total", type="number")
    post_events("acme", track("m3"))

    assert InboundEvent.objects.get(message_id="m1").kind == ""
    assert (attributes("m2"), attributes("m3")) == ({}, {"total": 5})


def test_engage_settings_changed_here_apply_to_the_next_request(destination, post_events):
    event = identify(message_id="m1", traits={"email": "a@b.c"}, context={"personas": {}})
    post_events("acme", event)

    destination.engage_audiences = Destination.EngageAudiences.AUDIENCE
    destination.save()

    assert ingest_cache.config(destination).audiences_as_memberships is True


def test_a_change_made_elsewhere_is_seen_once_the_time_has_passed(destination, post_events, clock):
    post_events("acme", identify(message_id="m1"))
    Destination.objects.filter(pk=destination.pk).update(enabled=False)  # no signal
    AttributeMapping.objects.filter(destination=destination).update(name="plan")

    clock[0] += TTL - 0.1
    kept = post_events("acme", identify(message_id="m2"))
    clock[0] += 0.1
    read_again = post_events("acme", identify(message_id="m3"))

    assert (kept.status_code, read_again.status_code) == (200, 401)
    assert attributes("m2") == {"email": "ada@example.com"}


def test_mappings_changed_elsewhere_are_seen_once_the_time_has_passed(
    destination, post_events, clock
):
    post_events("acme", identify(message_id="m1"))
    AttributeMapping.objects.filter(destination=destination).update(name="plan")

    clock[0] += TTL
    post_events("acme", identify(message_id="m2"))

    assert attributes("m2") == {"plan": "gold"}


def test_nothing_is_kept_with_zero_seconds(destination, post_events, settings):
    settings.INGEST_CONFIG_CACHE_SECONDS = 0
    post_events("acme", identify(message_id="m1"))

    Destination.objects.filter(pk=destination.pk).update(enabled=False)

    assert post_events("acme", identify(message_id="m2")).status_code == 401


def test_one_second_is_kept_for_a_second(destination, post_events, settings, clock):
    settings.INGEST_CONFIG_CACHE_SECONDS = 1
    post_events("acme", identify(message_id="m1"))
    Destination.objects.filter(pk=destination.pk).update(enabled=False)

    clock[0] += 0.5
    kept = post_events("acme", identify(message_id="m2"))
    clock[0] += 0.5

    assert kept.status_code == 200
    assert post_events("acme", identify(message_id="m3")).status_code == 401


def test_unknown_slugs_are_not_kept(destination, post_events):
    assert post_events("other", identify()).status_code == 401

    Destination.objects.filter(pk=destination.pk).update(slug="other")  # no signal

    assert post_events("other", identify()).status_code == 200


def test_a_value_read_while_a_change_is_made_is_not_kept(destination, monkeypatch):
    real = ingest_cache.selectors.enabled_destination
    reads: list[str] = []

    def changed_during_the_read(slug: str) -> Destination | None:
        reads.append(slug)
        found = real(slug)
        ingest_cache.forget()  # another thread saved the destination meanwhile
        return found

    monkeypatch.setattr(ingest_cache.selectors, "enabled_destination", changed_during_the_read)

    ingest_cache.enabled_destination("acme")
    ingest_cache.enabled_destination("acme")

    assert reads == ["acme", "acme"]


def test_a_change_is_forgotten_again_once_committed(
    destination, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        destination.save()
        ingest_cache.enabled_destination("acme")  # another thread read it before the commit
    Destination.objects.filter(pk=destination.pk).update(enabled=False)

    for callback in callbacks:
        callback()

    assert ingest_cache.enabled_destination("acme") is None


@pytest.fixture
def elsewhere():
    """Changes made as by another process: this one's cache hears nothing of them."""
    models = (Destination, AttributeMapping, EventMapping, EventProperty)
    receivers = [
        (signal, model, f"ingest-cache-{model.__name__}")
        for model in models
        for signal in (post_save, post_delete)
    ]
    for signal, model, uid in receivers:
        assert signal.disconnect(sender=model, dispatch_uid=uid)
    yield
    for signal, model, uid in receivers:
        signal.connect(ingest_cache.forget, sender=model, dispatch_uid=uid)


@pytest.mark.django_db(transaction=True)
def test_a_destination_deleted_elsewhere_is_refused_not_an_error(
    destination, post_events, elsewhere
):
    assert post_events("acme", identify(message_id="m1")).status_code == 200

    Destination.objects.filter(pk=destination.pk).delete()
    response = post_events("acme", identify(message_id="m2"))

    assert response.status_code == 401
    assert not InboundEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_destination_made_again_elsewhere_under_its_slug_takes_the_events(
    destination, post_events, make_destination, elsewhere
):
    assert post_events("acme", identify(message_id="m1")).status_code == 200
    Destination.objects.filter(pk=destination.pk).delete()
    again = make_destination(attributes=["email"])

    response = post_events("acme", identify(message_id="m2"))

    assert response.status_code == 200, response.content
    assert InboundEvent.objects.get().destination_id == again.pk
