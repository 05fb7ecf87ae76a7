from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from destinations import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("destinations.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
