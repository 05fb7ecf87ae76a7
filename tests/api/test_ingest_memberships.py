"""An identify that is both a profile update and an Engage audience change is one
Segment event stored as two rows: the profile update under its messageId, and the
membership under messageId + "#audience" (hashed when that would not fit the
column; the id must stay the same across versions, or a Segment retry after an
upgrade is stored twice)."""

import pytest

from destinations.models import InboundEvent
from tests.conftest import audience_identify

pytestmark = pytest.mark.django_db

Status = InboundEvent.Status
Kind = InboundEvent.Kind


@pytest.fixture
def destination(make_destination):
    return make_destination(attributes=["email"], engage_audiences="both")


def entry(message_id: str) -> dict:
    return audience_identify(
        "u1", message_id, "vip", computation_id="aud_1", traits={"email": "a@x.io"}
    )


def test_the_membership_row_is_the_same_event_with_its_own_call(destination, post_events):
    event = entry("m1")

    response = post_events("acme", event)

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    rows = {
        row["message_id"]: row
        for row in InboundEvent.objects.values(
            "message_id", "type", "user_id", "payload", "timestamp", "notes", "status", "kind"
        )
    }
    profile, membership = rows.pop("m1"), rows.pop("m1#audience")
    assert rows == {}
    assert membership == {
        **profile,
        "message_id": "m1#audience",
        "kind": Kind.AUDIENCE,
    }
    assert profile["kind"] == Kind.PROFILE
    assert (membership["type"], membership["user_id"], membership["status"]) == (
        "identify",
        "u1",
        Status.PENDING,
    )
    assert membership["payload"] == event
    assert InboundEvent.objects.get(message_id="m1#audience").call == {
        "key": "vip",
        "computation_id": "aud_1",
        "member": True,
    }


def test_a_membership_id_of_exactly_200_characters_is_kept(destination, post_events):
    message_id = "m" * 191  # and "#audience": the column's 200

    post_events("acme", entry(message_id))

    assert InboundEvent.objects.filter(message_id=f"{message_id}#audience").exists()


def test_a_longer_membership_id_is_hashed_and_stays_the_same_across_versions(
    destination, post_events
):
    message_id = "m" * 192
    # The SHA-256 of "m" * 192 + "#audience": pinned, not recomputed by the test.
    expected = "sha256:9fa7e1edb5ba8b1af74c17bfa6fdd4476e283884a001ed3e70b7a994dff56e87#audience"

    first = post_events("acme", entry(message_id))
    again = post_events("acme", entry(message_id))

    assert first.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    assert again.json() == {"accepted": 0, "skipped": 0, "duplicates": 1}
    assert set(InboundEvent.objects.values_list("message_id", "kind")) == {
        (message_id, Kind.PROFILE),
        (expected, Kind.AUDIENCE),
    }
