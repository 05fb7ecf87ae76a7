"""The stack's server processes outlive the tests, and each transactional
test's flush creates the content types again: on PostgreSQL with new ids (its
sequences go on). Ids cached by a process in an earlier test would then break
foreign keys (the admin's and auditlog's history), so these processes forget
them before each request and each task. Production never flushes under a
running process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.signals import task_prerun
from django.http import HttpRequest, HttpResponse


def forget_content_types(**_: Any) -> None:
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


def fresh_content_types(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        forget_content_types()
        return get_response(request)

    return middleware


task_prerun.connect(forget_content_types, weak=False)
