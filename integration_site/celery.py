"""The one Celery app of the project."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_site.settings")

app = Celery("integration_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The filesystem broker (no REDIS_URL) needs its folders before the first message.
for _folder in ("data_folder_in", "processed_folder", "control_folder"):
    _path = app.conf.broker_transport_options.get(_folder)
    if _path:
        os.makedirs(_path, exist_ok=True)
