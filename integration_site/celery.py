"""The one Celery app of the project."""

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_site.settings")

app = Celery("integration_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def make_broker_folders(sender: Celery, **kwargs: Any) -> None:
    """The filesystem broker (no REDIS_URL) needs its folders before the first
    message. Run when the configuration is first read, whichever settings module
    is in use (web, worker, tests), not at import: the settings may still be loading."""
    for option in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        path = sender.conf.broker_transport_options.get(option)
        if path:
            os.makedirs(path, exist_ok=True)
