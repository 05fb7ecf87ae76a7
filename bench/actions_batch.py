"""Actions batch benchmark: how fast a Webhooks (Actions) batch of 4,000
identifies (Segment's maximum, about 3.6 MB) is answered. Segment gives up
after 5 s, and never retries a refusal.

Starts gunicorn (2 workers) on the configured database (DATABASE_URL, else
SQLite under var/bench/); posts batches one after another, each authenticated
as Actions users configure it (Authorization header; X-Signature over the
first event beside it). Prints the answer times in seconds. Not part of
`make test`.

    python bench/actions_batch.py --batches 10
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import statistics
import time

import requests
from burst import API_KEY, SECRET, free_port, fresh_environment, run, start, wait_until

TARGET_SECONDS = 5.0


def identify(batch: int, index: int) -> dict:
    """An identify as analytics.js sends it through Segment."""
    user = f"{batch}-{index}"
    return {
        "anonymousId": f"507f191e810c19729de860ea-{user}",
        "channel": "browser",
        "context": {
            "ip": "203.0.113.7",
            "library": {"name": "analytics.js", "version": "next-1.72.0"},
            "locale": "de-DE",
            "page": {"path": "/account", "title": "Mein Konto", "url": "https://example.com/a"},
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        },
        "integrations": {},
        "messageId": f"ajs-next-{user}-022bb90cbbac11e48dfcaa07a5b093db",
        "originalTimestamp": "2026-11-20T09:14:55.111Z",
        "receivedAt": "2026-11-20T09:14:55.387Z",
        "sentAt": "2026-11-20T09:14:55.120Z",
        "timestamp": "2026-11-20T09:14:55.378Z",
        "traits": {
            "name": "Peter Gibbons",
            "email": f"peter.{user}@example.com",
            "plan": "premium",
            "logins": 5,
            "address": {"street": "6th St", "city": "San Francisco", "postalCode": "94103"},
        },
        "type": "identify",
        "userId": f"97980cfea0067-{user}",
        "version": 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--events", type=int, default=4000)
    options = parser.parse_args()

    var_dir, env = fresh_environment()
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    run(["manage.py", "create_destination", "--slug", "bench", "--name", "Bench",
         "--base-url", "http://127.0.0.1:9", "--api-key", API_KEY, "--shared-secret", SECRET,
         "--attribute", "email", "--attribute", "plan", "--attribute", "address_city"],
        env)  # fmt: skip
    gunicorn = ["-m", "gunicorn", "integration_site.wsgi", "--bind", f"127.0.0.1:{web_port}",
                "--workers", "2"]  # fmt: skip
    web_process = start("web", gunicorn, env, var_dir)
    seconds, sizes = [], []
    try:
        wait_until(lambda: requests.get(f"{web}/healthz", timeout=1).ok, 30)
        for batch in range(options.batches):
            events = [identify(batch, i) for i in range(options.events)]
            raw = json.dumps(events, separators=(",", ":"), ensure_ascii=False).encode()
            first = json.dumps(events[0], separators=(",", ":"), ensure_ascii=False).encode()
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {SECRET}",
                "X-Signature": hmac.new(SECRET.encode(), first, hashlib.sha1).hexdigest(),
            }
            started = time.perf_counter()
            response = requests.post(f"{web}/api/v1/segment/bench", data=raw, headers=headers,
                                     timeout=60)  # fmt: skip
            seconds.append(time.perf_counter() - started)
            sizes.append(len(raw))
            response.raise_for_status()
            assert response.json()["accepted"] == options.events, response.text
    finally:
        os.killpg(web_process.pid, signal.SIGTERM)
        web_process.wait(timeout=30)

    print(json.dumps({
        "batches": len(seconds),
        "events_per_batch": options.events,
        "batch_mb": round(statistics.mean(sizes) / 1e6, 2),
        "database": env["DATABASE_URL"].split(":", 1)[0],
        "answer_p50_s": round(statistics.median(seconds), 3),
        "answer_max_s": round(max(seconds), 3),
        "target_s": TARGET_SECONDS,
        "events_per_s": round(options.events * len(seconds) / sum(seconds)),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
