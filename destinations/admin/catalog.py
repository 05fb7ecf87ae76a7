"""The destination page's "Talon.One's attributes" section: the attribute rows
checked against Talon.One's catalog, and one-click rows for what the catalog
has and what traits carry. Reading the catalog and adding a row are POSTs
(CSRF-protected, permission-checked) that redirect back to the page."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from destinations.admin.common import admin_page, back_to_change_page, cut_json, object_or_404
from destinations.models import Destination
from destinations.selectors.catalog import CatalogView, RowCheck, Suggestion, catalog_view
from destinations.services import catalog

ADD_ROWS = "destinations.add_attributemapping"
VIEW_CATALOG = "destinations.view_talonattribute"
SECTION_ID = "talon-one-attributes"
ADD_FORM = "talon-catalog-add"  # outside the change form: no nested forms, no default button


# The admin shows messages with their first letter capitalised: none starts
# with an attribute name, which is case-sensitive.
class CatalogMixin(admin.ModelAdmin):
    def get_urls(self) -> list[URLPattern]:
        return [
            admin_page(
                self,
                "<path:object_id>/catalog/refresh/",
                "catalog_refresh",
                self.catalog_refresh_view,
                post_only=True,
            ),
            admin_page(
                self,
                "<path:object_id>/catalog/add/",
                "catalog_add",
                self.catalog_add_view,
                post_only=True,
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        destination = self.get_object(request, unquote(object_id))
        if destination is not None and request.user.has_perm(VIEW_CATALOG):
            can_add = request.user.has_perm(ADD_ROWS) and self.has_change_permission(
                request, destination
            )
            context["talon_catalog"] = {
                # Called by the template only when the page is rendered (not
                # after a successful save, which redirects).
                "section": partial(section, destination, can_add=can_add),
                "add_form": ADD_FORM if can_add else "",
                "can_refresh": self.has_change_permission(request, destination)
                and bool(destination.management_api_key),
            }
        return super().change_view(request, object_id, form_url, context)

    def catalog_refresh_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        destination = object_or_404(self, request, object_id)
        if not self.has_change_permission(request, destination):
            raise PermissionDenied
        if error := catalog.refresh(destination):
            self.message_user(
                request, f"Talon.One's attributes were not read: {error}", messages.ERROR
            )
        else:
            count = destination.talon_attributes.count()
            self.message_user(
                request,
                f"Read {count} customer-profile attributes from Talon.One.",
                messages.SUCCESS,
            )
        return back_to_change_page(self, destination, "#" + SECTION_ID)

    def catalog_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        destination = object_or_404(self, request, object_id)
        if not (
            request.user.has_perm(ADD_ROWS) and self.has_change_permission(request, destination)
        ):
            raise PermissionDenied
        name, _, type_ = request.POST.get("row", "").partition(":")
        try:
            row = catalog.add_row(destination, name, type_)
        except catalog.RowExists as exc:
            self.message_user(request, f"A row forwards {exc} already.", messages.WARNING)
        except (ValueError, ValidationError) as exc:
            detail = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.message_user(request, f"Not added: {name}: {detail}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Added the row {row.name} ({row.type}): it is forwarded from now on.",
                messages.SUCCESS,
            )
        return back_to_change_page(self, destination, "#" + SECTION_ID)


def section(destination: Destination, *, can_add: bool) -> SafeString:
    """The section as HTML: when and whether the catalog was read, then (a) to (d)."""
    view = catalog_view(destination)
    parts = [_status(destination)]
    if destination.catalog_fetched_at is not None:
        parts.append(_checks(view.checks))
        parts.append(
            _suggestions(
                "In Talon.One, not forwarded by any row",
                view.from_catalog,
                can_add,
                empty="Every attribute Talon.One has is forwarded by a row.",
            )
        )
    parts.append(
        _suggestions(
            f"Traits seen, not forwarded (the last {view.events_read} identify calls)",
            view.seen,
            can_add,
            empty="None: every trait received recently is forwarded.",
            seen=True,
        )
    )
    if destination.catalog_fetched_at is not None:
        parts.append(_engage(view))
    return format_html(
        '<div id="{}" class="talon-catalog">{}</div>',
        SECTION_ID,
        format_html_join("", "{}", ((part,) for part in parts)),
    )


def _status(destination: Destination) -> SafeString:
    lines = []
    if destination.catalog_fetched_at is not None:
        when = date_format(timezone.localtime(destination.catalog_fetched_at), "DATETIME_FORMAT")
        lines.append(
            format_html(
                "<p>Talon.One's customer-profile attributes as read on {}: {}.</p>",
                when,
                destination.talon_attributes.count(),
            )
        )
    if destination.catalog_error:
        lines.append(
            format_html(
                '<p class="errornote">⚠ The last read failed: {}</p>', destination.catalog_error
            )
        )
    elif destination.catalog_fetched_at is None:
        text = catalog.NO_KEY if not destination.management_api_key else "Not read yet."
        lines.append(format_html("<p>{}</p>", text))
    return format_html_join("", "{}", ((line,) for line in lines))


def _checks(checks: list[RowCheck]) -> SafeString:
    if not checks:
        return format_html("<p>{}</p>", "No attribute rows yet.")
    rows = format_html_join(
        "",
        "<tr><td><strong>{}</strong></td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                check.row.name,
                check.row.type,
                check.talon_type or "-",
                format_html('<strong class="catalog-flag">{}</strong>', check.problem)
                if check.problem
                else "✓ as in Talon.One",
            )
            for check in checks
        ),
    )
    return format_html(
        "<h3>{}</h3><table><thead><tr><th>row</th><th>type</th><th>Talon.One's type</th>"
        "<th>check</th></tr></thead><tbody>{}</tbody></table>",
        "Attribute rows",
        rows,
    )


def _suggestions(
    title: str, suggestions: list[Suggestion], can_add: bool, *, empty: str, seen: bool = False
) -> SafeString:
    if not suggestions:
        return format_html("<h3>{}</h3><p>{}</p>", title, empty)
    header = (
        ["attribute", "events", "example value", "Talon.One"] if seen else ["attribute", "title"]
    )
    rows = format_html_join(
        "",
        "<tr>{}</tr>",
        ((_suggestion_cells(suggestion, can_add, seen),) for suggestion in suggestions),
    )
    return format_html(
        "<h3>{}</h3><table><thead><tr>{}<th>forward as</th></tr></thead><tbody>{}</tbody></table>",
        title,
        format_html_join("", "<th>{}</th>", ((h,) for h in header)),
        rows,
    )


def _suggestion_cells(suggestion: Suggestion, can_add: bool, seen: bool) -> SafeString:
    cells = [format_html("<strong>{}</strong>", suggestion.name)]
    if seen:
        cells += [
            format_html("{}", suggestion.count),
            format_html("<code>{}</code>", cut_json(suggestion.example, 40)),
            format_html("{}", suggestion.talon_type)
            if suggestion.in_talon_one
            else format_html('<span class="catalog-flag">{}</span>', "⚠ not in Talon.One"),
        ]
    else:
        cells.append(format_html("{}", suggestion.title))
    cells.append(_add_cell(suggestion, can_add))
    return format_html_join("", "<td>{}</td>", ((cell,) for cell in cells))


def _add_cell(suggestion: Suggestion, can_add: bool) -> SafeString:
    if suggestion.type is None or suggestion.why_not:
        return format_html("{}", suggestion.why_not or "-")
    if not can_add:
        return format_html("{}", suggestion.type)
    return format_html(
        '{} <button type="submit" form="{}" name="row" value="{}:{}" class="button">Add</button>',
        suggestion.type,
        ADD_FORM,
        suggestion.name,
        suggestion.type,
    )


def _engage(view: CatalogView) -> SafeString:
    title = "Engage audiences and computed traits Talon.One doesn't know"
    if not view.engage:
        return format_html("<h3>{}</h3><p>{}</p>", title, "None seen recently.")
    rows = format_html_join(
        "",
        "<tr><td><strong>{}</strong></td><td>{}</td><td>{}</td><td><code>{}</code></td>"
        "<td>{}</td></tr>",
        (
            (
                s.name,
                s.computation_class,
                s.count,
                cut_json(s.example, 40),
                f"⚠ create it in Talon.One (Customer profile, {s.type})"
                if s.type
                else "⚠ create it in Talon.One (Customer profile)",
            )
            for s in view.engage
        ),
    )
    return format_html(
        "<h3>{}</h3><table><thead><tr><th>key</th><th>kind</th><th>events</th>"
        "<th>example value</th><th>to do</th></tr></thead><tbody>{}</tbody></table>",
        title,
        rows,
    )
