"""gunicorn in production (docker-compose.yml's web service).

Sync workers: the nginx proxy in front buffers each request whole before
passing it on, so a client that sends its body slowly holds an nginx connection,
not one of these workers. GUNICORN_CMD_ARGS overrides any value here.
"""

import os
import shutil

bind = "0.0.0.0:8000"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
accesslog = "-"


def on_starting(server: object) -> None:
    """Workers count ingest requests in PROMETHEUS_MULTIPROC_DIR (see
    destinations/metrics.py): start from zero, not from a previous run's files."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
