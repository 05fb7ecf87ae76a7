from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from destinations.models import AttributeMapping, Destination, InboundEvent
from talon_sandbox.client import SandboxClient
from talon_sandbox.server import SandboxServer, running_sandbox

SECRET = "segment-shared-secret"
API_KEY = "sandbox-api-key"
CATALOGUE = {
    "email": "string",
    "firstName": "string",
    "plan": "string",
    "age": "number",
    "vip": "boolean",
    "address_city": "string",
    "createdAt": "time",
    "order_completed_last_30days": "boolean",
    "lifetime_value": "number",
}


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def identify(user_id: str | None = "user-1", message_id: str = "m-1", **fields: Any) -> dict:
    event: dict[str, Any] = {
        "type": "identify",
        "messageId": message_id,
        "timestamp": "2026-01-01T12:00:00Z",
        "traits": {"email": "ada@example.com", "plan": "gold"},
    }
    if user_id is not None:
        event["userId"] = user_id
    event.update(fields)
    return event


def audience_identify(
    user_id: str | None,
    message_id: str,
    audience: str,
    member: bool = True,
    *,
    computation_id: str | None = None,
    traits: dict[str, Any] | None = None,
    **fields: Any,
) -> dict:
    """An identify as Engage sends it when a user enters (member) or leaves an
    audience: the audience's boolean trait, named by context.personas."""
    personas = {"computation_class": "audience", "computation_key": audience}
    if computation_id is not None:
        personas["computation_id"] = computation_id
    return identify(
        user_id,
        message_id,
        traits={audience: member, **(traits or {})},
        context={"personas": personas},
        **fields,
    )


def send(post_events: Callable[..., Any], *events: dict, slug: str = "acme") -> None:
    """POST events as one signed batch, which ingest must accept."""
    response = post_events(slug, list(events))
    assert response.status_code == 200, response.content


def pending_profile_update(
    destination: Destination, user_id: str = "u1", message_id: str = "m-1"
) -> InboundEvent:
    """A profile update due now, stored as ingest would store it."""
    now = timezone.now()
    return InboundEvent.objects.create(
        destination=destination,
        message_id=message_id,
        type="identify",
        kind=InboundEvent.Kind.PROFILE,
        user_id=user_id,
        payload={},
        timestamp=now,
        attributes={"plan": "gold"},
        status=InboundEvent.Status.PENDING,
        queued_at=now,
        next_attempt_at=now,
    )


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    """The process's caches (the dashboard's counts, ingest's destinations) and the
    run's queued-flush flags hold nothing from another test."""
    from django.core.cache import cache

    from destinations.services import ingest_cache
    from tests.flags import forget_flags

    cache.clear()
    ingest_cache.clear()
    forget_flags()


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record flush nudges instead of queueing tasks, for tests that stop at the
    database or flush by hand; a module opts in with usefixtures("no_broker")."""
    nudged: list[int] = []
    monkeypatch.setattr("destinations.services.nudge.nudge", nudged.append)
    return nudged


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with running_sandbox(attributes=CATALOGUE) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxClient:
    client = SandboxClient(sandbox_server.url)
    client.reset(attributes=CATALOGUE, api_keys=[API_KEY])
    return client


@pytest.fixture
def make_destination(sandbox_server: SandboxServer) -> Callable[..., Destination]:
    def make(
        slug: str = "acme",
        attributes: tuple[str, ...] | list[tuple[str, str]] = ("email", "plan", "address_city"),
        **fields: Any,
    ) -> Destination:
        values = {
            "name": slug.title(),
            "base_url": sandbox_server.url,
            "api_key": API_KEY,
            "shared_secret": SECRET,
        }
        values.update(fields)
        destination = Destination.objects.create(slug=slug, **values)
        for attribute in attributes:
            name, type_ = attribute if isinstance(attribute, tuple) else (attribute, "string")
            AttributeMapping.objects.create(destination=destination, name=name, type=type_)
        return destination

    return make


@pytest.fixture
def post_events(client: Client) -> Callable[..., Any]:
    """POST a body (object, list, raw bytes) to a destination, signed unless told otherwise."""

    def post(
        slug: str, body: Any, *, secret: str | None = SECRET, headers: dict | None = None
    ) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        extra = dict(headers or {})
        if secret is not None:
            extra.setdefault("X-Signature", sign(raw, secret))
        return client.post(
            f"/api/v1/segment/{slug}/", raw, content_type="application/json", headers=extra
        )

    return post


@pytest.fixture
def broker_queue() -> Iterator[Callable[[], int]]:
    """The run's own Celery queue in the real broker (filesystem, or Redis when
    REDIS_URL is set), empty before and after the test; yields a message counter."""
    from django.conf import settings

    from integration_site.celery import app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE

    def purge() -> None:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_declare(queue)
            connection.default_channel.queue_purge(queue)

    def count() -> int:
        # Not passive: Redis knows no empty queue, and a passive declare of one raises.
        with app.connection_for_write() as connection:
            _, messages, _ = connection.default_channel.queue_declare(queue)
            return messages

    purge()
    yield count
    purge()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Runs side by side stay apart by process id: tests.settings names the test
    database after it. A process forked after the settings were read (mutmut
    forks one per mutant) takes a name of its own here."""
    from django.conf import settings
    from django.contrib.contenttypes.models import ContentType

    # A second run in one process (mutmut's clean run after its stats run) has
    # a new database: content type ids cached from the first would be wrong.
    ContentType.objects.clear_cache()
    test = settings.DATABASES["default"]["TEST"]
    test["NAME"] = re.sub(r"\d+(?=(\.sqlite3)?$)", str(os.getpid()), test["NAME"])


@pytest.fixture(scope="session", autouse=True)
def celery_queue_of_this_process() -> None:
    """The Celery queue (and the Redis keys named after it) of a process forked
    after tests.settings named it after its parent: renamed for every test, not
    only for those with the database, so that two mutants' processes running
    tests without the database do not share it."""
    from django.conf import settings

    from integration_site.celery import app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    own = f"tests-{os.getpid()}"
    if re.fullmatch(r"tests-\d+", queue) and queue != own:
        settings.CELERY_TASK_DEFAULT_QUEUE = app.conf.task_default_queue = own
        app.__dict__.pop("amqp", None)  # its routes were built for the old queue
