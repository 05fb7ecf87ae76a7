"""Liveness and readiness probes. The broker check is seen to ask a broker: the
filesystem broker the tests run on answers anything, so readiness is checked
against a stand-in Redis server that records the commands it gets."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from integration_site.celery import app

pytestmark = pytest.mark.django_db


@contextmanager
def redis_stand_in(ping_answer: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """A TCP server speaking just enough RESP: PING gets ping_answer, anything
    else +OK. Yields its URL and the commands received."""
    commands: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with connection, connection.makefile("rb") as requests:
                # A command: *<count>, then per argument $<length> and the argument.
                while (line := requests.readline()).startswith(b"*"):
                    args = []
                    for _ in range(int(line[1:])):
                        length = int(requests.readline()[1:])
                        args.append(requests.read(length + 2)[:-2])
                    command = args[0].upper()
                    commands.append(command)
                    connection.sendall(ping_answer if command == b"PING" else b"+OK\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0", commands
    finally:
        server.close()


def test_healthz_answers_while_the_process_runs(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_200_when_database_and_broker_answer(client, monkeypatch):
    with redis_stand_in(b"+PONG\r\n") as (url, commands):
        monkeypatch.setitem(app.conf, "broker_write_url", url)

        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": True, "broker": True}}
    assert b"PING" in commands


def test_readyz_is_503_when_the_broker_refuses(client, monkeypatch):
    with redis_stand_in(b"-LOADING Redis is loading the dataset in memory\r\n") as (url, commands):
        monkeypatch.setitem(app.conf, "broker_write_url", url)

        response = client.get("/readyz")

    assert b"PING" in commands
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": True, "broker": False},
    }


def test_readyz_is_503_when_the_broker_does_not_answer(client, monkeypatch):
    # A real connection attempt to a port nothing listens on (discard).
    monkeypatch.setitem(app.conf, "broker_write_url", "redis://127.0.0.1:9/0")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "broker": False}
