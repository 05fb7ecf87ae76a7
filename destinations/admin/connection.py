"""The destination page's connection test: a button for operators, and a check
after every save they make (a warning only: saving is never blocked)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern

from destinations.admin.common import (
    admin_page,
    back_to_change_page,
    manages_connection,
    object_or_404,
)
from destinations.models import Destination
from destinations.services import connection

SAVED_BUT = "Saved, but the connection test failed. "


class ConnectionTestMixin(admin.ModelAdmin):
    def get_urls(self) -> list[URLPattern]:
        page = admin_page(
            self,
            "<path:object_id>/test-connection/",
            "test_connection",
            self.test_connection_view,
            post_only=True,
        )
        return [page, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {**(extra_context or {}), "can_test_connection": manages_connection(request)}
        return super().change_view(request, object_id, form_url, context)

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not (manages_connection(request) and self.has_view_or_change_permission(request)):
            raise PermissionDenied
        destination = object_or_404(self, request, object_id)
        result = connection.check(destination)
        level = messages.SUCCESS if result.ok else messages.ERROR
        self.message_user(request, result.message, level)
        return back_to_change_page(self, destination)

    def save_model(
        self, request: HttpRequest, obj: Destination, form: ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        if manages_connection(request):
            # After the commit: the request may take Talon.One's timeouts, and no
            # transaction (on SQLite: the database's write lock) waits for it.
            transaction.on_commit(partial(self._check_after_save, request, obj))

    def _check_after_save(self, request: HttpRequest, destination: Destination) -> None:
        result = connection.check(destination)
        if not result.ok:
            self.message_user(request, SAVED_BUT + result.message, messages.WARNING)
