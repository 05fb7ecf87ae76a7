"""Outbound safety: https only (plain http for allowed local hosts), TLS verified,
redirects not followed, a timeout on every call."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.test import override_settings

from destinations.models import DeliveryAttempt, Destination, InboundEvent, validate_base_url
from destinations.services import delivery
from destinations.talon_one import Outcome, TalonOneClient
from tests.conftest import pending_profile_update
from tests.local_server import Handler, local_server


def redirect_to(location: str) -> Handler:
    def handle(request: BaseHTTPRequestHandler, body: bytes) -> None:
        request.send_response(307)
        request.send_header("Location", location)
        request.send_header("Content-Length", "0")
        request.end_headers()

    return handle


def no_content(request: BaseHTTPRequestHandler, body: bytes) -> None:
    request.send_response(204)
    request.end_headers()


def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.mark.parametrize(
    "url",
    ["http://acme.talon.one", "ftp://acme.talon.one", "https://", "//acme.talon.one"],
)
def test_base_url_must_be_https_except_for_allowed_local_hosts(url):
    with pytest.raises(ValidationError):
        validate_base_url(url)


def test_plain_http_is_allowed_only_for_the_listed_hosts():
    with override_settings(TALON_HTTP_ALLOWED_HOSTS=["127.0.0.1"]):
        validate_base_url("http://127.0.0.1:8010")
        with pytest.raises(ValidationError, match="Use https"):
            validate_base_url("http://localhost:8010")
    with override_settings(TALON_HTTP_ALLOWED_HOSTS=[]), pytest.raises(ValidationError):
        validate_base_url("http://127.0.0.1:8010")


def test_a_redirect_is_not_followed():
    with (
        local_server(no_content) as (target, target_paths),
        local_server(redirect_to(f"{target}/v2/customer_profiles")) as (base_url, paths),
    ):
        result = TalonOneClient(base_url, "key").update_profiles({"u1": {"plan": "gold"}})

    assert (result.status, result.outcome) == (307, Outcome.PERMANENT)
    assert paths == ["/v2/customer_profiles?silent=yes"]
    assert target_paths == []


@pytest.mark.django_db
def test_a_redirect_fails_the_delivery_for_good(no_broker):
    with local_server(redirect_to("https://elsewhere.example.com/")) as (base_url, _paths):
        destination = Destination.objects.create(
            name="Acme", slug="acme", base_url=base_url, api_key="key", shared_secret="s"
        )
        pending_profile_update(destination)

        delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.FAILED
    assert "307" in event.reason
    assert DeliveryAttempt.objects.get().outcome == DeliveryAttempt.Outcome.FAILED


def test_tls_certificates_are_verified(tmp_path):
    with local_server(no_content, tls=self_signed_context(tmp_path)) as (base_url, paths):
        result = TalonOneClient(base_url, "key").update_profiles({"u1": {"plan": "gold"}})

    assert result.outcome is Outcome.RETRY
    assert result.error == "TLS error: Talon.One's certificate could not be verified"
    assert paths == []  # the request never got past the handshake


def test_every_call_has_a_timeout():
    def hang(request: BaseHTTPRequestHandler, body: bytes) -> None:
        done.wait(5)

    done = threading.Event()
    with (
        override_settings(TALON_CONNECT_TIMEOUT=1.0, TALON_READ_TIMEOUT=0.3),
        local_server(hang) as (base_url, _paths),
    ):
        result = TalonOneClient(base_url, "key").update_profile("u1", {"plan": "gold"}, False)
        done.set()

    assert (result.outcome, result.error) == (Outcome.RETRY, "Timed out waiting for Talon.One")
    assert result.duration_ms < 3000
