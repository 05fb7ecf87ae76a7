"""Load generators on plain sockets: the client must cost far less than the server
it measures (on this machine they share the cores), so a request is one prebuilt
buffer sent on a new connection and read until the server closes it."""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# (started, finished, HTTP status or 0 for no answer), in time.monotonic() seconds:
# the same clock in every process of the machine.
Exchange = tuple[float, float, int]


def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Send one request to 127.0.0.1:port; the answer's status and body (0, b"" if none)."""
    try:
        with socket.socket() as sock:
            sock.settimeout(60)
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return 0, b""
    answer = b"".join(chunks)
    try:
        status = int(answer[9:12])
    except ValueError:
        return 0, b""
    return status, answer.partition(b"\r\n\r\n")[2]


@dataclass(frozen=True)
class Window:
    """What a load run measured between its warm-up and its end."""

    seconds: float
    exchanges: list[Exchange]

    @property
    def per_second(self) -> float:
        return len(self.exchanges) / self.seconds

    @property
    def errors(self) -> int:
        return sum(1 for _, _, status in self.exchanges if status != 200)

    def latencies_ms(self) -> list[float]:
        return [(finished - started) * 1000 for started, finished, _ in self.exchanges]


def in_window(exchanges: list[Exchange], start: float, end: float) -> list[Exchange]:
    """The exchanges that finished within [start, end]."""
    return [item for item in exchanges if start <= item[1] <= end]


def _client(
    port: int, build: Callable[[int], bytes], first: int, step: int, stop_at: float,
    results: multiprocessing.Queue,
) -> None:  # fmt: skip
    done: list[Exchange] = []
    index = first
    while (started := time.monotonic()) < stop_at:
        status, _ = exchange(port, build(index))
        done.append((started, time.monotonic(), status))
        index += step
    results.put(done)


def saturate(
    port: int, build: Callable[[int], bytes], *, clients: int, seconds: float, warmup: float
) -> Window:
    """`clients` processes, each sending build(i) one after another (i unique across
    them) for warmup + seconds; counts what finished after the warm-up."""
    context = multiprocessing.get_context("fork")  # build need not be picklable
    results = context.Queue()
    start = time.monotonic()
    stop_at = start + warmup + seconds
    processes = [
        context.Process(target=_client, args=(port, build, index, clients, stop_at, results))
        for index in range(clients)
    ]
    for process in processes:
        process.start()
    done = [item for _ in processes for item in results.get(timeout=seconds + warmup + 120)]
    for process in processes:
        process.join()
    return Window(seconds, in_window(done, start + warmup, stop_at))


def post_all(port: int, requests: list[bytes], *, threads: int) -> list[tuple[Exchange, bytes]]:
    """Every request, `threads` at a time; each exchange with the answer's body."""

    def send(request: bytes) -> tuple[Exchange, bytes]:
        started = time.monotonic()
        status, body = exchange(port, request)
        return (started, time.monotonic(), status), body

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(send, requests))
