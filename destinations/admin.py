from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from destinations.models import AttributeMapping, DeliveryAttempt, Destination, InboundEvent
from destinations.services import delivery

WRITE_ONLY_HELP = "Write-only: the stored value is never shown. Leave empty to keep it."


class DestinationForm(forms.ModelForm):
    api_key = forms.CharField(
        label="Integration API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=WRITE_ONLY_HELP,
    )
    shared_secret = forms.CharField(
        label="Segment shared secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=WRITE_ONLY_HELP + " Set the same value in Segment's Webhooks destination.",
    )

    class Meta:
        model = Destination
        fields = [
            "name",
            "slug",
            "enabled",
            "base_url",
            "api_key",
            "run_rule_engine",
            "forward_engage",
            "max_requests_per_second",
            "shared_secret",
        ]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Never send stored secrets to the browser, not even in the form's initial data.
        self.initial.pop("api_key", None)
        self.initial.pop("shared_secret", None)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in ("api_key", "shared_secret"):
            if not cleaned.get(name):
                stored = getattr(self.instance, name, "") if self.instance.pk else ""
                if not stored:
                    self.add_error(name, "Required.")
                cleaned[name] = stored
        return cleaned


class AttributeMappingFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        seen: dict[str, str] = {}
        for form in self.forms:
            if not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            name = form.cleaned_data.get("name", "")
            if name.lower() in seen:
                form.add_error(
                    "name",
                    f'"{name}" is listed twice (as "{seen[name.lower()]}"): Talon.One names '
                    "are case-sensitive, but two rows that differ only in case are a typo.",
                )
            seen.setdefault(name.lower(), name)


class AttributeMappingInline(admin.TabularInline):
    model = AttributeMapping
    formset = AttributeMappingFormSet
    extra = 1
    fields = ["name", "type"]


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    inlines = [AttributeMappingInline]
    list_display = ["name", "slug", "enabled", "base_url", "pending", "failed", "ingest_path"]
    list_filter = ["enabled"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["ingest_path", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "enabled", "ingest_path"]}),
        (
            "Talon.One",
            {
                "fields": [
                    "base_url",
                    "api_key",
                    "run_rule_engine",
                    "forward_engage",
                    "max_requests_per_second",
                ]
            },
        ),
        ("Segment", {"fields": ["shared_secret"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Destination]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_count=Count("events", filter=Q(events__status=InboundEvent.Status.PENDING)),
                failed_count=Count("events", filter=Q(events__status=InboundEvent.Status.FAILED)),
            )
        )

    @admin.display(description="pending", ordering="pending_count")
    def pending(self, obj: Destination) -> int:
        return getattr(obj, "pending_count", 0)

    @admin.display(description="failed", ordering="failed_count")
    def failed(self, obj: Destination) -> SafeString | int:
        count = getattr(obj, "failed_count", 0)
        if not count:
            return 0
        url = reverse("admin:destinations_inboundevent_changelist")
        return format_html(
            '<a href="{}?destination__id__exact={}&status__exact=failed">{}</a>', url, obj.pk, count
        )

    @admin.display(description="Ingest URL (path)")
    def ingest_path(self, obj: Destination) -> str:
        if not obj.slug:
            return "-"
        return reverse("segment-ingest", kwargs={"slug": obj.slug})


class ReadOnlyAdmin(admin.ModelAdmin):
    """The audit log is read-only for everyone."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _pretty(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "destination",
        "type",
        "user_id",
        "status",
        "attempts",
        "reason_short",
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
        return obj.reason[:120]

    @admin.display(description="attributes sent")
    def attributes_pretty(self, obj: InboundEvent) -> SafeString:
        return _pretty(obj.attributes)

    @admin.display(description="mapping notes")
    def notes_pretty(self, obj: InboundEvent) -> SafeString:
        return _pretty(obj.notes)

    @admin.display(description="event as received")
    def payload_pretty(self, obj: InboundEvent) -> SafeString:
        return _pretty(obj.payload)

    @admin.display(description="delivery attempts")
    def attempt_links(self, obj: InboundEvent) -> SafeString | str:
        if not obj.attempts:
            return "none yet"
        url = reverse("admin:destinations_deliveryattempt_changelist")
        return format_html('<a href="{}?events__id__exact={}">see attempts</a>', url, obj.pk)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
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
    list_display = [
        "created_at",
        "destination",
        "profiles",
        "response_status",
        "outcome",
        "duration_ms",
        "attempt_number",
    ]
    list_filter = ["outcome", "response_status", "destination"]
    search_fields = ["integration_id"]
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

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The link from an event to its attempts.
        return lookup == "events__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="profile(s)")
    def profiles(self, obj: DeliveryAttempt) -> str:
        return obj.integration_id or f"{obj.profile_count} profiles (bulk)"

    @admin.display(description="request body")
    def request_pretty(self, obj: DeliveryAttempt) -> SafeString:
        return _pretty(obj.request_body)

    @admin.display(description="source events")
    def event_links(self, obj: DeliveryAttempt) -> SafeString:
        url = reverse("admin:destinations_inboundevent_changelist")
        return format_html(
            '<a href="{}?delivery_attempts__id__exact={}">see events</a>', url, obj.pk
        )
