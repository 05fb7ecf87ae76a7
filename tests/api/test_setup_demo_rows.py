"""`make run` runs setup_demo every time: the demo destination's attribute rows
are created with it, and what a marketer made of them since is kept."""

import io

import pytest
from django.core.management import call_command

from destinations.management.commands.setup_demo import DEMO_ATTRIBUTES
from destinations.models import AttributeMapping, Destination

pytestmark = pytest.mark.django_db


def setup_demo() -> Destination:
    call_command("setup_demo", stdout=io.StringIO())
    return Destination.objects.get(slug="demo")


def rows(destination: Destination) -> set[tuple[str, str]]:
    return set(destination.attributes.values_list("name", "type"))


def test_a_new_demo_destination_gets_the_demo_rows():
    assert rows(setup_demo()) == set(DEMO_ATTRIBUTES)


def test_running_it_again_keeps_the_rows_as_edited():
    destination = setup_demo()
    destination.attributes.filter(name__in=["age", "vip"]).delete()
    destination.attributes.filter(name="plan").update(type="number")
    AttributeMapping.objects.create(destination=destination, name="favouriteColour")
    edited = rows(destination)

    assert rows(setup_demo()) == edited


def test_running_it_again_keeps_a_destination_without_rows_without_rows():
    setup_demo().attributes.all().delete()

    assert rows(setup_demo()) == set()
