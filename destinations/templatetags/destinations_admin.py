from typing import Any

from django import template
from django.utils.safestring import SafeString

from destinations.admin import refused_table
from destinations.admin.common import VIEW_EVENTS
from destinations.admin.dashboard import dashboard
from destinations.selectors import recently_refused
from destinations.selectors.dashboard import recent_activity

register = template.Library()


@register.simple_tag
def refused_attributes_table() -> SafeString:
    return refused_table(recently_refused()[:50], with_destination=True)


@register.simple_tag
def activity_dashboard() -> SafeString:
    counted_at, activities = recent_activity()
    return dashboard(activities, counted_at)


@register.simple_tag(takes_context=True)
def can_view_events(context: dict[str, Any]) -> bool:
    """The dashboard and the customer view are for those who read the audit log."""
    return context["request"].user.has_perm(VIEW_EVENTS)
