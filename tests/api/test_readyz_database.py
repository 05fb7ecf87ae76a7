from types import SimpleNamespace

import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_readyz_is_503_when_the_database_does_not_answer(client, monkeypatch):
    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("destinations.health.connection", SimpleNamespace(cursor=refuse))

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": False, "broker": True}
