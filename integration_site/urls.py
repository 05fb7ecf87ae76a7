from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from destinations.api.tracking import TrackingApiView
from destinations.services.tracking import BATCH_CALLS, SINGLE_CALLS

_TRACKING_CALLS = "|".join(SINGLE_CALLS + BATCH_CALLS)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("destinations.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Segment's HTTP Tracking API, where SDKs send when their host is this service.
    re_path(rf"^v1/(?P<call>{_TRACKING_CALLS})/?$", TrackingApiView.as_view(), name="tracking"),
]
