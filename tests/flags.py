"""The run's queued-flush flags (services/nudge.py), forgotten between tests: a
flag a test left would keep the next test's nudge from queueing its flush."""

from destinations.services import nudge


def forget_flags() -> None:
    store = nudge.flags()
    if isinstance(store, nudge.RedisFlags):
        keys = list(store.client.scan_iter(f"{store.prefix}*"))
        if keys:
            store.client.delete(*keys)
    elif isinstance(store, nudge.FileFlags):
        for path in store.directory.glob(f"{store.prefix}*"):
            path.unlink(missing_ok=True)
