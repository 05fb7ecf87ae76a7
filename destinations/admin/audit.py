"""The audit log: events received, attempts sent, admin changes, refusals."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
)
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from destinations.admin import export
from destinations.admin.common import (
    ReadOnlyAdmin,
    admin_page,
    back_to_change_page,
    cut,
    cut_json,
    manages_connection,
    object_or_404,
    pretty,
)
from destinations.admin.display import (
    CappedPaginator,
    notes_table,
    path_only,
    short,
    status_badge,
)
from destinations.models import (
    DeliveryAttempt,
    InboundEvent,
    RefusedAttribute,
)
from destinations.selectors import audit
from destinations.services import delivery
from destinations.talon_one import read_error


class EventTypeFilter(admin.SimpleListFilter):
    """Fixed choices: listing the types stored would scan every row (SELECT DISTINCT)."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t, t) for t in audit.EVENT_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(type=self.value()) if self.value() else queryset


class NotesFilter(admin.SimpleListFilter):
    title = "mapping notes"
    parameter_name = "mapping_notes"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("dropped", "values dropped (partial)"), ("any", "with notes")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "dropped":
            return audit.with_dropped_values(queryset)
        if self.value() == "any":
            return audit.with_notes(queryset)
        return queryset


class AnswerFilter(admin.SimpleListFilter):
    """Talon.One's answers by class: fixed choices, no DISTINCT over the statuses."""

    title = "Talon.One answered"
    parameter_name = "response_status"
    RANGES = {"2xx": (200, 299), "4xx": (400, 499), "5xx": (500, 599)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*((key, key) for key in self.RANGES), ("none", "no answer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "none":
            return queryset.filter(response_status__isnull=True)
        if self.value() in self.RANGES:
            return queryset.filter(response_status__range=self.RANGES[self.value()])
        return queryset


class AuditChangeList(ChangeList):
    """Lists read what their columns show; the detail page still reads everything.
    The destination's slug comes joined in: loading the destination itself would
    decrypt its keys and secrets for every row."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer(*self.model_admin.deferred_on_list).annotate(
            destination_slug_value=F("destination__slug")
        )


class AuditListAdmin(ReadOnlyAdmin):
    """Large lists: a capped count, no count of the whole table, no date hierarchy."""

    paginator = CappedPaginator
    show_full_result_count = False
    change_list_template = "admin/destinations/audit_change_list.html"
    change_form_template = "admin/destinations/audit_change_form.html"
    deferred_on_list: tuple[str, ...] = ()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AuditChangeList

    def get_urls(self) -> list[URLPattern]:
        return [admin_page(self, "export/", "export", self.export_view), *super().get_urls()]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The list as filtered and searched on screen, as CSV (every match, not a page)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter.")
        return export.as_csv(changelist.queryset)

    def action_checkbox(self, obj: Any) -> SafeString:
        # Django renders each row's box through the form widget templates (about
        # 0.5 ms a row); the same markup, formatted directly.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            f"Select this object for an action - {obj}",
        )

    @admin.display(description="destination")
    def destination_slug(self, obj: Any) -> str:
        return obj.destination_slug_value


@admin.register(InboundEvent)
class InboundEventAdmin(AuditListAdmin):
    # Short columns (whole values on hover) so the list fits 1280 px.
    list_display = [
        "received_at",
        "status_shown",
        "type",
        "user_short",
        "message_short",
        "request_short",
        "reason_short",
        "destination_slug",
    ]
    list_filter = [
        "status",
        NotesFilter,
        EventTypeFilter,
        "destination",
        ("received_at", admin.DateFieldListFilter),
    ]
    # The search box; get_search_results matches these (and traits.email) exactly.
    search_fields = ["user_id", "message_id"]
    search_help_text = "Exact userId, messageId or email (traits.email)."
    # The index on received_at serves this order; a sort on any other column
    # would sort every row.
    sortable_by = ["received_at"]
    deferred_on_list = ("payload", "attributes", "call")
    actions = ["redeliver"]
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
        "mapping_notes",
        "payload_pretty",
        "attempt_links",
    ]
    readonly_fields = fields

    @admin.display(description="status")
    def status_shown(self, obj: InboundEvent) -> SafeString:
        badge = status_badge(obj.status, obj.status)
        dropped = len(audit.dropped_notes(obj.notes if isinstance(obj.notes, list) else []))
        if not dropped:
            return badge
        return format_html(
            '{} <span class="audit-dropped-mark" title="{}">dropped {}</span>',
            badge,
            "Values Talon.One did not get: see the mapping notes.",
            dropped,
        )

    @admin.display(description="userId")
    def user_short(self, obj: InboundEvent) -> SafeString | str:
        return short(obj.user_id, 24) or "-"

    @admin.display(description="messageId")
    def message_short(self, obj: InboundEvent) -> SafeString | str:
        return short(obj.message_id, 18)

    @admin.display(description="request")
    def request_short(self, obj: InboundEvent) -> SafeString | str:
        return short(str(obj.request_id), 8) if obj.request_id else "-"

    @admin.display(description="reason")
    def reason_short(self, obj: InboundEvent) -> SafeString | str:
        return short(obj.reason, 60)

    @admin.display(description="attributes sent")
    def attributes_pretty(self, obj: InboundEvent) -> SafeString:
        return pretty(obj.attributes)

    @admin.display(description="mapping notes")
    def mapping_notes(self, obj: InboundEvent) -> SafeString | str:
        return notes_table(obj.notes, obj.payload)

    @admin.display(description="event as received")
    def payload_pretty(self, obj: InboundEvent) -> SafeString:
        return pretty(obj.payload)

    @admin.display(description="delivery attempts")
    def attempt_links(self, obj: InboundEvent) -> SafeString | str:
        if not obj.attempts:
            return "none yet"
        url = reverse("admin:destinations_deliveryattempt_changelist")
        return format_html('<a href="{}?events__id__exact={}">see attempts</a>', url, obj.pk)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[InboundEvent], search_term: str
    ) -> tuple[QuerySet[InboundEvent], bool]:
        return audit.search_events(queryset, search_term), False

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The link from an attempt to its source events.
        return lookup == "delivery_attempts__id__exact" or super().lookup_allowed(
            lookup, value, request
        )

    def get_urls(self) -> list[URLPattern]:
        redeliver = admin_page(
            self, "<path:object_id>/redeliver/", "redeliver", self.redeliver_view, post_only=True
        )
        return [redeliver, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {**(extra_context or {}), "can_redeliver": self.has_redeliver_permission(request)}
        return super().change_view(request, object_id, form_url, context)

    def redeliver_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_redeliver_permission(request):
            raise PermissionDenied
        event = object_or_404(self, request, object_id)
        count = delivery.redeliver([event])
        if count:
            self.message_user(request, "Queued for redelivery.", messages.SUCCESS)
        else:
            self.message_user(
                request,
                "Not queued: it is pending already, or has nothing to send to Talon.One.",
                messages.WARNING,
            )
        return back_to_change_page(self, event)

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("destinations.redeliver_inboundevent")

    @admin.action(description="Redeliver selected events", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[InboundEvent]) -> None:
        count = delivery.redeliver(queryset)
        self.message_user(request, f"{count} event(s) queued for redelivery.", messages.SUCCESS)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(AuditListAdmin):
    """The request URL holds the destination's base URL: only operators see it whole."""

    # Short headers: the list fits 1280 px beside the sidebar and the filters.
    list_display = [
        "created_at",
        "profiles",
        "http_status",
        "outcome_shown",
        "error_shown",
        "duration",
        "try_number",
        "destination_slug",
    ]
    list_filter = [
        "outcome",
        AnswerFilter,
        "destination",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["integration_id"]
    search_help_text = "Exact integrationId (userId)."
    sortable_by = ["created_at", "duration"]
    hidden_from_marketers = frozenset({"url"})  # they see its path only
    # Request bodies reach 60 KB (1,000 profiles); the error column reads
    # response_body (at most 4,000 characters) only for answers without an error text.
    deferred_on_list = ("request_body",)
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
        "error_shown",
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
            attempt.url = path_only(attempt.url)
        return attempt

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DeliveryAttempt], search_term: str
    ) -> tuple[QuerySet[DeliveryAttempt], bool]:
        term = search_term.strip()
        return (queryset.filter(integration_id=term) if term else queryset), False

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The link from an event to its attempts.
        return lookup == "events__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="outcome")
    def outcome_shown(self, obj: DeliveryAttempt) -> SafeString:
        status = {"success": "delivered", "retry": "pending"}.get(obj.outcome, obj.outcome)
        return status_badge(status, obj.get_outcome_display().lower())

    @admin.display(description="HTTP")
    def http_status(self, obj: DeliveryAttempt) -> int | str:
        return obj.response_status or "-"

    @admin.display(description="ms", ordering="duration_ms")
    def duration(self, obj: DeliveryAttempt) -> int:
        return obj.duration_ms

    @admin.display(description="try")
    def try_number(self, obj: DeliveryAttempt) -> int:
        return obj.attempt_number

    @admin.display(description="error")
    def error_shown(self, obj: DeliveryAttempt) -> SafeString | str:
        return short(attempt_error(obj), 100) or "-"

    @admin.display(description="profile(s)")
    def profiles(self, obj: DeliveryAttempt) -> SafeString | str:
        if obj.integration_id:
            return short(obj.integration_id, 24)
        return f"{obj.profile_count} (bulk)"

    @admin.display(description="request body")
    def request_pretty(self, obj: DeliveryAttempt) -> SafeString:
        return pretty(obj.request_body)

    @admin.display(description="source events")
    def event_links(self, obj: DeliveryAttempt) -> SafeString:
        url = reverse("admin:destinations_inboundevent_changelist")
        return format_html(
            '<a href="{}?delivery_attempts__id__exact={}">see events</a>', url, obj.pk
        )


def attempt_error(attempt: DeliveryAttempt) -> str:
    """What went wrong. Attempts recorded before their answer's message was kept
    have it in the response body only: read it from there."""
    if attempt.error or attempt.response_status is None:
        return attempt.error
    if 200 <= attempt.response_status < 300:
        return ""
    message = read_error(attempt.response_body)
    return f"Talon.One answered {attempt.response_status}" + (f": {message}" if message else "")


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
        return cut_json(obj.example_value, 80)

    @admin.display(description="Talon.One answered")
    def message_short(self, obj: RefusedAttribute) -> str:
        return cut(obj.message, 120)
