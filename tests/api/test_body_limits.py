"""A refused body is read and dropped when a proxy may still be sending it: gunicorn
closing with it unread resets the connection, and nginx answers 502 instead of 413."""

from django.test import RequestFactory
from rest_framework.request import Request

from destinations.api.views import body_problem

LIMIT = 10


def request_with(body: bytes) -> Request:
    return Request(RequestFactory().post("/", data=body, content_type="application/json"))


def test_a_body_up_to_twice_the_limit_is_refused_and_read_to_its_end():
    request = request_with(b"x" * (2 * LIMIT))

    assert body_problem(request, LIMIT) == (413, f"The request body is larger than {LIMIT} bytes.")
    assert request.read() == b""


def test_a_far_larger_body_is_refused_unread():
    body = b"x" * (2 * LIMIT + 1)
    request = request_with(body)

    assert body_problem(request, LIMIT)[0] == 413
    assert request.read() == body


def test_a_body_within_the_limit_is_read_once_and_kept():
    request = request_with(b"x" * LIMIT)

    assert body_problem(request, LIMIT) is None
    assert request.body == b"x" * LIMIT
