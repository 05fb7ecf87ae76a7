from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import RawPostDataException
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from destinations.models import Destination
from destinations.services import ingest, ingest_cache

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
UNAUTHORIZED = (
    "Unknown destination, or missing or wrong signature: send Authorization (Bearer or "
    "Basic with the shared secret) or X-Signature (HMAC-SHA1 of the body with the secret)."
)
INGEST_SCHEMA = extend_schema(
    operation_id="segment_ingest",
    # One event, an array of events (Webhooks (Actions) batches) or {"batch": [...]}.
    request={
        "application/json": {
            "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]
        }
    },
    parameters=[
        OpenApiParameter("X-Signature", str, OpenApiParameter.HEADER, required=False),
        OpenApiParameter("Authorization", str, OpenApiParameter.HEADER, required=False),
    ],
    responses={
        200: SummarySerializer,
        400: OpenApiResponse(
            ErrorSerializer,
            "Not JSON, not Segment events, values that cannot be stored, a chunked body, or "
            "a single event that is invalid (in a batch, an invalid event is recorded as "
            "skipped).",
        ),
        401: OpenApiResponse(
            ErrorSerializer,
            "Unknown or disabled destination, or missing or wrong credentials (the same "
            "answer, so that probing does not tell which slugs exist).",
        ),
        413: OpenApiResponse(ErrorSerializer, "Over Segment's size limits."),
    },
)


class SegmentIngestView(APIView):
    """The URL pasted into Segment's Webhooks destination (classic or Actions, which
    may send with POST, PUT or PATCH; other methods get 405 with Allow)."""

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []  # the raw body is read once, as signed
    http_method_names = ["post", "put", "patch", "options"]

    @INGEST_SCHEMA
    def post(self, request: Request, slug: str) -> Response:
        if problem := body_problem(request, settings.INGEST_MAX_REQUEST_BYTES):
            return _error(*problem)
        destination = _authenticated(slug, request)
        if destination is None:
            return _error(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
        try:
            events = ingest.parse_events(request.body, ingest.Limits.webhooks())
        except ingest.PayloadTooLarge as exc:
            return _error(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, str(exc))
        except ingest.InvalidPayload as exc:
            return _error(status.HTTP_400_BAD_REQUEST, str(exc))
        try:
            summary = ingest.ingest(destination, events)
        except ingest.DestinationGone:
            # Deleted since this process kept it, perhaps made again under its slug.
            destination = _authenticated(slug, request)
            if destination is None:
                return _error(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
            try:
                summary = ingest.ingest(destination, events)
            except ingest.DestinationGone:
                return _error(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
        return Response(
            {
                "accepted": summary.accepted,
                "skipped": summary.skipped,
                "duplicates": summary.duplicates,
            }
        )

    @extend_schema(operation_id="segment_ingest_put")
    @INGEST_SCHEMA
    def put(self, request: Request, slug: str) -> Response:
        return self.post(request, slug)

    @extend_schema(operation_id="segment_ingest_patch")
    @INGEST_SCHEMA
    def patch(self, request: Request, slug: str) -> Response:
        return self.post(request, slug)


@extend_schema_view(
    post=extend_schema(exclude=True),
    put=extend_schema(exclude=True),
    patch=extend_schema(exclude=True),
)
class SegmentIngestNoSlashView(SegmentIngestView):
    """The same URL without its trailing slash, answered rather than redirected:
    Segment does not follow a redirect with the body."""


def _authenticated(slug: str, request: Request) -> Destination | None:
    """The enabled destination of the slug, if the request carries its secret."""
    destination = ingest_cache.enabled_destination(slug)
    if destination is None or not ingest.authenticate(destination, request.body, request.headers):
        return None
    return destination


def body_problem(request: Request, max_bytes: int) -> tuple[int, str] | None:
    """Refuses, before reading it, a body that is too large or chunked (Django reads
    a body by its Content-Length only: a chunked one would look empty)."""
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return (
            status.HTTP_400_BAD_REQUEST,
            "Chunked request bodies are not supported: send the body with a Content-Length.",
        )
    declared = _declared_length(request)
    if declared is None:
        return status.HTTP_400_BAD_REQUEST, "The Content-Length header is not a valid length."
    too_large = (
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        f"The request body is larger than {max_bytes} bytes.",
    )
    if declared > max_bytes:
        if declared <= 2 * max_bytes:
            _discard(request)
        return too_large
    try:
        request.body  # noqa: B018 -- read now, within the limit; later reads are cached
    except (RequestDataTooBig, RawPostDataException):
        return too_large
    return None


def _discard(request: Request) -> None:
    """Reads the refused body and drops it: a server that answers and closes with the
    body unread resets the connection, and a proxy still sending it (nginx) then answers
    502 instead of this 413. Far larger bodies come only from clients that bypass the
    proxy's own limit: those are not read."""
    while request.read(64 * 1024):
        pass


def _declared_length(request: Request) -> int | None:
    """Content-Length, 0 when absent, None when it is not a length (Django itself
    would fail on it with a 500)."""
    value = request.META.get("CONTENT_LENGTH") or "0"
    return int(value) if value.isascii() and value.isdigit() else None


def _error(code: int, detail: str) -> Response:
    return Response({"detail": detail}, status=code)
