"""Container health checks call the probes by address (127.0.0.1:8000), while
DJANGO_ALLOWED_HOSTS names only the public host: the probes must still answer,
and nothing else may."""

import pytest
from django.test import override_settings

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.urls("integration_site.urls"),
]

PUBLIC_ONLY = override_settings(
    ALLOWED_HOSTS=["segment-destination.example.com"], SECURE_SSL_REDIRECT=True
)


@PUBLIC_ONLY
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_by_address_over_plain_http(client, path):
    response = client.get(path, HTTP_HOST="127.0.0.1:8000")

    assert response.status_code == 200, response.content


@PUBLIC_ONLY
def test_other_paths_still_refuse_an_unknown_host(client):
    assert client.get("/admin/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    assert client.post("/healthz", HTTP_HOST="127.0.0.1:8000").status_code == 400
