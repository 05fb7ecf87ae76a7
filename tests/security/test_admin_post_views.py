"""Every admin page that changes something or calls Talon.One is a POST with
Django's CSRF token: a link, an image tag or a prefetch cannot trigger it. A
superuser (every permission) shows that the refusal is the method's or the
token's, not a missing permission's."""

import pytest
from django.test import Client
from django.utils import timezone

from destinations.models import Destination, InboundEvent

pytestmark = pytest.mark.django_db

DESTINATION_PAGES = ["test-connection", "catalog/refresh", "catalog/add"]


@pytest.fixture
def urls(destination: Destination) -> list[str]:
    event = InboundEvent.objects.create(
        destination=destination,
        message_id="m1",
        type="identify",
        user_id="u1",
        payload={"type": "identify", "userId": "u1"},
        timestamp=timezone.now(),
        status=InboundEvent.Status.FAILED,
    )
    change = f"/admin/destinations/destination/{destination.pk}"
    return [
        *(f"{change}/{page}/" for page in DESTINATION_PAGES),
        f"/admin/destinations/inboundevent/{event.pk}/redeliver/",
    ]


def test_a_get_is_refused(login, superuser, urls, no_broker):
    client = login(superuser)

    assert [client.get(url).status_code for url in urls] == [405] * len(urls)
    assert no_broker == []


def test_a_post_without_the_csrf_token_is_refused(superuser, urls, no_broker):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)

    for url in urls:
        response = client.post(url, {"row": "vip:boolean"})
        assert response.status_code == 403, url
        assert "CSRF verification failed" in response.content.decode(), url
    assert no_broker == []
    assert InboundEvent.objects.get().status == InboundEvent.Status.FAILED
