"""Every scenario of the performance issue in one run, one table of figures beside
their targets, JSON and a plot (`make bench`; `python -m bench.run --help`).

1-3 ingest (one gunicorn with 2 sync workers, no Celery worker): a bare Django view
    and single signed identifies, interleaved rounds (medians); 1,000-event batches;
    4,000-event Webhooks (Actions) batches.
4, 6 the audience burst, the worker delivering while events arrive, its memory
    sampled; then the stack stops gracefully and the database must be settled.
5   scale-out: a burst ingested first, then delivered by 1, 2, 4 worker processes
    against a sandbox with added latency, DELIVERY_SHARDS = worker processes.

A scenario that fails is reported as such and the others still run; the exit status
is 1 when one failed or a check of correctness (events left pending, parallel
requests for a profile, errors answered) did not hold, whatever the speed targets.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import payloads
from bench.load import post_all, saturate
from bench.report import Figure, Target, median, percentile, table, write_json
from bench.stack import ROOT, RssSampler, Stack, WorkerShape, production_worker, wait_until

MB = 1024 * 1024
BURST_SIZE = 100_000  # the audience; its targets are set for it


class DeliveryWatcher(threading.Thread):
    """Polls the sandbox: (time.monotonic(), profiles stored) until `total` are."""

    def __init__(self, stack: Stack, total: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.stack, self.total, self.interval = stack, total, interval
        self.series: list[tuple[float, int]] = []
        self.done = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            profiles = self.stack.sandbox.stats()["profiles"]
            self.series.append((time.monotonic(), profiles))
            if profiles >= self.total:
                self.done.set()
                return
            self._stop_event.wait(self.interval)

    def wait(self, timeout: float) -> float:
        """When the last profile was seen; TimeoutError if not within `timeout`."""
        if not self.done.wait(timeout):
            self._stop_event.set()
            seen = self.series[-1][1] if self.series else 0
            raise TimeoutError(f"{seen:,} of {self.total:,} profiles after {timeout:.0f} s")
        return self.series[-1][0]


def steady_rate(series: list[tuple[float, int]]) -> float:
    """Profiles a second between the first profile seen and the last: excludes the
    workers' start, counts only what arrived after the first observation."""
    delivering = [(t, count) for t, count in series if count > 0]
    (start, first), (end, last) = delivering[0], delivering[-1]
    return (last - first) / (end - start) if end > start else float("nan")


def settle(stack: Stack, database: str, timeout: float) -> int:
    """Waits until no event is pending (at most `timeout` s); how many still are."""
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not stack.statuses(database).get("pending"), timeout, 0.5)
    return stack.statuses(database).get("pending", 0)


def burst_requests(profiles: int, batch: int, prefix: str) -> list[bytes]:
    users = [f"{prefix}{i}" for i in range(profiles)]
    return [
        payloads.signed_batch([payloads.audience_identify(user) for user in users[i : i + batch]])
        for i in range(0, profiles, batch)
    ]


def check_answers(answers: list[tuple[tuple[float, float, int], bytes]]) -> None:
    refused = [(status, body[:200]) for (_, _, status), body in answers if status != 200]
    if refused:
        raise RuntimeError(f"{len(refused)} batches not accepted, first: {refused[0]}")


# Scenarios 1-3 -----------------------------------------------------------------------


def ingest(stack: Stack, options: argparse.Namespace, details: dict[str, Any]) -> list[Figure]:
    database = stack.scenario_database("ingest")
    web, port = stack.web("ingest-web", stack.environment(database))
    bare_request = payloads.get(payloads.BARE_PATH)

    def bare(_: int) -> bytes:
        return bare_request

    rounds = []
    for number in range(options.rounds):

        def single(index: int, number: int = number) -> bytes:
            return payloads.signed_single(f"{number}-{index}")

        load = {"clients": options.clients, "seconds": options.seconds, "warmup": options.warmup}
        baseline = saturate(port, bare, **load)
        events = saturate(port, single, **load)
        latencies = events.latencies_ms()
        rounds.append({
            "bare_rps": baseline.per_second, "bare_errors": baseline.errors,
            "ingest_rps": events.per_second, "ingest_errors": events.errors,
            **{f"p{share}_ms": percentile(latencies, share / 100) for share in (50, 90, 99)},
            "max_ms": max(latencies),
            "latency_percentiles_ms": [percentile(latencies, p / 100) for p in range(101)],
        })  # fmt: skip

    batched = []
    for number in range(options.rounds):
        requests = burst_requests(options.batches * 1000, 1000, f"batched{number}-")
        answers = post_all(port, requests, threads=2)
        check_answers(answers)
        seconds = max(e[1] for e, _ in answers) - min(e[0] for e, _ in answers)
        batched.append(options.batches * 1000 / seconds)

    actions = []
    for number in range(options.actions):
        request = payloads.actions_batch(
            [payloads.actions_identify(f"{number}-{i}") for i in range(4000)]
        )
        [(exchange, body)] = post_all(port, [request], threads=1)
        check_answers([(exchange, body)])
        actions.append({"seconds": exchange[1] - exchange[0], "bytes": len(request)})
    stack.stop(web)

    bare_rps = median([r["bare_rps"] for r in rounds])
    errors = sum(r["bare_errors"] + r["ingest_errors"] for r in rounds)
    details["ingest"] = {"rounds": rounds, "batched_events_per_second": batched,
                         "actions": actions, "statuses": stack.statuses(database)}  # fmt: skip
    mb = median([a["bytes"] for a in actions]) / 1e6
    return [
        Figure("1 bare view", "requests/s", "bare_rps", bare_rps, "req/s",
               note=f"1 and 2: the median of {options.rounds} rounds, each {options.seconds:g} s "
               f"of the bare view then of ingest, {options.clients} clients, 2 sync workers"),
        Figure("2 single-event ingest", "requests/s", "single_ingest_rps",
               median([r["ingest_rps"] for r in rounds]), "req/s",
               Target(">=", round(0.25 * bare_rps), "0.25 x bare view")),
        Figure("2 single-event ingest", "p50 latency", "single_ingest_p50_ms",
               median([r["p50_ms"] for r in rounds]), "ms"),
        Figure("2 single-event ingest", "p99 latency", "single_ingest_p99_ms",
               median([r["p99_ms"] for r in rounds]), "ms", Target("<", 50)),
        Figure("2 single-event ingest", "answers other than 200", "ingest_errors", errors, "",
               Target("==", 0)),
        Figure("3 batched ingest", "events/s, 1,000-event batches", "batched_events_per_s",
               median(batched), "events/s", Target(">=", 20_000),
               note=f"the median of {options.rounds} runs, each {options.batches} batches "
               "posted 2 at a time"),
        Figure("3 batched ingest", f"Actions batch of 4,000 ({mb:.1f} MB), answered in",
               "actions_batch_seconds", median([a["seconds"] for a in actions]), "s",
               Target("<", 1), note=f"the median of {options.actions} batches; the slowest "
               f"{max(a['seconds'] for a in actions):.2f} s"),
    ]  # fmt: skip


# Scenarios 4 and 6 -------------------------------------------------------------------


def burst_run(stack: Stack, options: argparse.Namespace, run: int) -> dict[str, Any]:
    profiles, shape = options.profiles, options.worker
    database = stack.scenario_database(f"burst{run}")
    env = stack.environment(database, DELIVERY_SHARDS=str(shape.shards))
    stack.sandbox.reset()
    requests = burst_requests(profiles, 1000, "")
    web, port = stack.web(f"burst{run}-web", env)
    worker = stack.worker(f"burst{run}-worker", env, shape.pool, shape.concurrency)
    wait_until(lambda: stack.consuming(env), timeout=60)
    beat = stack.beat(f"burst{run}-beat", env)
    sampler, watcher = RssSampler(worker.pid), DeliveryWatcher(stack, profiles)
    sampler.start()
    watcher.start()
    started = time.monotonic()
    answers = post_all(port, requests, threads=2)
    ingested = time.monotonic()
    check_answers(answers)
    first = min(e[1] for e, _ in answers)  # the first accepted event
    delivered = watcher.wait(timeout=max(60, profiles / 500))
    pending_before_stop = settle(stack, database, options.settle_seconds)
    sampler.stop()
    graceful = stack.stop(worker, timeout=90)
    stack.stop(beat)
    stack.stop(web)
    return {
        "ingest_events_per_second": profiles / (ingested - started),
        "delivery_seconds": delivered - first, "last_batch_accepted": ingested - first,
        "pending_before_stop": pending_before_stop, "worker_stopped_by_itself": graceful,
        "statuses_after_stop": stack.statuses(database), "sandbox": stack.sandbox.stats(),
        "worker_rss_peak_mb": max(rss for _, rss in sampler.samples) / MB,
        "delivered_series": [(t - first, count) for t, count in watcher.series],
        "worker_rss_mb_series": [(t - first, rss / MB) for t, rss in sampler.samples],
    }  # fmt: skip


def burst(stack: Stack, options: argparse.Namespace, details: dict[str, Any]) -> list[Figure]:
    profiles, shape = options.profiles, options.worker
    runs = [burst_run(stack, options, run) for run in range(options.burst_runs)]
    typical = sorted(runs, key=lambda run: run["delivery_seconds"])[len(runs) // 2]
    details["burst"] = {"profiles": profiles, "worker": vars(shape), **typical,
                        "runs": runs}  # fmt: skip
    scenario = f"4 audience burst ({profiles:,})"
    for_size = "" if profiles == BURST_SIZE else f"set for {BURST_SIZE:,}"
    pending = sum(run["statuses_after_stop"].get("pending", 0) for run in runs)
    killed = sum(not run["worker_stopped_by_itself"] for run in runs)
    of_runs = f"the median of {len(runs)} runs" if len(runs) > 1 else "one run"
    return [
        Figure(scenario, "ingest, worker delivering", "burst_ingest_events_per_s",
               median([run["ingest_events_per_second"] for run in runs]), "events/s",
               note=f"{of_runs}; the plot shows the median run"),
        Figure(scenario, "delivered, from the first accepted event", "burst_delivery_seconds",
               typical["delivery_seconds"], "s", Target("<", 20, for_size),
               note=", ".join(f"{run['delivery_seconds']:.1f}" for run in runs) + " s"),
        Figure(scenario, "requests to Talon.One (most of a run)", "burst_talon_requests",
               max(run["sandbox"]["requests"] for run in runs), "",
               Target("<=", 150, "") if not for_size else Target(
                   "<=", math.ceil(1.5 * profiles / 1000) + shape.shards,
                   "1.5 per 1,000 profiles, 1 more per shard")),
        Figure(scenario, "events pending after a graceful stop", "burst_pending_after_stop",
               pending, "", Target("==", 0),
               note=f"{sum(run['pending_before_stop'] for run in runs)} pending after waiting "
               f"up to {options.settle_seconds:g} s; the worker stopped by itself on SIGTERM "
               + ("every time" if not killed else f"except {killed} times (killed)")),
        Figure(scenario, "parallel requests for a profile (409)", "burst_parallel_conflicts",
               sum(run["sandbox"]["parallel_conflicts"] for run in runs), "", Target("==", 0)),
        Figure("6 memory", "worker RSS, its processes summed (peak in the burst)",
               "worker_rss_mb", max(run["worker_rss_peak_mb"] for run in runs), "MB",
               Target("<", 300),
               note=f"worker --pool {shape.pool} --concurrency {shape.concurrency}, "
               f"DELIVERY_SHARDS={shape.shards} (docker-compose.yml's), beat apart"),
    ]  # fmt: skip


# Scenario 5 --------------------------------------------------------------------------


def scale_case(stack: Stack, options: argparse.Namespace, workers: int, run: int) -> dict[str, Any]:
    profiles = options.scale_profiles
    database = stack.scenario_database(f"scale{workers}_{run}")
    stack.set_rate(database, options.scale_rate)
    env = stack.environment(database, DELIVERY_SHARDS=str(workers))
    stack.sandbox.reset()
    stack.sandbox.set_faults(latency_ms=options.latency_ms)
    web, port = stack.web(f"scale{workers}_{run}-web", env)
    check_answers(post_all(port, burst_requests(profiles, 1000, f"s{workers}-"), threads=2))
    stack.stop(web)
    watcher = DeliveryWatcher(stack, profiles)
    beat = stack.beat(f"scale{workers}_{run}-beat", env)
    started = time.monotonic()
    processes = [stack.worker(f"scale{workers}_{run}-worker{i}", env, options.worker.pool, 1)
                 for i in range(workers)]  # fmt: skip
    watcher.start()
    delivered = watcher.wait(timeout=max(60, profiles / 200))
    pending = settle(stack, database, options.settle_seconds)
    graceful = all([stack.stop(process, timeout=90) for process in processes])
    stack.stop(beat)
    stats = stack.sandbox.stats()
    return {
        "profiles_per_second": steady_rate(watcher.series),
        "seconds_from_start": delivered - started, "pending_after_settle": pending,
        "pending_after_stop": stack.statuses(database).get("pending", 0),
        "workers_stopped_by_themselves": graceful, "sandbox": stats,
        "delivered_series": [(t - started, count) for t, count in watcher.series],
    }  # fmt: skip


def scale(stack: Stack, options: argparse.Namespace, details: dict[str, Any]) -> list[Figure]:
    cases = {}
    for workers in options.workers:
        runs = [scale_case(stack, options, workers, run) for run in range(options.scale_runs)]
        runs.sort(key=lambda run: run["profiles_per_second"])
        cases[workers] = {**runs[len(runs) // 2], "runs": runs}  # the median run
    details["scale"] = {"profiles": options.scale_profiles, "latency_ms": options.latency_ms,
                        "rate": options.scale_rate, "cases": cases}  # fmt: skip
    scenario = f"5 scale-out ({options.scale_profiles:,}, +{options.latency_ms} ms)"
    one = cases.get(1, {}).get("profiles_per_second")
    if one is not None and not math.isfinite(one):  # all delivered between two looks
        one = None
    every_run = [run for case in cases.values() for run in case["runs"]]
    figures = []
    for workers, case in cases.items():
        rate = case["profiles_per_second"]
        target = Target(">=", round(1.2 * one), "1.2 x 1 worker") if one and workers > 1 else None
        runs = ", ".join(f"{run['profiles_per_second']:,.0f}" for run in case["runs"])
        ratio = f"; {rate / one:.2f} x 1 worker" if one and workers > 1 else ""
        figures.append(Figure(
            scenario, f"profiles/s, {workers} worker{'s' if workers > 1 else ''}",
            f"scale_profiles_per_s_{workers}", rate, "profiles/s", target,
            note=f"runs: {runs}{ratio}; the median run delivered everything "
            f"{case['seconds_from_start']:.1f} s after the workers' start",
        ))  # fmt: skip
    figures.append(
        Figure(
            scenario,
            "parallel requests for a profile (409)",
            "scale_parallel_conflicts",
            sum(run["sandbox"]["parallel_conflicts"] for run in every_run),
            "",
            Target("==", 0),
        )
    )
    figures.append(
        Figure(
            scenario,
            "events pending after a graceful stop",
            "scale_pending_after_stop",
            sum(run["pending_after_stop"] for run in every_run),
            "",
            Target("==", 0),
        )
    )
    return figures  # fmt: skip


# The run -----------------------------------------------------------------------------

SCENARIOS: dict[str, tuple[str, Callable[..., list[Figure]]]] = {
    "ingest": ("1-3 ingest", ingest),
    "burst": ("4 audience burst, 6 memory", burst),
    "scale": ("5 scale-out", scale),
}


def commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip()

    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD") or "unknown", "uncommitted_changes": bool(changes)}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--profiles", type=int, default=BURST_SIZE, help="audience burst size")
    parser.add_argument(
        "--burst-shards",
        type=int,
        help="the burst's DELIVERY_SHARDS and worker concurrency (default: docker-compose.yml's)",
    )
    parser.add_argument("--pool", help="the workers' pool (default: docker-compose.yml's)")
    parser.add_argument("--burst-runs", type=int, default=3, help="bursts (median)")
    parser.add_argument("--scale-profiles", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4", help="scale-out worker processes")
    parser.add_argument("--scale-runs", type=int, default=3, help="runs of each (median)")
    parser.add_argument("--latency-ms", type=int, default=20, help="sandbox latency, scale-out")
    parser.add_argument(
        "--scale-rate",
        type=int,
        default=1000,
        help="the destination's requests/s in the scale-out (shared by shards)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of ingest measurements")
    parser.add_argument("--seconds", type=float, default=5, help="length of a load round")
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--clients", type=int, default=4, help="concurrent single-event clients")
    parser.add_argument("--batches", type=int, default=20, help="1,000-event batches a round")
    parser.add_argument("--actions", type=int, default=5, help="4,000-event Actions batches")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=60,
        help="how long to wait for no pending event before stopping",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "bench",
        help="where results.json and results.png go",
    )
    options = parser.parse_args(argv)
    options.only = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = set(options.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    options.workers = [int(count) for count in options.workers.split(",")]
    worker = production_worker((ROOT / "docker-compose.yml").read_text())
    options.worker = WorkerShape(
        options.pool or worker.pool,
        options.burst_shards or worker.concurrency,
        options.burst_shards or worker.shards,
    )
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    began = time.monotonic()
    meta = {**commit(), "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "load_average_before": os.getloadavg(),
            "options": {key: str(value) for key, value in vars(options).items()}}  # fmt: skip
    stack = Stack(ROOT / "var" / "bench" / f"run-{os.getpid()}")
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    try:
        stack.prepare()
        for name in options.only:
            label, scenario = SCENARIOS[name]
            print(f"[{time.monotonic() - began:5.0f} s] {label} ...", flush=True)
            try:
                figures += scenario(stack, options, details)
            except Exception as exc:  # report it, run the others
                (stack.log_dir / f"{name}-error.txt").write_text(traceback.format_exc())
                figures.append(Figure(label, "did not finish", f"{name}_error", None,
                                      note=f"{type(exc).__name__}: {exc}"))  # fmt: skip
                for process in list(stack.processes):
                    stack.stop(process, timeout=10)
    finally:
        stack.close()
    meta["seconds"] = time.monotonic() - began
    meta["load_average_after"] = os.getloadavg()
    print()
    print(table(figures))
    print("\nload average before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(
        *meta["load_average_before"], *meta["load_average_after"]))  # fmt: skip
    write_json(options.out / "results.json", figures, meta, details)
    from bench.plot import plot  # matplotlib loads in a second or two: only now

    plot(options.out / "results.png", figures, details, meta)
    print(f"\n{options.out / 'results.json'}, {options.out / 'results.png'}; "
          f"logs in {stack.log_dir}; {meta['seconds']:.0f} s")  # fmt: skip
    failed = any(f.value is None or (f.met is False and f.target and f.target.op == "==")
                 for f in figures)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
