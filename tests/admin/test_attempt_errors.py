"""The attempt list's error column carries what Talon.One said for every answer
that is not a 2xx: recorded with the attempt, against the sandbox over real HTTP."""

import html
import re

import pytest
from django.utils import timezone

from destinations.models import DeliveryAttempt, InboundEvent
from destinations.services import delivery, outbox
from destinations.talon_one import Outcome as Answer
from destinations.talon_one import Result
from tests.conftest import identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

LIST_URL = "/admin/destinations/deliveryattempt/"


def deliver(post_events, destination, *events) -> DeliveryAttempt:
    assert post_events(destination.slug, list(events)).status_code == 200
    delivery.flush(destination.pk)
    return DeliveryAttempt.objects.latest("id")


def error_cells(page: str) -> list[str]:
    """Each error cell's whole text: the title of a cut one."""
    cells = page.split('<td class="field-error_shown">')[1:]
    texts = []
    for cell in (cell[: cell.index("</td>")] for cell in cells):
        whole = re.match(r'<span title="([^"]*)">', cell)
        texts.append(html.unescape(whole.group(1) if whole else cell))
    return texts


def test_a_400_shows_talon_ones_message(login, operator, make_destination, post_events, sandbox):
    destination = make_destination()
    sandbox.set_faults(reject_profiles=["u1"])

    attempt = deliver(post_events, destination, identify("u1", "m1"))

    assert attempt.response_status == 400
    assert attempt.error.startswith("Talon.One answered 400: ")
    assert len(attempt.error) > len("Talon.One answered 400: ")
    page = login(operator).get(LIST_URL).content.decode()
    assert error_cells(page)[0].startswith("Talon.One answered 400: ")


def test_a_401_shows_talon_ones_message(login, operator, make_destination, post_events, sandbox):
    destination = make_destination(api_key="not-the-key")

    attempt = deliver(post_events, destination, identify("u1", "m1"))

    assert attempt.response_status == 401
    message = attempt.error.removeprefix("Talon.One answered 401: ")
    assert message
    assert message != attempt.error
    assert message in attempt.response_body
    assert message in error_cells(login(operator).get(LIST_URL).content.decode())[0]


def test_a_503_shows_what_came_back(login, operator, make_destination, post_events, sandbox):
    destination = make_destination()
    sandbox.set_faults(down=True)

    attempt = deliver(post_events, destination, identify("u1", "m1"))

    assert attempt.response_status == 503
    assert attempt.error.startswith("Talon.One answered 503")
    assert error_cells(login(operator).get(LIST_URL).content.decode())[0].startswith(
        "Talon.One answered 503"
    )


def test_a_delivered_request_has_no_error(login, operator, make_destination, post_events, sandbox):
    destination = make_destination()

    attempt = deliver(post_events, destination, identify("u1", "m1"))

    assert (attempt.response_status, attempt.error) == (204, "")
    assert error_cells(login(operator).get(LIST_URL).content.decode()) == ["-"]


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (401, '{"message": "Invalid API key"}', "Talon.One answered 401: Invalid API key"),
        (503, "<html>Service Unavailable</html>", "Talon.One answered 503"),
        (200, '{"message": "fine"}', "-"),
    ],
)
def test_attempts_recorded_without_the_message_show_it_from_the_answer(
    login, operator, make_destination, status, body, shown
):
    destination = make_destination()
    event = InboundEvent.objects.create(
        destination=destination, message_id="m1", type="identify", user_id="u1", payload={},
        timestamp=timezone.now(), status=InboundEvent.Status.FAILED,
    )  # fmt: skip
    attempt = DeliveryAttempt.objects.create(
        destination=destination, profile_count=1, method="PUT", url="https://x/v2", request_body={},
        response_status=status, response_body=body, error="", duration_ms=5, attempt_number=1,
        outcome=DeliveryAttempt.Outcome.FAILED,
    )  # fmt: skip
    attempt.events.add(event)

    page = login(operator).get(LIST_URL).content.decode()

    assert error_cells(page) == [shown]


@pytest.mark.parametrize(
    ("status", "message", "error", "recorded"),
    [
        (200, "", "", "audience created"),
        (299, "", "", "audience created"),
        (300, "", "", "Talon.One answered 300; audience created"),
        (199, "", "", "Talon.One answered 199; audience created"),
        (409, "slow down", "", "Talon.One answered 409: slow down; audience created"),
        (None, "", "Timed out", "Timed out; audience created"),
    ],
)
def test_each_attempt_records_what_went_wrong_beside_its_note(
    make_destination, status, message, error, recorded
):
    destination = make_destination()
    event = InboundEvent.objects.create(
        destination=destination, message_id="m1", type="identify", user_id="u1", payload={},
        timestamp=timezone.now(), status=InboundEvent.Status.PENDING,
    )  # fmt: skip
    result = Result(
        method="POST", url="https://x/v2/audiences", body={}, outcome=Answer.SUCCESS,
        status=status, response_body="", error=error, duration_ms=1, message=message,
    )  # fmt: skip

    outbox.Sender(destination, "task", "holder", 1).record(
        [event], result, DeliveryAttempt.Outcome.SUCCESS, "audience created"
    )

    assert DeliveryAttempt.objects.get().error == recorded
