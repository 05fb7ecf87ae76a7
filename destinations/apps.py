from typing import Any

from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    name = "destinations"

    def ready(self) -> None:
        from celery.signals import task_postrun, task_prerun
        from django.core.signals import request_finished
        from django.db.models.signals import post_delete, post_save

        from destinations import history
        from destinations.models import AttributeMapping, Destination, EventMapping, EventProperty
        from destinations.services import ingest_cache
        from integration_site import logging as log_context

        history.register()
        # What ingest keeps of a destination is read again after any change to it.
        for model in (Destination, AttributeMapping, EventMapping, EventProperty):
            for signal in (post_save, post_delete):
                signal.connect(
                    ingest_cache.forget, sender=model, dispatch_uid=f"ingest-cache-{model.__name__}"
                )
        # The log context (request id, destination) of requests and of tasks.
        request_finished.connect(log_context.clear, dispatch_uid="log-context-request")
        task_prerun.connect(task_log_context, dispatch_uid="log-context-task")
        task_postrun.connect(log_context.clear, dispatch_uid="log-context-task-end")


def task_log_context(task_id: str, task: Any, args: tuple[Any, ...], **kwargs: Any) -> None:
    """A flush's lines carry its task id as request id, and its destination's slug."""
    from destinations.models import Destination
    from integration_site import logging as log_context

    log_context.request_id.set(task_id)
    slug = ""
    if task.name == "destinations.tasks.flush_destination" and args:
        slug = Destination.objects.filter(pk=args[0]).values_list("slug", flat=True).first() or ""
    log_context.destination.set(slug)
