"""The destination page's mapping preview: paste a Segment event (or pick one
received) and see the Talon.One requests it would become, and every note.
Nothing is stored or sent; only "Ask Talon.One (dry run)" sends, with dry=true."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern

from destinations.admin.common import VIEW_EVENTS, admin_page, object_or_404
from destinations.models import Destination
from destinations.selectors.preview import received_event, recent_events
from destinations.services import preview

EXAMPLE = {
    "type": "identify",
    "userId": "user-1",
    "traits": {"email": "ada@example.com", "address": {"city": "Berlin"}},
}


class PreviewForm(forms.Form):
    event = forms.CharField(
        label="Segment event (JSON)",
        widget=forms.Textarea(attrs={"rows": 14, "cols": 80, "spellcheck": "false"}),
        help_text="One event as Segment sends it, or an array of up to "
        f"{preview.MAX_EVENTS}. Nothing is stored or sent.",
    )


class PreviewMixin(admin.ModelAdmin):
    def get_urls(self) -> list[URLPattern]:
        page = admin_page(self, "<path:object_id>/preview/", "preview", self.preview_view)
        return [page, *super().get_urls()]

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        destination = object_or_404(self, request, object_id)
        if not self.has_view_permission(request, destination):
            raise PermissionDenied
        can_pick = request.user.has_perm(VIEW_EVENTS)
        can_ask = self.has_change_permission(request, destination)
        if request.method == "POST":
            form = PreviewForm(request.POST)
            text = form.cleaned_data["event"] if form.is_valid() else ""
        else:
            picked = _picked(request, destination) if can_pick else None
            text = json.dumps(picked, indent=2, ensure_ascii=False) if picked is not None else ""
            form = PreviewForm(initial={"event": text or json.dumps(EXAMPLE, indent=2)})
        result = preview.preview(destination, text) if text else None
        dry_run = None
        if (
            result is not None
            and request.method == "POST"
            and "dry_run" in request.POST
            and can_ask
            and (row := result.profile_update) is not None
        ):
            dry_run = preview.ask_talon_one(destination, row)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": destination,
            "title": f"Preview an event: {destination.name}",
            "form": form,
            "result": result,
            "dry_run": dry_run,
            "can_ask": can_ask,
            "recent": recent_events(destination) if can_pick else [],
        }
        return TemplateResponse(request, "destinations/preview.html", context)


def _picked(request: HttpRequest, destination: Destination) -> object | None:
    """The payload of the received event asked for with ?event=<id>, if it is this destination's."""
    event_id = request.GET.get("event", "")
    if not event_id.isdigit():
        return None
    event = received_event(destination, int(event_id))
    return None if event is None else event.payload
