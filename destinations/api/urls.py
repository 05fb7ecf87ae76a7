from django.urls import path

from destinations.api.views import SegmentIngestNoSlashView, SegmentIngestView

urlpatterns = [
    path("segment/<slug:slug>/", SegmentIngestView.as_view(), name="segment-ingest"),
    path("segment/<slug:slug>", SegmentIngestNoSlashView.as_view()),
]
