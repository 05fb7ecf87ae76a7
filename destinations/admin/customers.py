"""The customer view: for one integrationId, the latest value sent to Talon.One
for each attribute, when, and from which event: what a marketer compares with
Talon.One's Customers tab."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern

from destinations.admin.common import VIEW_EVENTS, admin_page
from destinations.selectors.customers import customer


class CustomerMixin(admin.ModelAdmin):
    def get_urls(self) -> list[URLPattern]:
        return [admin_page(self, "customer/", "customer", self.customer_view), *super().get_urls()]

    def customer_view(self, request: HttpRequest) -> HttpResponse:
        # The values sent are the audit log's data: its readers see them.
        if not (self.has_view_permission(request) and request.user.has_perm(VIEW_EVENTS)):
            raise PermissionDenied
        integration_id = request.GET.get("integration_id", "").strip()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Customer",
            "integration_id": integration_id,
            "found": customer(integration_id) if integration_id else None,
        }
        return TemplateResponse(request, "destinations/customer.html", context)
