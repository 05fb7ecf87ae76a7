from django.urls import path

from destinations.api.views import SegmentIngestView

urlpatterns = [
    path("segment/<slug:slug>/", SegmentIngestView.as_view(), name="segment-ingest"),
]
