"""The Django admin of the app, one module per area; importing them registers them."""

from django.contrib import admin

from destinations.admin.audit import DeliveryAttemptAdmin, InboundEventAdmin
from destinations.admin.common import refused_table
from destinations.admin.destination import AttributeMappingFormSet, DestinationAdmin
from destinations.admin.mappings import EventMappingAdmin, TalonAudienceAdmin

__all__ = [
    "AttributeMappingFormSet",
    "DeliveryAttemptAdmin",
    "DestinationAdmin",
    "EventMappingAdmin",
    "InboundEventAdmin",
    "TalonAudienceAdmin",
    "refused_table",
]

# The admin index lists what Talon.One refused, where a marketer looks first.
admin.site.index_template = "destinations/admin_index.html"
