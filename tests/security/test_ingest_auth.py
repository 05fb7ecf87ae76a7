"""Who may write: signatures, header secrets, secret rotation, unsigned destinations."""

import base64
import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from destinations.models import Destination, InboundEvent
from destinations.services import secrets
from tests.conftest import identify, sign
from tests.security.conftest import OLD_SECRET, SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(client, no_broker):
    def post(headers=None, slug="acme", body=None):
        raw = json.dumps(body or identify()).encode()
        return client.post(
            f"/api/v1/segment/{slug}/", raw, content_type="application/json", headers=headers
        )

    return post


def signed(secret, body=None):
    return {"X-Signature": sign(json.dumps(body or identify()).encode(), secret)}


def signed_m2(secret):
    return signed(secret, identify(message_id="m-2"))


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def basic(secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


@pytest.fixture
def rotating(destination):
    """Acme moved from OLD_SECRET to SECRET; the old one is accepted for another hour."""
    destination.shared_secret = OLD_SECRET
    secrets.set_shared_secret(
        destination, SECRET, keep_previous_for=timedelta(hours=1), now=timezone.now()
    )
    destination.save()
    return destination


@pytest.mark.parametrize("auth", [signed_m2, bearer, basic], ids=["signature", "bearer", "basic"])
def test_during_a_rotation_both_secrets_are_accepted(rotating, post, auth):
    assert post(auth(SECRET), body=identify(message_id="m-2")).status_code == 200
    assert post(auth(OLD_SECRET), body=identify(message_id="m-2")).status_code == 200


@pytest.mark.parametrize("auth", [signed, bearer, basic], ids=["signature", "bearer", "basic"])
def test_when_the_rotation_window_ends_the_old_secret_is_refused(rotating, post, auth):
    Destination.objects.filter(pk=rotating.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )

    refused = post(auth(OLD_SECRET))

    assert refused.status_code == 401
    assert "signature" in refused.json()["detail"]
    assert post(auth(SECRET)).status_code == 200


def test_ending_a_rotation_refuses_the_old_secret_at_once(rotating, post):
    secrets.end_rotation(rotating)
    rotating.save()

    assert post(signed(OLD_SECRET)).status_code == 401
    assert post(signed(SECRET)).status_code == 200


def test_replacing_a_secret_without_a_window_refuses_the_old_one(destination, post):
    secrets.set_shared_secret(
        destination, "seg-next", keep_previous_for=timedelta(0), now=timezone.now()
    )
    destination.save()

    assert post(signed(SECRET)).status_code == 401
    assert post(signed("seg-next")).status_code == 200


def test_a_previous_secret_without_an_end_is_never_accepted(destination, post):
    Destination.objects.filter(pk=destination.pk).update(
        previous_shared_secret=OLD_SECRET, previous_secret_expires_at=None
    )
    assert post(signed(OLD_SECRET)).status_code == 401


def test_without_a_secret_events_are_refused(destination, post):
    Destination.objects.filter(pk=destination.pk).update(shared_secret="")
    assert post({}).status_code == 401
    assert post(bearer("")).status_code == 401
    assert post(signed("")).status_code == 401


@pytest.mark.parametrize("headers", [{}, {"X-Signature": "0" * 40}, bearer("anything")])
def test_a_destination_marked_accept_unsigned_takes_events_without_a_secret(
    destination, post, headers
):
    Destination.objects.filter(pk=destination.pk).update(shared_secret="", accept_unsigned=True)
    assert post(headers).status_code == 200


def test_accept_unsigned_never_overrides_a_secret(destination, post):
    Destination.objects.filter(pk=destination.pk).update(accept_unsigned=True)
    assert post({}).status_code == 401
    destination.refresh_from_db()
    with pytest.raises(ValidationError, match="clear the secret to accept unsigned events"):
        destination.full_clean()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Signature": "é" * 40},
        {"X-Signature": "\x00" * 40},
        {"Authorization": "Bearer " + "ÿ" * 20},
        {"Authorization": "Basic é"},
        {"Authorization": "Basic " + base64.b64encode("é:".encode()).decode()},
        {"Authorization": "Digest abc"},
        {"Authorization": "Bearer"},
        {"X-Signature": " "},
    ],
    ids=[
        "sig-latin1",
        "sig-nul",
        "bearer-latin1",
        "basic-latin1",
        "basic-utf8",
        "digest",
        "bare",
        "blank",
    ],
)
def test_garbage_credentials_are_401_not_500(destination, post, headers):
    response = post(headers)
    assert response.status_code == 401
    assert not InboundEvent.objects.exists()
