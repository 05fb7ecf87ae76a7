"""docker-compose.yml comes up healthy with the README's .env and delivers an
event: its services run as processes (topology.py says how, and what
differs from the containers)."""

import json

import pytest
import requests
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import API_KEY, SECRET, identify, sign
from tests.e2e.conftest import wait_for
from tests.e2e.production.topology import (
    PUBLIC_HOST,
    README_ENV,
    Topology,
    dockerignore_patterns,
    ignored,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# What the TLS terminator in front adds to every request.
THROUGH_TLS = {"Host": PUBLIC_HOST, "X-Forwarded-Proto": "https"}


def post(topology: Topology, path: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(
        topology.services["proxy"].url + path,
        data=body,
        headers={**THROUGH_TLS, "Content-Type": "application/json", **headers},
        timeout=30,
    )


def test_web_worker_and_beat_wait_for_the_one_shot_migrate(topology):
    services = topology.config["services"]

    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert "[ ]" not in topology.manage("showmigrations", "--plan")


def test_every_health_check_passes(topology):
    checked = {
        name: service
        for name, service in topology.services.items()
        if "healthcheck" in service.spec and name != "postgres"
    }

    assert set(checked) == {"redis", "web", "proxy", "worker"}
    for service in checked.values():
        topology.wait_healthy(service)  # fails as compose would: unhealthy


def deliver(topology: Topology, user_id: str) -> None:
    """A destination `shop` (made once, as an operator would), then one signed
    identify through the proxy, seen arriving at Talon.One."""
    topology.manage(
        "create_destination", "--slug", "shop", "--name", "Shop",
        "--base-url", topology.sandbox.base_url, "--api-key", API_KEY,
        "--shared-secret", SECRET, "--attribute", "email", "--attribute", "plan",
    )  # fmt: skip
    body = json.dumps(identify(user_id, f"message-{user_id}")).encode()

    response = post(topology, "/api/v1/segment/shop/", body, **{"X-Signature": sign(body)})

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    profile = wait_for(lambda: topology.sandbox.profile(user_id), timeout=60)
    assert profile["attributes"] == {"email": "ada@example.com", "plan": "gold"}


def test_a_signed_identify_through_the_proxy_reaches_talon_one(topology):
    deliver(topology, "topology-user-1")


def test_prometheus_scrapes_web_with_the_token_and_the_proxy_hides_it(topology):
    deliver(topology, "topology-user-2")
    web = topology.services["web"].url
    token = {"Authorization": f"Bearer {README_ENV['METRICS_TOKEN']}"}

    scraped = requests.get(f"{web}/metrics", headers=token, timeout=10)
    hidden = requests.get(topology.services["proxy"].url + "/metrics", headers=token, timeout=10)

    assert scraped.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    # Added up over the gunicorn workers (PROMETHEUS_MULTIPROC_DIR), whichever served it.
    accepted = (("endpoint", "segment-ingest"), ("outcome", "accepted"))
    assert samples[("segment_ingest_requests_total", accepted)] >= 1
    delivered = (("destination", "shop"), ("status", "delivered"))
    assert samples[("segment_events", delivered)] >= 1
    assert samples[("talon_one_recent_requests", (("destination", "shop"), ("status", "204")))]
    assert hidden.status_code == 404


def test_the_admin_and_its_static_files_are_served(topology):
    proxy = topology.services["proxy"].url
    login = requests.get(f"{proxy}/admin/login/", headers=THROUGH_TLS, timeout=10)
    css = requests.get(f"{proxy}/static/admin/css/base.css", headers=THROUGH_TLS, timeout=10)

    assert login.status_code == 200
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")


def test_an_unknown_host_is_still_refused(topology):
    response = requests.get(
        topology.services["proxy"].url + "/admin/login/",
        headers={"X-Forwarded-Proto": "https"},
        timeout=10,
    )

    assert response.status_code == 400


def test_the_proxy_lets_through_what_the_service_accepts_and_no_more(topology):
    """The proxy's body limit is above the ingest limit: an oversized batch gets
    the service's own answer (JSON), a far larger one never reaches gunicorn."""
    limit = settings.INGEST_MAX_REQUEST_BYTES
    over_ingest = post(topology, "/api/v1/segment/shop/", b" " * (limit + 1))
    far_over = post(topology, "/api/v1/segment/shop/", b" " * (limit * 2))

    assert over_ingest.status_code == 413
    assert over_ingest.json() == {"detail": f"The request body is larger than {limit} bytes."}
    assert far_over.status_code == 413
    assert far_over.headers["Content-Type"].startswith("text/html")  # nginx's page


@pytest.mark.parametrize("path", [".env", ".env.production", ".git", ".venv", "var"])
def test_the_image_leaves_out_secrets_and_local_state(path):
    assert ignored(path, dockerignore_patterns())


def test_the_image_keeps_what_its_services_run():
    patterns = dockerignore_patterns()

    for path in ("manage.py", "gunicorn.conf.py", "requirements.txt", "integration_site"):
        assert not ignored(path, patterns), path
