"""What every admin page of the app shares: roles, read-only audit pages, tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from destinations.models import (
    RefusedAttribute,
)

MANAGE_CONNECTION = "destinations.manage_connection"
# Readers of the audit log: the dashboard, the customer view and picking a received event.
VIEW_EVENTS = "destinations.view_inboundevent"


REFUSED_TITLE = "Attributes Talon.One refused"
REFUSED_HELP = (
    "Talon.One refused these attributes in updates (most often: not created yet in its "
    "Campaign Manager, entity Customer profile, or created with another type). Everything "
    "else in those updates was delivered. Create them in Talon.One, or remove their rows; "
    "they are tried again within the hour, at once when the rows change or on redelivery."
)


def refused_table(
    rows: Iterable[RefusedAttribute], *, with_destination: bool = False
) -> SafeString:
    """The refused attributes as a table a marketer can act on."""
    header = format_html_join("", "<th>{}</th>", ((h,) for h in _refused_headers(with_destination)))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((_refused_cells(row, with_destination),) for row in rows),
    )
    if not body:
        return format_html("<p>{}</p>", "None in the last 7 days.")
    return format_html(
        '<p class="help">{}</p><table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        REFUSED_HELP,
        header,
        body,
    )


def _refused_headers(with_destination: bool) -> list[str]:
    headers = ["attribute", "events", "last seen", "example value", "Talon.One answered"]
    return ["destination", *headers] if with_destination else headers


def _refused_cells(row: RefusedAttribute, with_destination: bool) -> SafeString:
    example = cut_json(row.example_value, 80)
    if row.example_event_id:
        url = reverse("admin:destinations_inboundevent_change", args=[row.example_event_id])
        example_cell = format_html('<a href="{}">{}</a>', url, example)
    else:
        example_cell = format_html("{}", example)
    cells = [
        format_html("<strong>{}</strong>", row.name),
        format_html("{}", row.event_count),
        format_html("{}", date_format(timezone.localtime(row.last_seen_at), "DATETIME_FORMAT")),
        example_cell,
        format_html("{}", cut(row.message, 200)),
    ]
    if with_destination:
        cells.insert(0, format_html("{}", row.destination.slug))
    return format_html_join("", "<td>{}</td>", ((cell,) for cell in cells))


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cut_json(value: Any, limit: int) -> str:
    """A value as JSON (non-ASCII kept readable), at most `limit` characters."""
    return cut(json.dumps(value, ensure_ascii=False), limit)


def manages_connection(request: HttpRequest) -> bool:
    """Operators see and change base URLs, keys and secrets; marketers do not."""
    return request.user.has_perm(MANAGE_CONNECTION)


class RoleAwareAdmin(admin.ModelAdmin):
    """Marketers filter and search only on fields they see: a querystring lookup
    on any other (?base_url__startswith=...) would answer yes or no about it."""

    hidden_from_marketers: frozenset[str] = frozenset()

    def marketer_fields(self, request: HttpRequest) -> set[str]:
        return set(flatten_fieldsets(self.get_fieldsets(request))) - self.hidden_from_marketers

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        field = lookup.split(LOOKUP_SEP, 1)[0]
        if not manages_connection(request) and field not in self.marketer_fields(request):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_search_fields(self, request: HttpRequest) -> Sequence[str]:
        fields = super().get_search_fields(request)
        if manages_connection(request):
            return fields
        visible = self.marketer_fields(request)
        return [f for f in fields if f.lstrip("^=@").split(LOOKUP_SEP, 1)[0] in visible]

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        filters = super().get_list_filter(request)
        if manages_connection(request):
            return filters
        visible = self.marketer_fields(request)
        return [f for f in filters if _filter_field(f).split(LOOKUP_SEP, 1)[0] in visible]


def _filter_field(item: Any) -> str:
    """The field a list_filter entry filters on."""
    if isinstance(item, str):
        return item
    if isinstance(item, (list, tuple)):
        return item[0]
    return item.parameter_name


class ReadOnlyAdmin(RoleAwareAdmin):
    """The audit log is read-only for everyone."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def pretty(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


def admin_page(
    model_admin: admin.ModelAdmin,
    route: str,
    name: str,
    view: Callable[..., HttpResponse],
    *,
    post_only: bool = False,
) -> URLPattern:
    """An extra page of a model's admin, named admin:<app>_<model>_<name>. admin_view
    asks for a staff login and checks CSRF on POSTs; a page that changes something
    is post_only (405 to anything else), so a link or a prefetch cannot trigger it."""
    opts = model_admin.model._meta
    wrapped = model_admin.admin_site.admin_view(require_POST(view) if post_only else view)
    return path(route, wrapped, name=f"{opts.app_label}_{opts.model_name}_{name}")


def object_or_404(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> Any:
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404
    return obj


def back_to_change_page(
    model_admin: admin.ModelAdmin, obj: Any, fragment: str = ""
) -> HttpResponseRedirect:
    opts = model_admin.model._meta
    url = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_change",
        args=[obj.pk],
        current_app=model_admin.admin_site.name,
    )
    return HttpResponseRedirect(url + fragment)
