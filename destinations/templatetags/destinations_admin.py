from django import template
from django.utils.safestring import SafeString

from destinations.admin import refused_table
from destinations.selectors import recently_refused

register = template.Library()


@register.simple_tag
def refused_attributes_table() -> SafeString:
    return refused_table(recently_refused()[:50], with_destination=True)
