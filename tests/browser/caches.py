"""The stack's server processes outlive the tests; what they cached in one test
must not reach the next. Each test's flush creates the content types again (on
PostgreSQL with new ids: its sequences go on), so ids cached earlier would break
foreign keys (the admin's and auditlog's history); and the cache (the
dashboard's counts) would show an earlier test's events.

Before each test the fixture writes a new generation to a file; on their next
request or task, the processes see it and forget both, as if restarted."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery.signals import task_prerun
from django.http import HttpRequest, HttpResponse

GENERATION_FILE = "BROWSER_TESTS_GENERATION_FILE"
_seen: dict[str, str] = {}


def forget_after_a_new_test(**_: Any) -> None:
    path = os.environ.get(GENERATION_FILE)
    if not path:
        return
    generation = Path(path).read_text()
    if _seen.get("generation") != generation:
        from django.contrib.contenttypes.models import ContentType
        from django.core.cache import cache

        ContentType.objects.clear_cache()
        cache.clear()
        _seen["generation"] = generation


def fresh_caches(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        forget_after_a_new_test()
        return get_response(request)

    return middleware


task_prerun.connect(forget_after_a_new_test, weak=False)
