"""The benchmark harness's pure parts (bench/): targets, the table, the figures it
derives, the requests it sends and the URLs it serves. No processes, no timing."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import pytest
from django.test import Client, override_settings
from django.urls import resolve

from bench import payloads
from bench.load import Window, in_window
from bench.report import Figure, Target, number, percentile, table
from bench.run import parse, steady_rate
from bench.stack import WorkerShape, production_worker, rss_bytes, with_database


@pytest.mark.parametrize(
    ("op", "bound", "value", "met"),
    [(">=", 10, 10, True), (">=", 10, 9.9, False), ("<", 50, 49.9, True), ("<", 50, 50, False),
     ("<=", 150, 150, True), ("==", 0, 0, True), ("==", 0, 1, False)],
)  # fmt: skip
def test_a_target_is_met_by_its_comparison(op, bound, value, met):
    assert Target(op, bound).met(value) is met


def test_a_figure_says_met_not_met_error_or_nothing():
    assert Figure("s", "f", "k", 5, target=Target("<", 10)).verdict() == "met"
    assert Figure("s", "f", "k", 15, target=Target("<", 10)).verdict() == "NOT MET"
    assert Figure("s", "f", "k", None, target=Target("<", 10)).verdict() == "ERROR"
    assert Figure("s", "f", "k", 15).verdict() == ""


@pytest.mark.parametrize(
    ("value", "text"),
    [(20000, "20,000"), (7625.4, "7,625"), (43.25, "43.25"), (2.5, "2.5"), (3.0, "3"),
     (0, "0"), (0.004, "0")],
)  # fmt: skip
def test_numbers_are_shown_with_separators_and_few_decimals(value, text):
    assert number(value) == text


def test_percentiles_interpolate():
    values = [float(v) for v in range(1, 101)]  # 1 .. 100
    assert percentile(values, 0) == 1
    assert percentile(values, 1) == 100
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile([3.0], 0.99) == 3


def test_the_table_has_each_figure_beside_its_target_and_the_notes_below():
    figures = [
        Figure("1 bare view", "requests/s", "bare", 8000, "req/s", note="median of 3"),
        Figure("2 ingest", "requests/s", "rps", 1500, "req/s",
               Target(">=", 2000, "0.25 x bare view")),
        Figure("3 batched", "did not finish", "err", None, note="TimeoutError"),
    ]  # fmt: skip
    lines = table(figures).splitlines()
    assert lines[0].split("|")[0].strip() == "Scenario"
    assert [cell.strip() for cell in lines[3].split("|")] == [
        "2 ingest", "requests/s", "1,500 req/s", ">= 2,000 req/s (0.25 x bare view)", "NOT MET"
    ]  # fmt: skip
    assert lines[4].split("|")[-1].strip() == "ERROR"
    assert lines[-2:] == ["- 1 bare view, requests/s: median of 3",
                          "- 3 batched, did not finish: TimeoutError"]  # fmt: skip
    bars = [[i for i, char in enumerate(line) if char in "|+"] for line in lines[:5]]
    assert all(positions == bars[0] for positions in bars)  # the columns line up


def test_a_figure_in_json_keeps_its_target_and_verdict():
    data = Figure("4 burst", "delivered", "burst_s", 25.0, "s", Target("<", 20)).to_json()
    assert data["met"] is False
    assert data["target"] == {"op": "<", "bound": 20, "label": "", "text": "< 20 s"}
    json.dumps(data)


def test_the_steady_rate_counts_what_arrived_after_the_first_profile_seen():
    series = [(10.0, 0), (11.0, 0), (12.0, 1000), (13.0, 1000), (14.0, 3000), (16.0, 5000)]
    assert steady_rate(series) == 1000  # 4,000 profiles in the 4 s after the first 1,000


def test_a_load_window_counts_what_finished_in_it():
    exchanges = [(0.5, 0.9, 200), (0.9, 1.1, 200), (1.5, 1.7, 503), (2.9, 3.1, 200)]
    window = Window(2.0, in_window(exchanges, 1.0, 3.0))
    assert window.per_second == 1
    assert window.errors == 1
    assert window.latencies_ms() == pytest.approx([200, 200])


def test_a_database_url_is_the_same_server_with_another_database():
    url = "postgres://postgres:pw@127.0.0.1:5432/postgres?sslmode=disable"
    assert with_database(url, "talon_bench_1_burst") == (
        "postgres://postgres:pw@127.0.0.1:5432/talon_bench_1_burst?sslmode=disable"
    )


COMPOSE = """
x-app: &app
  environment:
    DELIVERY_SHARDS: ${DELIVERY_SHARDS:-4}
services:
  worker:
    <<: *app
    command: ["celery", "-A", "integration_site", "worker", "--pool", "threads",
              "--concurrency", "4"]
"""


def test_the_burst_runs_the_worker_as_compose_runs_it():
    assert production_worker(COMPOSE) == WorkerShape("threads", 4, 4)
    bare = "services:\n  worker:\n    command: [celery, worker, --concurrency, 3]\n"
    assert production_worker(bare) == WorkerShape("prefork", 3, 1)


def test_memory_is_read_from_proc_and_nothing_for_a_process_gone():
    assert rss_bytes(os.getpid()) > 1024 * 1024
    assert rss_bytes(2**22 + 1) == 0  # above Linux's largest pid


def test_requests_are_signed_as_segment_signs_them():
    head, _, body = payloads.signed_single("7").partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert head.startswith(f"POST {payloads.INGEST_PATH} HTTP/1.1".encode())
    assert int(headers["Content-Length"]) == len(body)
    assert (
        headers["X-Signature"] == hmac.new(payloads.SECRET.encode(), body, hashlib.sha1).hexdigest()
    )
    assert json.loads(body)["messageId"] == "single-7"


def test_an_actions_batch_carries_the_secret_and_a_signature_of_its_first_event():
    events = [payloads.actions_identify(str(i)) for i in range(3)]
    head, _, body = payloads.actions_batch(events).partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    first = json.dumps(events[0], separators=(",", ":"), ensure_ascii=False).encode()
    assert headers["Authorization"] == f"Bearer {payloads.SECRET}"
    assert headers["X-Signature"] == payloads.signature(first)
    assert json.loads(body) == events


def test_the_options_name_known_scenarios_only():
    assert parse(["--only", "burst, scale", "--workers", "1,3"]).workers == [1, 3]
    with pytest.raises(SystemExit):
        parse(["--only", "burst,nonsense"])


@override_settings(ROOT_URLCONF="bench.urls")
def test_the_bench_urls_add_a_bare_view_and_keep_the_products():
    assert Client().get(payloads.BARE_PATH).content == b"ok"
    assert resolve(payloads.INGEST_PATH, urlconf="bench.urls").url_name == "segment-ingest"
