"""Slow clients do not hold the production topology hostage (issue #10, item 3).

A client that announces a body and sends one byte holds a sync gunicorn worker
until gunicorn's timeout (30 s): as many of them as workers, and Segment's next
request waits past its 5 s deadline. In docker-compose.yml nginx buffers every
body whole before it passes the request on, so they hold only nginx connections.
"""

import json
import runpy
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import pytest
import requests

from tests.conftest import API_KEY, SECRET, identify, sign
from tests.e2e.conftest import ROOT
from tests.e2e.production.topology import PUBLIC_HOST, Topology

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WORKERS = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["workers"]
PATH = "/api/v1/segment/shop/"


@pytest.fixture(scope="module")
def shop(topology: Topology) -> Topology:
    topology.manage(
        "create_destination", "--slug", "shop", "--name", "Shop",
        "--base-url", topology.sandbox.base_url, "--api-key", API_KEY,
        "--shared-secret", SECRET, "--attribute", "email",
    )  # fmt: skip
    return topology


@contextmanager
def slow_clients(port: int, count: int) -> Iterator[None]:
    """`count` connections that announce a 1000-byte body and send one byte."""
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {PUBLIC_HOST}\r\nX-Forwarded-Proto: https\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n["
    ).encode()
    with ExitStack() as stack:
        for _ in range(count):
            connection = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
            connection.sendall(head)
        time.sleep(1)  # the server has taken them all in
        yield


def valid_request(port: int, message_id: str, timeout: float) -> requests.Response:
    body = json.dumps(identify("slow-clients-user", message_id)).encode()
    return requests.post(
        f"http://127.0.0.1:{port}{PATH}",
        data=body,
        headers={
            "Host": PUBLIC_HOST,
            "X-Forwarded-Proto": "https",
            "Content-Type": "application/json",
            "X-Signature": sign(body),
        },
        timeout=timeout,
    )


def test_through_the_proxy_a_valid_request_answers_within_a_second(shop):
    proxy = shop.services["proxy"].port

    # Every worker has served a request before: the bound is about slow
    # clients, not a worker's first request (imports, database connection).
    with ThreadPoolExecutor(WORKERS * 2) as pool:
        warm_up = pool.map(
            lambda n: valid_request(proxy, f"warm-up-{n}", timeout=10), range(WORKERS * 2)
        )
        assert all(response.status_code == 200 for response in warm_up)

    with slow_clients(proxy, WORKERS * 4):
        started = time.monotonic()
        response = valid_request(proxy, "proxied-1", timeout=5)
        elapsed = time.monotonic() - started

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert elapsed < 1, f"{elapsed:.2f} s"


def test_without_the_proxy_slow_clients_hold_every_gunicorn_worker(shop):
    """The original failure, reproduced on gunicorn as compose runs it: the
    same slow clients are enough to block the service without the proxy."""
    web = shop.services["web"].port

    with slow_clients(web, WORKERS), pytest.raises(requests.Timeout):
        valid_request(web, "direct-1", timeout=3)
