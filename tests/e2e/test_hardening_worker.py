"""Issue #10, item 1, with the real worker: a stored key that an HTTP header
cannot carry crashed the flush task, which wrote the key into the worker's log
every minute while the event waited a day without a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from destinations.models import DeliveryAttempt, Destination, InboundEvent
from tests.conftest import pending_profile_update
from tests.e2e.conftest import wait_for, worker_process
from tests.local_server import local_server
from tests.security.conftest import API_KEY, SECRET
from tests.security.test_hardening_keys import answers_204, assert_no_key, with_character

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_worker_fails_the_event_with_a_reason_and_never_logs_the_key(
    processes, process_env, tmp_path: Path
):
    with local_server(answers_204) as (base_url, paths):
        destination = Destination.objects.create(
            name="Acme",
            slug="acme",
            base_url=base_url,
            api_key=with_character(API_KEY, "\u200b", "middle"),  # saved before validation
            shared_secret=SECRET,
        )
        pending_profile_update(destination)
        worker = worker_process(processes, process_env, tmp_path).start()  # beat sweeps it up

        event = wait_for(
            lambda: InboundEvent.objects.filter(status=InboundEvent.Status.FAILED).first(),
            timeout=60,
        )
        worker.stop()

    assert paths == []
    assert "API key" in event.reason
    assert DeliveryAttempt.objects.get().error == event.reason
    log = worker.log_path.read_text(errors="replace")
    assert "flush_destination" in log  # the task ran: its log is the one read
    assert_no_key(log, "the worker's log")
