"""Segment's HTTP Tracking API (/v1/identify, /v1/batch, ...), for SDKs pointed
straight at this service. Answers as Segment's API does: {"success": true}."""

from django.conf import settings
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

from destinations.api.views import body_problem
from destinations.services import ingest, tracking

SuccessSerializer = inline_serializer("TrackingSuccess", {"success": serializers.BooleanField()})
FailureSerializer = inline_serializer(
    "TrackingFailure",
    {"success": serializers.BooleanField(), "message": serializers.CharField()},
)
UNAUTHORIZED = (
    "Missing or unknown write key: send it as the HTTP Basic user name (as Segment's "
    'SDKs do) or as "writeKey" in the body.'
)


class TrackingApiView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []  # the body may be gzip: it is read and decoded here
    http_method_names = ["post", "options"]

    @extend_schema(
        operation_id="tracking_api",
        request={"application/json": {"type": "object"}},
        parameters=[
            OpenApiParameter(
                "call",
                str,
                OpenApiParameter.PATH,
                enum=[*tracking.SINGLE_CALLS, *tracking.BATCH_CALLS],
            )
        ],
        responses={
            200: SuccessSerializer,
            400: OpenApiResponse(
                FailureSerializer, "Not JSON, not Segment events, or over Segment's limits."
            ),
            401: OpenApiResponse(FailureSerializer, "Missing or unknown write key."),
            404: OpenApiResponse(description="Not one of Segment's Tracking API calls."),
        },
    )
    def post(self, request: Request, call: str) -> Response:
        max_bytes = settings.TRACKING_API_MAX_REQUEST_BYTES
        if problem := body_problem(request, max_bytes):
            # Segment's API answers 400 for oversize input too.
            return _failure(status.HTTP_400_BAD_REQUEST, problem[1])
        try:
            body = tracking.decompress(
                request.body, request.headers.get("Content-Encoding", ""), max_bytes
            )
            data = ingest.load_json(body, max_bytes)
        except (ingest.InvalidPayload, ingest.PayloadTooLarge) as exc:
            return _failure(status.HTTP_400_BAD_REQUEST, str(exc))
        destination = tracking.destination_for(request.headers, data)
        if destination is None:
            return _failure(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
        try:
            events = tracking.events(call, data, ingest.TRACKING_API_MAX_EVENTS)
        except (ingest.InvalidPayload, ingest.PayloadTooLarge) as exc:
            return _failure(status.HTTP_400_BAD_REQUEST, str(exc))
        try:
            ingest.ingest(destination, events)
        except ingest.DestinationGone:
            return _failure(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
        return Response({"success": True})


def _failure(code: int, message: str) -> Response:
    return Response({"success": False, "message": message}, status=code)
