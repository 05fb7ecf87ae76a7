"""The value history (django-auditlog): who changed which row or setting from
what to what; secrets recorded as changed, never with a value; Operators only."""

import json

import pytest
from auditlog.models import LogEntry as ValueChange

from destinations.models import AttributeMapping
from tests.security.conftest import API_KEY, SECRET, change_form_data

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/destinations/destination/{}/change/"
HISTORY_URL = "/admin/auditlog/logentry/"


def test_an_operators_changes_are_recorded_from_what_to_what_with_secrets_hidden(
    login, operator, destination
):
    AttributeMapping.objects.create(destination=destination, name="plan", type="string")
    client = login(operator)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.update(
        {
            "max_requests_per_second": "20",
            "api_key": "tk-rotated-key-0001",
            "attributes-0-type": "number",
            "_save": "Save",
        }
    )

    assert client.post(CHANGE_URL.format(destination.pk), data).status_code == 302

    changes = {
        (change.content_type.model, field): values
        for change in ValueChange.objects.filter(actor=operator)
        for field, values in change.changes_dict.items()
    }
    assert changes[("destination", "max_requests_per_second")] == ["50", "20"]
    assert changes[("destination", "api_key")] == ["[secret]", "[secret]"]
    assert changes[("attributemapping", "type")] == ["string", "number"]
    stored = json.dumps([list(ValueChange.objects.values())], default=str)
    for secret in (API_KEY, SECRET, "tk-rotated-key-0001"):
        assert secret not in stored


def test_operators_read_the_history_and_marketers_do_not(login, operator, marketer, destination):
    destination.max_requests_per_second = 10
    destination.save()

    assert login(operator).get(HISTORY_URL).status_code == 200
    assert login(marketer).get(HISTORY_URL).status_code == 403
