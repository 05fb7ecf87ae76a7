"""Issue #10 item 2: a flusher paused past its lease between its rate-limit wait
and its request (the adversarial run stopped a worker there) sent an older value
after another flusher had delivered a newer one, and the older value stayed in
Talon.One. The lease is now a fencing token checked after every wait, right
before the request."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from destinations.models import DeliveryLease, InboundEvent
from destinations.services import delivery
from destinations.services.outbox import Sender
from destinations.services.shards import WHOLE
from tests.conftest import identify, send

# The paused flusher runs in a thread: it must see the rows the test commits.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_broker")]


class Pause:
    """Stops one thread's flusher right after its rate-limit wait, as SIGSTOP would."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.reached = threading.Event()
        self.resume = threading.Event()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        wait = Sender.wait_for_rate_limit

        def paused_wait(sender: Sender) -> None:
            wait(sender)
            if threading.current_thread() is self.thread and not self.reached.is_set():
                self.reached.set()
                assert self.resume.wait(timeout=30)

        monkeypatch.setattr(Sender, "wait_for_rate_limit", paused_wait)

    def start(self, destination_id: int) -> None:
        def flush() -> None:
            try:
                delivery.flush(destination_id)
            finally:
                connections.close_all()

        self.thread = threading.Thread(target=flush)
        self.thread.start()
        assert self.reached.wait(timeout=30), "the flusher never came to send"

    def release(self) -> None:
        self.resume.set()
        assert self.thread is not None
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def lease_runs_out() -> None:
    """What the time past a lease does: it expires, and its claimed rows are due again."""
    past = timezone.now() - timedelta(seconds=1)
    DeliveryLease.objects.update(expires_at=past)
    InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).update(next_attempt_at=past)


def test_a_flusher_paused_past_its_lease_never_sends_its_older_value(
    make_destination, post_events, sandbox, monkeypatch
):
    destination = make_destination()
    old = identify("u1", "old", timestamp="2026-01-01T00:00:00Z", traits={"plan": "silver"})
    send(post_events, old)
    pause = Pause()
    pause.install(monkeypatch)
    pause.start(destination.pk)  # claimed the old value, paused before sending it

    lease_runs_out()
    send(post_events, identify("u1", "new", timestamp="2026-01-02T00:00:00Z"))
    delivery.flush(destination.pk)  # another flusher takes over and delivers the newer value
    assert sandbox.profile("u1")["attributes"]["plan"] == "gold"
    pause.release()

    assert sandbox.profile("u1")["attributes"]["plan"] == "gold"
    [request] = sandbox.requests_log()  # the paused flusher sent nothing
    assert request["body"]["customerProfiles"][0]["attributes"]["plan"] == "gold"
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"delivered"}


def test_every_acquisition_is_a_new_generation(make_destination):
    destination = make_destination()

    first = delivery._acquire_lease(destination.pk, WHOLE, "a")
    DeliveryLease.objects.update(expires_at=None)
    second = delivery._acquire_lease(destination.pk, WHOLE, "a")

    assert first is not None
    assert second == first + 1
    assert delivery._acquire_lease(destination.pk, WHOLE, "b") is None  # held by a
