import pytest

from integration_site.celery import app

pytestmark = pytest.mark.django_db


def test_healthz_answers_while_the_process_runs(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_database_and_broker(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": True, "broker": True}}


def test_readyz_is_503_when_the_broker_does_not_answer(client, monkeypatch):
    # A real connection attempt to a port nothing listens on (discard).
    monkeypatch.setitem(app.conf, "broker_write_url", "redis://127.0.0.1:9/0")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "broker": False}
