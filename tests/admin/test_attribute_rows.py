"""The admin refuses attribute names Talon.One cannot have, and duplicates."""

import pytest
from django.core.exceptions import ValidationError
from django.forms import inlineformset_factory

from destinations.admin import AttributeMappingFormSet
from destinations.models import AttributeMapping, Destination

pytestmark = pytest.mark.django_db

FormSet = inlineformset_factory(
    Destination, AttributeMapping, formset=AttributeMappingFormSet, fields=["name", "type"]
)


def formset(destination, *rows):
    data = {
        "attributes-TOTAL_FORMS": str(len(rows)),
        "attributes-INITIAL_FORMS": "0",
    }
    for i, (name, type_) in enumerate(rows):
        data[f"attributes-{i}-name"] = name
        data[f"attributes-{i}-type"] = type_
    return FormSet(data, instance=destination, prefix="attributes")


def errors(formset):
    return [message for form in formset.forms for message in form.errors.get("name", [])]


@pytest.fixture
def destination(make_destination):
    return make_destination(attributes=())


def test_valid_rows_are_accepted(destination):
    rows = formset(destination, ("email", "string"), ("address_city", "string"),
                   ("lifetime_value", "number"), ("tags", "(list string)"))  # fmt: skip
    assert rows.is_valid(), rows.errors
    rows.save()
    assert destination.attributes.count() == 4


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("1st_order", "must start with an ASCII letter"),
        ("_private", "must start with an ASCII letter"),
        ("address.city", "only ASCII letters, digits and underscores"),
        ("first name", "only ASCII letters, digits and underscores"),
        ("e-mail", "only ASCII letters, digits and underscores"),
        ("prénom", "only ASCII letters, digits and underscores"),
    ],
)
def test_names_talon_one_cannot_have_are_refused_with_the_reason(destination, name, why):
    rows = formset(destination, (name, "string"))

    assert not rows.is_valid()
    assert any(why in message for message in errors(rows)), errors(rows)


@pytest.mark.parametrize("second", ["email", "Email", "EMAIL"])
def test_duplicate_rows_are_refused_also_when_they_differ_only_in_case(destination, second):
    rows = formset(destination, ("email", "string"), (second, "string"))

    assert not rows.is_valid()
    assert any("listed twice" in message for message in errors(rows))


def test_a_row_duplicating_a_saved_one_in_another_case_is_refused(destination):
    AttributeMapping.objects.create(destination=destination, name="email")
    row = AttributeMapping(destination=destination, name="EMAIL")

    with pytest.raises(ValidationError, match="differ only in case"):
        row.full_clean()


def test_types_are_the_talon_one_types(destination):
    rows = formset(destination, ("flag", "(list boolean)"))
    assert not rows.is_valid()
    choices = [value for value, _ in AttributeMapping._meta.get_field("type").choices]
    assert choices == [
        "string", "number", "boolean", "time", "location",
        "(list string)", "(list number)", "(list time)",
    ]  # fmt: skip
