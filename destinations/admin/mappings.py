"""Track event mappings and Talon.One audiences."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from destinations.admin.common import (
    RoleAwareAdmin,
)
from destinations.models import (
    EventMapping,
    EventProperty,
    TalonAudience,
)


class EventPropertyInline(admin.TabularInline):
    model = EventProperty
    extra = 1
    fields = ["name", "type"]


@admin.register(EventMapping)
class EventMappingAdmin(RoleAwareAdmin):
    """A Segment track event forwarded as a Talon.One custom event, and the
    properties sent as its attributes (marketers edit these like attribute rows)."""

    inlines = [EventPropertyInline]
    list_display = ["segment_event", "talon_event_type", "destination"]
    list_filter = ["destination"]
    search_fields = ["segment_event", "talon_event_type"]
    fields = ["destination", "segment_event", "talon_event_type"]


@admin.register(TalonAudience)
class TalonAudienceAdmin(RoleAwareAdmin):
    """Engage audiences created as Talon.One audiences. Operators may set the
    Talon.One id of one created elsewhere (Talon.One then answers 409)."""

    list_display = ["key", "destination", "talon_id", "members_added", "members_removed"]
    list_filter = ["destination"]
    search_fields = ["key"]
    fields = [
        "destination",
        "key",
        "computation_id",
        "talon_id",
        "members_added",
        "members_removed",
        "created_at",
    ]
    readonly_fields = [f for f in fields if f != "talon_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
