"""The destination page: connection, secrets and the attribute rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.debug import sensitive_post_parameters

from destinations.admin.catalog import CatalogMixin
from destinations.admin.common import (
    REFUSED_TITLE,
    RoleAwareAdmin,
    manages_connection,
    refused_table,
)
from destinations.admin.connection import ConnectionTestMixin
from destinations.admin.customers import CustomerMixin
from destinations.admin.preview import PreviewMixin
from destinations.fields import validate_secret
from destinations.models import (
    AttributeMapping,
    Destination,
)
from destinations.selectors import audit, recently_refused
from destinations.services import refusals, secrets, tracking

WRITE_ONLY_HELP = "Write-only: the stored value is never shown. Leave empty to keep it."
UNSIGNED_WARNING = (
    "This destination accepts unsigned events: anyone who knows its ingest URL can "
    "change customer profiles. Set a shared secret."
)
KEEP_PREVIOUS_CHOICES = [
    (0, "no time: refuse it at once"),
    (1, "1 hour"),
    (4, "4 hours"),
    (24, "24 hours"),
    (72, "3 days"),
    (168, "7 days"),
]


def _write_only(label: str, help_text: str = WRITE_ONLY_HELP) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
        validators=[validate_secret],
    )


class DestinationForm(forms.ModelForm):
    """For users who manage the connection. The secrets are plain form fields,
    never filled from the instance: clean() hands them to the secrets service,
    which keeps the replaced Segment secret for the rotation window."""

    api_key = _write_only("Integration API key")
    management_api_key = _write_only(
        "Management API key",
        WRITE_ONLY_HELP + " Optional, read-only use: lets this service read Talon.One's "
        'customer-profile attributes (daily, or with "Read Talon.One\'s attributes now") '
        "to check the attribute rows. It needs access to GET /v1/attributes only.",
    )
    remove_management_api_key = forms.BooleanField(
        label="Remove the Management API key", required=False
    )
    shared_secret = _write_only(
        "Segment shared secret",
        WRITE_ONLY_HELP + " Set the same value in Segment's Webhooks destination.",
    )
    keep_previous_secret_for = forms.TypedChoiceField(
        label="When replacing the secret, keep accepting the old one for",
        choices=KEEP_PREVIOUS_CHOICES,
        coerce=int,
        initial=24,
        help_text="Covers events Segment signs with the old secret until you change it there, "
        "and Segment's retries (up to 4 hours). The old secret stops working by itself then.",
    )
    end_rotation = forms.BooleanField(
        label="Stop accepting the previous secret now", required=False
    )
    write_key = _write_only(
        "SDK write key",
        WRITE_ONLY_HELP + " For Segment-compatible SDKs sending straight here (Segment's "
        "HTTP Tracking API at /v1/...): at least 16 random characters.",
    )

    class Meta:
        model = Destination
        fields = [
            "name",
            "slug",
            "enabled",
            "base_url",
            "run_rule_engine",
            "forward_engage",
            "engage_audiences",
            "max_requests_per_second",
            "accept_unsigned",
            "accept_first_event_signature",
        ]
        # Declared above as plain fields. Excluded too, because the admin builds
        # its form from the fieldsets, which name them: otherwise the form would
        # load them from the instance (initial data) and write them back.
        exclude = ["api_key", "management_api_key", "shared_secret", "write_key_digest"]  # noqa: DJ006 (fields is set as well)
        help_texts = {
            "accept_unsigned": "Anyone who knows the ingest URL can then change customer "
            "profiles. Ticking this removes the shared secret."
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        destination = self.instance  # still as stored: the form does not set the secrets
        if cleaned.get("write_key"):
            try:
                destination.write_key_digest = tracking.checked_digest(
                    destination, cleaned["write_key"]
                )
            except tracking.InvalidWriteKey as exc:
                self.add_error("write_key", str(exc))
        if cleaned.get("management_api_key"):
            destination.management_api_key = cleaned["management_api_key"]
        elif cleaned.get("remove_management_api_key"):
            destination.management_api_key = ""
        if cleaned.get("api_key"):
            destination.api_key = cleaned["api_key"]
        elif not destination.api_key:
            self.add_error("api_key", "Required.")
        new_secret = cleaned.get("shared_secret", "")
        if cleaned.get("accept_unsigned"):
            if new_secret:
                self.add_error(
                    "shared_secret",
                    "Leave this empty to accept unsigned events, or untick that box.",
                )
            secrets.clear_shared_secret(destination)
            return cleaned
        secrets.set_shared_secret(
            destination,
            new_secret,
            keep_previous_for=timedelta(hours=cleaned.get("keep_previous_secret_for") or 0),
            now=timezone.now(),
        )
        if cleaned.get("end_rotation"):
            secrets.end_rotation(destination)
        if not destination.shared_secret:
            self.add_error(
                "shared_secret", "Required, unless the destination accepts unsigned events."
            )
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
@method_decorator(
    sensitive_post_parameters("api_key", "management_api_key", "shared_secret", "write_key"),
    name="changeform_view",
)
class DestinationAdmin(
    CatalogMixin, PreviewMixin, CustomerMixin, ConnectionTestMixin, RoleAwareAdmin
):
    form = DestinationForm
    inlines = [AttributeMappingInline]
    list_display = [
        "name",
        "slug",
        "enabled",
        "base_url",
        "ingest_auth_short",
        "pending",
        "failed",
        "ingest_path",
    ]
    list_filter = ["enabled"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = [
        "ingest_path",
        "ingest_auth",
        "sdk_write_key",
        "refused_by_talon_one",
        "track_events",
        "talon_audiences",
        "created_at",
        "updated_at",
    ]
    actions = ["retry_refused_attributes"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "enabled", "ingest_path", "ingest_auth"]}),
        (REFUSED_TITLE, {"fields": ["refused_by_talon_one"]}),
        ("Track events and audiences", {"fields": ["track_events", "talon_audiences"]}),
        (
            "Talon.One",
            {
                "fields": [
                    "base_url",
                    "api_key",
                    "management_api_key",
                    "remove_management_api_key",
                    "run_rule_engine",
                    "forward_engage",
                    "engage_audiences",
                    "max_requests_per_second",
                ]
            },
        ),
        (
            "Segment",
            {
                "fields": [
                    "shared_secret",
                    "keep_previous_secret_for",
                    "end_rotation",
                    "accept_unsigned",
                    "accept_first_event_signature",
                    "sdk_write_key",
                    "write_key",
                ]
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    # Users without manage_connection (marketers): no URL, key or secret, and
    # every field read-only but the one that decides which traits are forwarded.
    marketer_fieldsets = [
        (None, {"fields": ["name", "slug", "enabled", "ingest_path", "ingest_auth"]}),
        (REFUSED_TITLE, {"fields": ["refused_by_talon_one"]}),
        ("Track events and audiences", {"fields": ["track_events", "talon_audiences"]}),
        (
            "Talon.One",
            {
                "fields": [
                    "run_rule_engine",
                    "forward_engage",
                    "engage_audiences",
                    "max_requests_per_second",
                ]
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    marketer_readonly_fields = [
        "name",
        "slug",
        "enabled",
        "run_rule_engine",
        "max_requests_per_second",
        *readonly_fields,
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Destination]:
        destinations = super().get_queryset(request)
        # The counts are the list's columns: the destination's own page needs none.
        match = request.resolver_match
        if match is not None and match.url_name == "destinations_destination_changelist":
            return audit.with_event_counts(destinations)
        return destinations

    def get_list_display(self, request: HttpRequest) -> list[str]:
        if manages_connection(request):
            return self.list_display
        return [name for name in self.list_display if name != "base_url"]

    def get_fieldsets(self, request: HttpRequest, obj: Destination | None = None) -> Any:
        return self.fieldsets if manages_connection(request) else self.marketer_fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Destination | None = None) -> Any:
        if manages_connection(request):
            return self.readonly_fields
        return self.marketer_readonly_fields

    def get_prepopulated_fields(
        self, request: HttpRequest, obj: Destination | None = None
    ) -> dict[str, Any]:
        return self.prepopulated_fields if manages_connection(request) else {}

    def get_form(
        self,
        request: HttpRequest,
        obj: Destination | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm]:
        if not manages_connection(request):
            # A plain ModelForm: none of DestinationForm's secret fields, so a
            # crafted POST cannot set them either.
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, change, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return manages_connection(request) and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Destination | None = None) -> bool:
        return manages_connection(request) and super().has_delete_permission(request, obj)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Destination | None = None,
    ) -> HttpResponse:
        # The destination the page loaded, as stored on a GET (a POST's form has
        # changed it): no second load for the warning.
        if request.method == "GET" and obj is not None and secrets.accepts_unsigned(obj):
            self.message_user(request, UNSIGNED_WARNING, messages.WARNING)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        if any(formset.has_changed() for formset in formsets):
            # A renamed or retyped row may be what Talon.One refused: ask it again.
            refusals.retry_now([form.instance.pk])

    @admin.action(description="Ask Talon.One again about the attributes it refused")
    def retry_refused_attributes(
        self, request: HttpRequest, queryset: QuerySet[Destination]
    ) -> None:
        refusals.retry_now(queryset.values_list("pk", flat=True))
        self.message_user(request, "Refused attributes are sent again with the next updates.")

    @admin.display(description="Refused recently")
    def refused_by_talon_one(self, obj: Destination) -> SafeString | str:
        if obj.pk is None:
            return "-"
        return refused_table(recently_refused(obj))

    @admin.display(description="Track events forwarded")
    def track_events(self, obj: Destination) -> SafeString | str:
        if obj.pk is None:
            return "-"
        add = reverse("admin:destinations_eventmapping_add") + f"?destination={obj.pk}"
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a> → {} ({} properties)</li>',
            (
                (
                    reverse("admin:destinations_eventmapping_change", args=[m.pk]),
                    m.segment_event,
                    m.talon_event_type,
                    m.property_count,
                )
                # One query for the mappings and their property counts.
                for m in obj.event_mappings.annotate(property_count=Count("properties"))
            ),
        )
        return format_html(
            '<ul>{}</ul><a href="{}">Forward another track event</a>',
            rows or format_html("<li>{}</li>", "None: track calls are recorded, not sent."),
            add,
        )

    @admin.display(description="Talon.One audiences")
    def talon_audiences(self, obj: Destination) -> SafeString | str:
        if obj.pk is None:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (a.key, a.talon_id or "not created yet", a.members_added, a.members_removed)
                for a in obj.audiences.all()
            ),
        )
        if not rows:
            return "None yet (Engage audiences are sent as audiences when chosen above)."
        return format_html(
            "<table><thead><tr><th>Engage audience</th><th>Talon.One id</th>"
            "<th>entries sent</th><th>exits sent</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="SDK write key")
    def sdk_write_key(self, obj: Destination) -> str:
        if not obj.write_key_digest:
            return "None: the Tracking API (/v1/identify, /v1/batch, ...) refuses every request."
        return "Set. SDKs send to this service's URL as their host, with the write key."

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

    @admin.display(description="Ingest authentication")
    def ingest_auth(self, obj: Destination) -> SafeString | str:
        if obj.pk is None:
            return "-"
        if secrets.accepts_unsigned(obj):
            return format_html('<span class="errornote">⚠ {}</span>', UNSIGNED_WARNING)
        if not obj.shared_secret:
            return "No shared secret: every event is refused."
        if (ends_at := secrets.rotation_ends_at(obj, timezone.now())) is not None:
            when = date_format(timezone.localtime(ends_at), "DATETIME_FORMAT")
            return (
                f"Signed. The previous secret is also accepted until {when} ({settings.TIME_ZONE})."
            )
        return "Signed with the shared secret."

    @admin.display(description="authentication")
    def ingest_auth_short(self, obj: Destination) -> SafeString | str:
        if secrets.accepts_unsigned(obj):
            return format_html('<strong class="errornote">⚠ {}</strong>', "UNSIGNED")
        return "signed" if obj.shared_secret else "refuses all"
