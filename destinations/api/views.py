from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, RawPostDataException
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from destinations.selectors import enabled_destination
from destinations.services import ingest

SummarySerializer = inline_serializer(
    "IngestSummary",
    {
        "accepted": serializers.IntegerField(help_text="New events queued for Talon.One."),
        "skipped": serializers.IntegerField(
            help_text="New events recorded but not delivered, invalid events of a batch "
            "included (each with the reason)."
        ),
        "duplicates": serializers.IntegerField(help_text="Events whose messageId was known."),
    },
)
ErrorSerializer = inline_serializer("IngestError", {"detail": serializers.CharField()})


class SegmentIngestView(APIView):
    """The URL pasted into Segment's Webhooks destination."""

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []  # the raw body is read once, as signed

    @extend_schema(
        operation_id="segment_ingest",
        request=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter("X-Signature", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("Authorization", str, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            200: SummarySerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                "Not JSON, not Segment events, values that cannot be stored, or a single "
                "event that is invalid (in a batch, an invalid event is recorded as skipped).",
            ),
            401: OpenApiResponse(ErrorSerializer, "Missing or wrong signature."),
            404: OpenApiResponse(ErrorSerializer, "Unknown or disabled destination."),
            413: OpenApiResponse(ErrorSerializer, "Over Segment's size limits."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        destination = enabled_destination(slug)
        if destination is None:
            raise Http404
        declared = _declared_length(request)
        if declared is None:
            return _error(
                status.HTTP_400_BAD_REQUEST, "The Content-Length header is not a valid length."
            )
        too_large = f"The request body is larger than {settings.INGEST_MAX_REQUEST_BYTES} bytes."
        if declared > settings.INGEST_MAX_REQUEST_BYTES:
            return _error(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, too_large)
        try:
            body = request.body
        except (RequestDataTooBig, RawPostDataException):
            return _error(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, too_large)
        if not ingest.authenticate(destination, body, request.headers):
            return _error(
                status.HTTP_401_UNAUTHORIZED,
                "Missing or wrong signature: send X-Signature (HMAC-SHA1 of the body with the "
                "shared secret) or Authorization with the shared secret.",
            )
        try:
            events = ingest.parse_events(body)
        except ingest.PayloadTooLarge as exc:
            return _error(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, str(exc))
        except ingest.InvalidPayload as exc:
            return _error(status.HTTP_400_BAD_REQUEST, str(exc))
        summary = ingest.ingest(destination, events)
        return Response(
            {
                "accepted": summary.accepted,
                "skipped": summary.skipped,
                "duplicates": summary.duplicates,
            }
        )


def _declared_length(request: Request) -> int | None:
    """Content-Length, 0 when absent (chunked: Django then reads no body), None when
    it is not a length (Django itself would fail on it with a 500)."""
    value = request.META.get("CONTENT_LENGTH") or "0"
    return int(value) if value.isascii() and value.isdigit() else None


def _error(code: int, detail: str) -> Response:
    return Response({"detail": detail}, status=code)
