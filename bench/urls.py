"""The product's URLs plus /bench/bare/: a Django view that does nothing, behind the
same middleware and gunicorn workers as ingest, the baseline ingest is measured against."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from bench.payloads import BARE_PATH
from integration_site.urls import urlpatterns as product_urlpatterns


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path(BARE_PATH.strip("/") + "/", bare), *product_urlpatterns]
