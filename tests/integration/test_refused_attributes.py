"""An attribute Talon.One refuses never sinks the rest of an update: found by
splitting (never by reading Talon.One's error, whose format is undocumented),
recorded on each event, remembered for the destination, shown to marketers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from destinations.models import DeliveryAttempt, InboundEvent, RefusedAttribute
from destinations.services import delivery, refusals
from destinations.services.handlers import profiles
from tests.conftest import audience_identify, identify, send
from tests.local_server import scripted_talon

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status
AUDIENCE = "new_audience_not_in_talon"  # an Engage audience nobody created in Talon.One yet


@pytest.fixture
def destination(make_destination):
    return make_destination(attributes=["email", "plan", "notInTalon"])


def engage_identify(user_id, message_id, **traits):
    return audience_identify(user_id, message_id, AUDIENCE, traits=traits)


def failing_requests(sandbox):
    return [r for r in sandbox.requests_log() if r["status"] >= 400]


def test_the_other_attributes_are_delivered_and_the_refused_one_noted(
    destination, post_events, sandbox
):
    send(
        post_events,
        identify("u1", "m1", traits={"email": "a@x.io", "plan": "gold", "notInTalon": 7}),
    )

    delivery.flush(destination.pk)

    assert sandbox.profile("u1")["attributes"] == {"email": "a@x.io", "plan": "gold"}
    event = InboundEvent.objects.get()
    assert event.status == Status.DELIVERED
    (note,) = [n for n in event.notes if n["attribute"] == "notInTalon"]
    assert note["reason"].startswith(profiles.REFUSED_NOTE + ": Talon.One answered 400")
    refused = RefusedAttribute.objects.get()
    assert (refused.name, refused.event_count, refused.example_value) == ("notInTalon", 1, "7")
    assert refused.example_event == event
    assert refused.retry_at > timezone.now()


def test_an_audience_first_sync_is_delivered_in_bulk(make_destination, post_events, sandbox):
    destination = make_destination(attributes=["email"])
    members = [engage_identify(f"u{i}", f"m{i}", email=f"u{i}@x.io") for i in range(1000)]
    send(post_events, *members[:500])
    send(post_events, *members[500:])

    delivery.flush(destination.pk)

    assert len(sandbox.profiles()) == 1000
    assert sandbox.profile("u999")["attributes"] == {"email": "u999@x.io"}
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    # Halving down to one profile (10), its attributes (3) and the 999 others at once.
    assert len(sandbox.requests_log()) <= 15
    assert RefusedAttribute.objects.get().event_count == 1000


def test_an_update_of_only_refused_attributes_fails_with_talon_ones_answer(
    destination, post_events, sandbox
):
    send(post_events, engage_identify("u1", "m1"), engage_identify("u2", "m2"))

    delivery.flush(destination.pk)

    for event in InboundEvent.objects.all():
        assert event.status == Status.FAILED
        assert event.reason.startswith(
            f"nothing sent: Talon.One refused every attribute: {AUDIENCE} ("
        )
        assert [n["attribute"] for n in event.notes] == [AUDIENCE]
    assert RefusedAttribute.objects.get(name=AUDIENCE).event_count == 2
    # The audit log says why: an update with no attributes showed the profile is fine
    # (once: the refusal is remembered for the second profile).
    errors = list(DeliveryAttempt.objects.order_by("id").values_list("error", flat=True))
    assert errors.count("the profile itself is accepted: the attributes are refused") == 1


def test_a_remembered_refusal_costs_later_events_no_failing_request(
    destination, post_events, sandbox
):
    send(post_events, identify("u1", "m1", traits={"email": "a@x.io", "notInTalon": "x"}))
    delivery.flush(destination.pk)
    failures = len(failing_requests(sandbox))

    send(post_events, identify("u2", "m2", traits={"email": "b@x.io", "notInTalon": "y"}))
    delivery.flush(destination.pk)

    assert len(failing_requests(sandbox)) == failures
    assert sandbox.profile("u2")["attributes"] == {"email": "b@x.io"}
    second = InboundEvent.objects.get(message_id="m2")
    assert second.status == Status.DELIVERED
    assert [n["attribute"] for n in second.notes] == ["notInTalon"]
    assert RefusedAttribute.objects.get().event_count == 2


def test_after_the_retry_time_talon_one_is_asked_again(destination, post_events, sandbox):
    send(post_events, identify("u1", "m1", traits={"email": "a@x.io", "notInTalon": "x"}))
    delivery.flush(destination.pk)
    RefusedAttribute.objects.update(retry_at=timezone.now() - timedelta(seconds=1))
    sandbox.set_attributes({**sandbox.attributes(), "notInTalon": "string"})  # created meanwhile

    send(post_events, identify("u2", "m2", traits={"email": "b@x.io", "notInTalon": "y"}))
    delivery.flush(destination.pk)

    assert sandbox.profile("u2")["attributes"] == {"email": "b@x.io", "notInTalon": "y"}
    assert InboundEvent.objects.get(message_id="m2").notes == []


def test_redelivery_asks_talon_one_again(destination, post_events, sandbox):
    send(post_events, engage_identify("u1", "m1"))
    delivery.flush(destination.pk)
    sandbox.set_attributes({**sandbox.attributes(), AUDIENCE: "boolean"})

    delivery.redeliver(InboundEvent.objects.all())
    delivery.flush(destination.pk)

    assert InboundEvent.objects.get().status == Status.DELIVERED
    assert sandbox.profile("u1")["attributes"] == {AUDIENCE: True}


def test_a_refused_profile_fails_alone_and_marks_no_attribute_refused(
    destination, post_events, sandbox
):
    send(post_events, *[identify(f"u{i}", f"m{i}") for i in range(8)])
    sandbox.set_faults(reject_profiles=["u5"])

    delivery.flush(destination.pk)

    statuses = dict(InboundEvent.objects.values_list("message_id", "status"))
    assert statuses.pop("m5") == Status.FAILED
    assert set(statuses.values()) == {Status.DELIVERED}
    assert InboundEvent.objects.get(message_id="m5").reason.startswith("Talon.One answered 400")
    assert not RefusedAttribute.objects.exists()
    assert sorted(sandbox.profiles()) == sorted(f"u{i}" for i in range(8) if i != 5)
    # The audit log says why: an update with no attributes was refused too.
    errors = DeliveryAttempt.objects.values_list("error", flat=True)
    (said,) = [e for e in errors if e.endswith("; the profile itself is refused")]
    assert said.startswith("Talon.One answered 400")


@pytest.mark.parametrize(
    "refusal",
    [
        {"message": "Bad Request"},
        {"errors": [{"title": "Invalid"}]},
        None,
    ],
    ids=["bare-message", "no-pointers", "empty-body"],
)
def test_refused_attributes_are_found_whatever_talon_one_says(
    make_destination, post_events, refusal
):
    """A stand-in that refuses `secret_score` with an answer that names nothing."""

    def script(body):
        if any("secret_score" in p["attributes"] for p in body["customerProfiles"]):
            return 400, {}, refusal
        return 204, {}, None

    with scripted_talon(script) as (url, received):
        destination = make_destination(base_url=url, attributes=["email", "plan", "secret_score"])
        send(
            post_events,
            *[
                identify(
                    f"u{i}", f"m{i}", traits={"email": f"{i}@x.io", "plan": "p", "secret_score": i}
                )
                for i in range(6)
            ],
        )
        delivery.flush(destination.pk)

    delivered: dict[str, dict] = {}
    for body in received:
        for profile in body["customerProfiles"]:
            if "secret_score" not in profile["attributes"]:
                delivered.setdefault(profile["integrationId"], {}).update(profile["attributes"])
    assert delivered == {f"u{i}": {"email": f"{i}@x.io", "plan": "p"} for i in range(6)}
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    assert RefusedAttribute.objects.get().name == "secret_score"


def refusing(*, also: dict[frozenset[str], int] | None = None):
    """A stand-in refusing any update carrying `secret` (400), and answering the
    attribute sets in `also` with their status."""

    def script(body):
        (profile,) = body["customerProfiles"]
        status = (also or {}).get(frozenset(profile["attributes"]))
        if status is not None:
            return status, {}, {"message": "forbidden"}
        if "secret" in profile["attributes"]:
            return 400, {}, {"message": "no"}
        return 204, {}, None

    return scripted_talon(script)


FOUR = {"age": 3, "email": "a@x.io", "plan": "gold", "secret": 1}


def test_isolating_halves_the_attributes_until_the_refused_one_is_alone(
    make_destination, post_events
):
    with refusing() as (url, received):
        destination = make_destination(base_url=url, attributes=sorted(FOUR))
        send(post_events, identify("u1", "m1", traits=FOUR))
        delivery.flush(destination.pk)

    assert [sorted(b["customerProfiles"][0]["attributes"]) for b in received] == [
        ["age", "email", "plan", "secret"],
        ["age", "email"],
        ["plan", "secret"],
        ["plan"],
        ["secret"],
    ]
    assert list(DeliveryAttempt.objects.order_by("id").values_list("outcome", "error")) == [
        ("retry", "Talon.One answered 400: no; finding what Talon.One refuses"),
        ("success", "2 of 4 attributes accepted"),
        ("retry", "Talon.One answered 400: no; finding what Talon.One refuses"),
        ("success", "1 of 4 attributes accepted"),
        ("failed", "Talon.One answered 400: no; attribute secret refused"),
    ]
    assert InboundEvent.objects.get().status == Status.DELIVERED


def test_an_answer_other_than_400_while_isolating_settles_the_update(make_destination, post_events):
    # A 403 says nothing about the attributes: no attribute is marked refused for it.
    with refusing(also={frozenset({"plan"}): 403}) as (url, received):
        destination = make_destination(base_url=url, attributes=sorted(FOUR))
        send(post_events, identify("u1", "m1", traits=FOUR))
        delivery.flush(destination.pk)

    assert len(received) == 4  # the last was plan's, alone
    event = InboundEvent.objects.get()
    assert (event.status, event.reason) == (Status.FAILED, "Talon.One answered 403: forbidden")
    assert not RefusedAttribute.objects.exists()


def test_with_the_rule_engine_each_profile_is_isolated_the_same_way(
    make_destination, post_events, sandbox
):
    destination = make_destination(attributes=["email", "notInTalon"], run_rule_engine=True)
    send(post_events, identify("u1", "m1", traits={"email": "a@x.io", "notInTalon": "x"}))

    delivery.flush(destination.pk)

    assert sandbox.profile("u1")["attributes"] == {"email": "a@x.io"}
    assert InboundEvent.objects.get().status == Status.DELIVERED
    assert RefusedAttribute.objects.get().name == "notInTalon"


def test_an_outage_while_isolating_retries_the_whole_update_later(make_destination, post_events):
    answers = iter([400, 503])

    def script(body):
        status = next(answers, 204)
        return status, {}, {"message": "no"} if status != 204 else None

    with scripted_talon(script) as (url, _received):
        destination = make_destination(base_url=url, attributes=["email", "plan"])
        send(post_events, identify("u1", "m1", traits={"email": "a@x.io", "plan": "gold"}))
        delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.PENDING
    assert event.reason == "retrying: Talon.One answered 503: no"
    assert not RefusedAttribute.objects.exists()
    assert [a.outcome for a in DeliveryAttempt.objects.order_by("id")] == ["retry", "retry"]


def test_an_outage_while_asking_about_the_profile_itself_retries_it_later(
    make_destination, post_events
):
    # Its one attribute was refused; the update with none, which tells whether the
    # profile itself is, met an outage.
    answers = iter([400, 503])

    def script(body):
        status = next(answers, 204)
        return status, {}, {"message": "no"} if status != 204 else None

    with scripted_talon(script) as (url, received):
        destination = make_destination(base_url=url, attributes=["email"])
        send(post_events, identify("u1", "m1", traits={"email": "a@x.io"}))
        delivery.flush(destination.pk)

    assert [b["customerProfiles"][0]["attributes"] for b in received] == [{"email": "a@x.io"}, {}]
    event = InboundEvent.objects.get()
    assert event.status == Status.PENDING
    assert event.reason == "retrying: Talon.One answered 503: no"
    assert not RefusedAttribute.objects.exists()


def test_retrying_now_touches_only_that_destinations_waiting_refusals(make_destination):
    # Already due ones keep the time they became due (the admin shows it), and
    # another destination's refusals keep waiting.
    acme, other = make_destination(), make_destination("other")
    now = timezone.now()
    later, earlier = now + timedelta(hours=1), now - timedelta(hours=1)
    for destination, name, retry_at in [
        (acme, "waiting", later),
        (acme, "due", earlier),
        (other, "waiting", later),
    ]:
        RefusedAttribute.objects.create(
            destination=destination,
            name=name,
            message="no such attribute",
            last_seen_at=now,
            retry_at=retry_at,
        )

    refusals.retry_now([acme.pk])

    after = timezone.now()
    retry_at = {(r.destination.slug, r.name): r.retry_at for r in RefusedAttribute.objects.all()}
    assert now <= retry_at[("acme", "waiting")] <= after
    assert retry_at[("acme", "due")] == earlier
    assert retry_at[("other", "waiting")] == later


def test_a_refusal_seen_again_adds_its_events_and_is_renewed_only_there(make_destination, settings):
    acme, other = make_destination(), make_destination("other")
    for destination, name in [(acme, "plan"), (acme, "tier"), (other, "plan"), (other, "tier")]:
        refusals.record(
            destination, name, "first answer", example_value="a", example_event_id=None, events=2
        )
    before = timezone.now()

    refusals.record(
        acme, "plan", "second answer", example_value="b", example_event_id=None, events=3
    )
    refusals.count(acme, {"tier": 4})

    rows = {(r.destination.slug, r.name): r for r in RefusedAttribute.objects.all()}
    plan = rows[("acme", "plan")]
    assert (plan.event_count, plan.message, plan.example_value) == (5, "second answer", "b")
    assert plan.retry_at >= before + settings.REFUSED_ATTRIBUTE_RETRY
    tier = rows[("acme", "tier")]
    assert (tier.event_count, tier.message) == (6, "first answer")
    assert tier.last_seen_at >= before
    for name in ("plan", "tier"):
        untouched = rows[("other", name)]
        assert (untouched.event_count, untouched.message) == (2, "first answer")
        assert untouched.last_seen_at < before
