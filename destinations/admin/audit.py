"""The audit log: events received, attempts sent, admin changes, refusals."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from destinations.admin.common import (
    ReadOnlyAdmin,
    cut,
    manages_connection,
    pretty,
)
from destinations.models import (
    DeliveryAttempt,
    InboundEvent,
    RefusedAttribute,
)
from destinations.services import delivery


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    # The reason next to the status: in the failed list it is what an operator reads.
    list_display = [
        "received_at",
        "user_id",
        "type",
        "status",
        "reason_short",
        "attempts",
        "destination_slug",
    ]
    list_filter = ["status", "type", "destination"]
    search_fields = ["user_id", "message_id"]
    date_hierarchy = "received_at"
    actions = ["redeliver"]
    list_select_related = ["destination"]
    fields = [
        "destination",
        "message_id",
        "type",
        "user_id",
        "timestamp",
        "received_at",
        "request_id",
        "status",
        "reason",
        "attempts",
        "queued_at",
        "next_attempt_at",
        "delivered_at",
        "attributes_pretty",
        "notes_pretty",
        "payload_pretty",
        "attempt_links",
    ]
    readonly_fields = fields

    @admin.display(description="reason")
    def reason_short(self, obj: InboundEvent) -> str:
        return obj.reason[:200]

    @admin.display(description="destination", ordering="destination__slug")
    def destination_slug(self, obj: InboundEvent) -> str:
        return obj.destination.slug

    @admin.display(description="attributes sent")
    def attributes_pretty(self, obj: InboundEvent) -> SafeString:
        return pretty(obj.attributes)

    @admin.display(description="mapping notes")
    def notes_pretty(self, obj: InboundEvent) -> SafeString:
        return pretty(obj.notes)

    @admin.display(description="event as received")
    def payload_pretty(self, obj: InboundEvent) -> SafeString:
        return pretty(obj.payload)

    @admin.display(description="delivery attempts")
    def attempt_links(self, obj: InboundEvent) -> SafeString | str:
        if not obj.attempts:
            return "none yet"
        url = reverse("admin:destinations_deliveryattempt_changelist")
        return format_html('<a href="{}?events__id__exact={}">see attempts</a>', url, obj.pk)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The link from an attempt to its source events.
        return lookup == "delivery_attempts__id__exact" or super().lookup_allowed(
            lookup, value, request
        )

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("destinations.redeliver_inboundevent")

    @admin.action(description="Redeliver selected events", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[InboundEvent]) -> None:
        count = delivery.redeliver(queryset)
        self.message_user(request, f"{count} event(s) queued for redelivery.", messages.SUCCESS)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    """The request URL holds the destination's base URL: only operators see it whole."""

    list_display = [
        "created_at",
        "profiles",
        "response_status",
        "outcome",
        "error_short",
        "duration_ms",
        "attempt_number",
        "destination_slug",
    ]
    list_filter = ["outcome", "response_status", "destination"]
    search_fields = ["integration_id"]
    hidden_from_marketers = frozenset({"url"})  # they see its path only
    date_hierarchy = "created_at"
    list_select_related = ["destination"]
    fields = [
        "created_at",
        "destination",
        "integration_id",
        "profile_count",
        "method",
        "url",
        "attempt_number",
        "outcome",
        "response_status",
        "duration_ms",
        "error",
        "request_pretty",
        "response_body",
        "task_id",
        "event_links",
    ]
    readonly_fields = fields

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> DeliveryAttempt | None:
        attempt = super().get_object(request, object_id, from_field)
        if attempt is not None and not manages_connection(request):
            # Never saved: the audit log is read-only.
            attempt.url = _path_only(attempt.url)
        return attempt

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The link from an event to its attempts.
        return lookup == "events__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="error")
    def error_short(self, obj: DeliveryAttempt) -> str:
        return obj.error[:120]

    @admin.display(description="destination", ordering="destination__slug")
    def destination_slug(self, obj: DeliveryAttempt) -> str:
        return obj.destination.slug

    @admin.display(description="profile(s)")
    def profiles(self, obj: DeliveryAttempt) -> str:
        return obj.integration_id or f"{obj.profile_count} profiles (bulk)"

    @admin.display(description="request body")
    def request_pretty(self, obj: DeliveryAttempt) -> SafeString:
        return pretty(obj.request_body)

    @admin.display(description="source events")
    def event_links(self, obj: DeliveryAttempt) -> SafeString:
        url = reverse("admin:destinations_inboundevent_changelist")
        return format_html(
            '<a href="{}?delivery_attempts__id__exact={}">see events</a>', url, obj.pk
        )


def _path_only(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyAdmin):
    """Who changed what in the admin, and when (destinations and their attribute
    rows included): Django records it, this makes it visible."""

    list_display = ["action_time", "user", "content_type", "object_repr", "action_flag", "change"]
    list_filter = ["action_flag", "content_type", ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["object_repr", "change_message"]
    date_hierarchy = "action_time"
    list_select_related = ["user", "content_type"]
    fields = [
        "action_time",
        "user",
        "content_type",
        "object_id",
        "object_repr",
        "action_flag",
        "change",
    ]
    readonly_fields = fields

    @admin.display(description="change")
    def change(self, obj: LogEntry) -> str:
        return obj.get_change_message()


@admin.register(RefusedAttribute)
class RefusedAttributeAdmin(ReadOnlyAdmin):
    """What Talon.One refused, across destinations: a marketer's to-do list."""

    list_display = [
        "name",
        "destination_slug",
        "event_count",
        "last_seen_at",
        "example",
        "message_short",
        "retry_at",
    ]
    list_filter = ["destination"]
    search_fields = ["name"]
    list_select_related = ["destination"]
    actions = ["retry_now"]
    fields = [
        "destination",
        "name",
        "event_count",
        "first_seen_at",
        "last_seen_at",
        "example",
        "example_event",
        "message",
        "retry_at",
    ]
    readonly_fields = fields

    @admin.action(description="Ask Talon.One again with the next updates")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[RefusedAttribute]) -> None:
        queryset.update(retry_at=timezone.now())
        self.message_user(request, "They are sent again with the next updates.")

    @admin.display(description="destination", ordering="destination__slug")
    def destination_slug(self, obj: RefusedAttribute) -> str:
        return obj.destination.slug

    @admin.display(description="example value")
    def example(self, obj: RefusedAttribute) -> str:
        return cut(json.dumps(obj.example_value, ensure_ascii=False), 80)

    @admin.display(description="Talon.One answered")
    def message_short(self, obj: RefusedAttribute) -> str:
        return cut(obj.message, 120)
