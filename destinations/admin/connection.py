"""The destination page's connection test: a button for operators, and a check
after every save they make (a warning only: saving is never blocked)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from destinations.admin.common import manages_connection
from destinations.models import Destination
from destinations.services import connection

SAVED_BUT = "Saved, but the connection test failed. "


class ConnectionTestMixin(admin.ModelAdmin):
    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}_test_connection"
        view = self.admin_site.admin_view(require_POST(self.test_connection_view))
        return [path("<path:object_id>/test-connection/", view, name=name), *super().get_urls()]

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
        destination = self.get_object(request, object_id)
        if destination is None:
            raise Http404
        result = connection.check(destination)
        level = messages.SUCCESS if result.ok else messages.ERROR
        self.message_user(request, result.message, level)
        opts = self.model._meta
        return HttpResponseRedirect(
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[destination.pk],
                current_app=self.admin_site.name,
            )
        )

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
