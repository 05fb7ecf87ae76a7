import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from destinations.models import Destination

pytestmark = pytest.mark.django_db

ARGS = [
    "--slug", "shop", "--name", "Shop", "--base-url", "https://shop.talon.one",
    "--api-key", "key-1", "--shared-secret", "secret-1",
]  # fmt: skip


def test_create_destination_creates_then_updates(settings):
    out = io.StringIO()
    call_command("create_destination", *ARGS, "--attribute", "email",
                 "--attribute", "age:number", stdout=out)  # fmt: skip
    call_command("create_destination", *ARGS[:-4], "--api-key", "key-2",
                 "--shared-secret", "secret-2", "--attribute", "plan", stdout=out)  # fmt: skip

    destination = Destination.objects.get()
    assert destination.api_key == "key-2"
    assert destination.shared_secret == "secret-2"
    assert list(destination.attributes.values_list("name", "type")) == [("plan", "string")]
    assert out.getvalue().splitlines() == [
        "Created destination shop (2 attributes)",
        "Updated destination shop (1 attributes)",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--attribute", "1bad"], "attribute name"),
        (["--attribute", "email", "--attribute", "EMAIL"], "listed twice"),
        (["--attribute", "email:int"], "not a valid choice"),
    ],
)
def test_create_destination_refuses_bad_attributes(extra, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_destination", *ARGS, *extra, stdout=io.StringIO())
    assert not Destination.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.talon.one",
        "https://shop.talon.one/",
        "https://shop.talon.one/v2",
        "https://user:pw@shop.talon.one",
        "ftp://shop.talon.one",
    ],
)
def test_create_destination_refuses_base_urls_that_are_not_an_https_host(url):
    args = list(ARGS)
    args[args.index("https://shop.talon.one")] = url
    with pytest.raises(CommandError):
        call_command("create_destination", *args, stdout=io.StringIO())


def test_setup_demo_prints_a_curl_that_is_signed_for_the_demo_destination(client):
    out = io.StringIO()
    call_command("setup_demo", stdout=out)
    call_command("setup_demo", stdout=io.StringIO())  # idempotent

    text = out.getvalue()
    assert "login admin / admin" in text
    signature = text.split("X-Signature: ")[1].split("'")[0]
    body = text.split("--data '")[1].split("'")[0]
    response = client.post(
        "/api/v1/segment/demo/", body, content_type="application/json",
        headers={"X-Signature": signature},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json()["accepted"] == 1


def test_a_new_shared_secret_from_the_command_line_rotates_the_old_one(client):
    call_command("create_destination", *ARGS, stdout=io.StringIO())
    call_command("create_destination", *ARGS[:-2], "--shared-secret", "secret-2",
                 "--keep-previous-secret-hours", "4", stdout=io.StringIO())  # fmt: skip

    destination = Destination.objects.get()
    assert destination.shared_secret == "secret-2"
    assert destination.previous_shared_secret == "secret-1"
    assert destination.previous_secret_expires_at > timezone.now() + timedelta(hours=3.9)

    call_command("create_destination", *ARGS[:-2], "--shared-secret", "secret-3",
                 "--keep-previous-secret-hours", "0", stdout=io.StringIO())  # fmt: skip
    destination.refresh_from_db()
    assert destination.previous_shared_secret == ""
