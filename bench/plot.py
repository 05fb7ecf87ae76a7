"""The benchmark's plot: throughput and latency beside their targets, and delivery
over time for the burst and the scale-out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from bench.report import Figure, number

THROUGHPUT = [
    ("bare_rps", "bare view, requests/s"),
    ("single_ingest_rps", "single-event ingest, requests/s"),
    ("batched_events_per_s", "batched ingest, events/s"),
    ("burst_ingest_events_per_s", "burst ingest (delivering), events/s"),
    ("scale_profiles_per_s_1", "delivery, 1 worker, profiles/s"),
    ("scale_profiles_per_s_2", "delivery, 2 workers, profiles/s"),
    ("scale_profiles_per_s_4", "delivery, 4 workers, profiles/s"),
]


def plot(path: Path, figures: list[Figure], details: dict[str, Any], meta: dict[str, Any]) -> None:
    by_key = {figure.key: figure for figure in figures if figure.value is not None}
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    _throughput(axes[0][0], by_key)
    _latency(axes[0][1], details.get("ingest"), by_key)
    _burst(axes[1][0], details.get("burst"))
    _scale(axes[1][1], details.get("scale"))
    load = ", ".join(f"{value:.1f}" for value in meta["load_average_before"])
    fig.suptitle(f"make bench at {meta['commit'][:10]}, {meta['started_at']}, "
                 f"{meta['cpus']} cores, load average before {load}")  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _throughput(ax: Any, by_key: dict[str, Figure]) -> None:
    shown = [(by_key[key], label) for key, label in THROUGHPUT if key in by_key]
    ax.set_title("Throughput (log scale): green met, orange not; red: target")
    ax.set_xscale("log")
    for y, (figure, _) in enumerate(shown):
        colour = {True: "tab:green", False: "tab:orange"}.get(figure.met, "tab:blue")
        ax.barh(y, figure.value, color=colour)
        ax.annotate(f" {number(figure.value)}", (figure.value, y), va="center", fontsize=8)
        if figure.target:
            ax.vlines(figure.target.bound, y - 0.4, y + 0.4, colors="red", linewidth=2)
    ax.set_yticks(range(len(shown)), [label for _, label in shown], fontsize=8)
    ax.invert_yaxis()


def _latency(ax: Any, ingest: dict[str, Any] | None, by_key: dict[str, Figure]) -> None:
    ax.set_title("Single-event ingest latency by percentile; red: p99 target")
    if not ingest:
        return
    for number_, round_ in enumerate(ingest["rounds"], 1):
        ax.plot(range(101), round_["latency_percentiles_ms"], label=f"round {number_}")
    ax.plot([99], [50], "r_", markersize=20, markeredgewidth=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("percentile")
    ax.set_ylabel("ms")
    if actions := by_key.get("actions_batch_seconds"):
        ax.text(0.02, 0.95, f"Actions batch of 4,000: {actions.value * 1000:,.0f} ms "
                "(target < 1,000 ms)", transform=ax.transAxes, va="top")  # fmt: skip
    ax.legend(loc="upper left", bbox_to_anchor=(0, 0.88))


def _burst(ax: Any, burst: dict[str, Any] | None) -> None:
    ax.set_title("Audience burst: profiles in Talon.One, worker RSS")
    if not burst:
        return
    times, counts = zip(*burst["delivered_series"], strict=True)
    ax.plot(times, counts, label="profiles delivered")
    ax.axvline(burst["last_batch_accepted"], color="grey", linestyle=":",
               label="last batch accepted")  # fmt: skip
    ax.axvline(20, color="red", linestyle="--", label="20 s target")
    ax.set_xlabel("seconds from the first accepted event")
    ax.set_ylabel("profiles")
    ax.legend(loc="upper left")
    if burst["worker_rss_mb_series"]:
        rss = ax.twinx()
        times, mb = zip(*burst["worker_rss_mb_series"], strict=True)
        rss.plot(times, mb, color="tab:purple", label="worker RSS")
        rss.axhline(300, color="tab:purple", linestyle=":", label="300 MB target")
        rss.set_ylabel("MB")
        rss.set_ylim(0, max(350, *mb))
        rss.legend(loc="lower right")


def _scale(ax: Any, scale: dict[str, Any] | None) -> None:
    ax.set_title("Scale-out: profiles in Talon.One, by worker processes")
    if not scale:
        return
    for workers, case in scale["cases"].items():
        times, counts = zip(*case["delivered_series"], strict=True)
        ax.plot(times, counts, label=f"{workers}: {case['profiles_per_second']:,.0f} profiles/s")
    ax.set_xlabel(f"seconds from the workers' start (sandbox +{scale['latency_ms']} ms)")
    ax.set_ylabel("profiles")
    ax.legend(loc="lower right")
