"""Issue #10, item 9: base URLs that reach where Talon.One never is.

The base URL took link-local, private and metadata addresses, impossible ports
and spaces in hosts (those retried for a day), and open and closed ports read
differently: a port scanner. Now it must be https to a valid host and port on a
public address (unless listed in TALON_HTTP_ALLOWED_HOSTS), the resolved address
is checked again when connecting, and no-answer reasons are alike.

No test here sends anything beyond loopback: forbidden addresses come from a
patched name resolution, with connect() itself refusing, so even a broken check
could not reach them.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import override_settings

from destinations.models import DeliveryAttempt, Destination, InboundEvent, validate_base_url
from destinations.services import delivery
from destinations.talon_one import GuardedAdapter, Outcome, TalonOneClient
from tests.conftest import pending_profile_update
from tests.local_server import local_server
from tests.security.conftest import API_KEY, SECRET, change_form_data

REFUSED = [
    "https://169.254.169.254",  # cloud metadata (link-local)
    "https://10.0.0.1:6379",
    "https://192.168.1.1",
    "https://172.16.0.1",
    "https://100.100.100.200",  # a cloud's metadata, in shared address space
    "https://127.0.0.1",
    "https://0.0.0.0",
    "https://[::1]",
    "https://[fe80::1]",
    "https://[fd00:ec2::254]",  # AWS metadata over IPv6
    "https://[::ffff:169.254.169.254]",
    "https://[2002:a9fe:a9fe::1]",  # 6to4 around 169.254.169.254
    "https://224.0.0.1",
    "https://localhost",
    "https://talon.localhost",
    "https://metadata.google.internal",
    "https://2852039166",  # 169.254.169.254 as one number
    "https://127.1",
    "https://0x7f.0.0.1",
    "https://acme.talon.one:99999",
    "https://acme.talon.one:0",
    "https://acme.talon.one:http",
    "https://acme talon.one",
    "https://acme%20talon.one",
    "https://acme.talon.one\n",
    "https://-acme.talon.one",
    "https://acme..talon.one",
]
ACCEPTED = [
    "https://acme.talon.one",
    "https://acme.europe-west1.talon.one:443",
    "https://acme.talon.one:8443",
    "https://8.8.8.8",
    "https://[2606:4700::1111]",
]


@pytest.mark.parametrize("url", REFUSED)
@override_settings(TALON_HTTP_ALLOWED_HOSTS=[])
def test_the_validator_refuses_unreachable_and_internal_base_urls(url):
    with pytest.raises(ValidationError):
        validate_base_url(url)


@pytest.mark.parametrize("url", ACCEPTED)
@override_settings(TALON_HTTP_ALLOWED_HOSTS=[])
def test_the_validator_accepts_public_https_hosts(url):
    validate_base_url(url)


@override_settings(TALON_HTTP_ALLOWED_HOSTS=["10.0.0.1", "talon-sandbox"])
def test_listed_hosts_are_allowed_even_when_internal():
    validate_base_url("https://10.0.0.1:8443")
    validate_base_url("http://talon-sandbox:8010")
    with pytest.raises(ValidationError):
        validate_base_url("https://10.0.0.2")
    with pytest.raises(ValidationError, match="port"):
        validate_base_url("http://talon-sandbox:99999")


@pytest.mark.django_db
@override_settings(TALON_HTTP_ALLOWED_HOSTS=[])
def test_the_cli_and_the_admin_refuse_a_metadata_address(login, operator, destination):
    with pytest.raises(CommandError, match="refused"):
        call_command(
            "create_destination",
            "--slug=meta",
            "--name=Meta",
            "--base-url=https://169.254.169.254",
            f"--api-key={API_KEY}",
            f"--shared-secret={SECRET}",
        )
    client = login(operator)
    url = f"/admin/destinations/destination/{destination.pk}/change/"
    data = change_form_data(client.get(url))
    data.update({"base_url": "https://10.0.0.1:6379", "_save": "Save"})

    response = client.post(url, data)

    assert response.status_code == 200
    assert "refused" in response.content.decode()
    destination.refresh_from_db()
    assert destination.base_url != "https://10.0.0.1:6379"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "base_url",
    ["https://acme talon.one", "https://acme.talon.one:99999", "acme.talon.one", "ftp://acme.one"],
)
def test_a_stored_unusable_base_url_fails_at_once_instead_of_retrying_for_a_day(
    base_url, no_broker
):
    """Rows saved before the validator existed (or written around it)."""
    destination = Destination.objects.create(
        name="Acme", slug="acme", base_url=base_url, api_key=API_KEY, shared_secret=SECRET
    )
    pending_profile_update(destination)

    delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.FAILED
    assert event.reason == "Not sent: the base URL is not valid; correct it"
    assert DeliveryAttempt.objects.get().outcome == DeliveryAttempt.Outcome.FAILED


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every connect() of this process: recorded, then refused, so nothing leaves."""
    attempted: list[object] = []

    def refuse(sock: socket.socket, address: object) -> None:
        attempted.append(address)
        raise ConnectionRefusedError("tests connect nowhere here")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempted


def resolve(monkeypatch: pytest.MonkeyPatch, name: str, *addresses: str) -> None:
    """Make `name` resolve to these addresses, in this order (DNS rebinding)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port or 443),
            )
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "addresses",
    [
        ["169.254.169.254"],
        ["10.0.0.1"],
        ["fd00:ec2::254"],
        ["::ffff:127.0.0.1"],
        ["93.184.215.14", "10.0.0.1"],  # one bad address is enough
    ],
)
@override_settings(TALON_HTTP_ALLOWED_HOSTS=[])
def test_a_name_that_resolves_to_a_forbidden_address_is_not_connected_to(
    monkeypatch, connects, addresses
):
    resolve(monkeypatch, "acme.talon.one", *addresses)
    validate_base_url("https://acme.talon.one")  # fine when saved

    result = TalonOneClient("https://acme.talon.one", API_KEY).update_profiles({"u1": {}})

    assert connects == []
    assert result.outcome is Outcome.PERMANENT
    assert "not allowed" in result.error


@override_settings(TALON_HTTP_ALLOWED_HOSTS=[])
def test_localhost_is_not_connected_to_when_not_listed():
    """A real lookup of a real name, to a listening port: no connection is made."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.3)
        port = listener.getsockname()[1]

        result = TalonOneClient(f"https://localhost:{port}", API_KEY).update_profiles({"u1": {}})

        assert result.outcome is Outcome.PERMANENT
        assert "not allowed" in result.error
        with pytest.raises(TimeoutError):
            listener.accept()


def certificate_for(name: str, tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a self-signed certificate for `name`, and the certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
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
    return context, cert_file


@pytest.fixture
def hosts_seen() -> list[str]:
    return []


@pytest.fixture
def talon_test(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hosts_seen: list[str]
) -> Iterator[Callable[[str], AbstractContextManager[tuple[str, list[str]]]]]:
    """An https server on 127.0.0.1 reached as https://talon.test (the address is listed,
    the name is not): the connection is pinned to the address, TLS checks the name."""

    def serve(certificate_name: str) -> AbstractContextManager[tuple[str, list[str]]]:
        context, cert_file = certificate_for(certificate_name, tmp_path)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))

        def answer(request: BaseHTTPRequestHandler, body: bytes) -> None:
            hosts_seen.append(request.headers["Host"])
            request.send_response(204)
            request.end_headers()

        return local_server(answer, tls=context)

    resolve(monkeypatch, "talon.test", "127.0.0.1")
    with override_settings(TALON_HTTP_ALLOWED_HOSTS=["127.0.0.1"]):
        yield serve


def test_a_pinned_connection_still_verifies_tls_against_the_name(talon_test, hosts_seen):
    with talon_test("talon.test") as (url, paths):
        port = url.rsplit(":", 1)[1]
        result = TalonOneClient(f"https://talon.test:{port}", API_KEY).update_profiles({"u1": {}})

    assert (result.outcome, result.status) == (Outcome.SUCCESS, 204)
    assert hosts_seen == [f"talon.test:{port}"]
    with talon_test("elsewhere.test") as (url, paths):
        port = url.rsplit(":", 1)[1]
        result = TalonOneClient(f"https://talon.test:{port}", API_KEY).update_profiles({"u1": {}})

    assert result.error == "TLS error: Talon.One's certificate could not be verified"
    assert paths == []


@pytest.mark.parametrize(
    ("url", "host_header"),
    [
        ("https://talon.test/v2/x", "talon.test"),
        ("https://talon.test:8443/v2/x", "talon.test:8443"),
    ],
)
@override_settings(TALON_HTTP_ALLOWED_HOSTS=["127.0.0.1"])
def test_the_pool_goes_to_the_address_resolved_and_names_the_host_for_tls_and_http(
    monkeypatch, url, host_header
):
    resolve(monkeypatch, "talon.test", "127.0.0.1")
    request = requests.Request("PUT", url).prepare()

    host_params, pool_kwargs = GuardedAdapter().build_connection_pool_key_attributes(request, True)

    assert host_params["host"] == "127.0.0.1"
    assert request.headers["Host"] == host_header
    assert (pool_kwargs["server_hostname"], pool_kwargs["assert_hostname"]) == ("talon.test",) * 2


@pytest.fixture
def closed_port() -> Iterator[int]:
    """Bound, not listening: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def filtered_port() -> Iterator[int]:
    """A full accept queue: the SYN is dropped and the connection times out, as at a
    firewall that filters the port."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            yield port
        finally:
            for filler in fillers:
                filler.close()


@override_settings(TALON_CONNECT_TIMEOUT=0.5, TALON_HTTP_ALLOWED_HOSTS=["127.0.0.1"])
def test_closed_and_filtered_ports_read_the_same(closed_port, filtered_port):
    closed = TalonOneClient(f"http://127.0.0.1:{closed_port}", API_KEY).update_profiles({"u": {}})
    filtered = TalonOneClient(f"http://127.0.0.1:{filtered_port}", API_KEY).update_profiles(
        {"u": {}}
    )

    assert filtered.duration_ms >= 400  # it did time out: the port was filtered
    assert (closed.outcome, closed.error) == (filtered.outcome, filtered.error)
    assert closed.error == "Could not connect to Talon.One"


def test_the_validator_does_not_look_names_up(monkeypatch):
    """Saving a destination must not send a DNS query anywhere."""

    def no_lookup(*args, **kwargs):
        raise AssertionError("the validator resolved a name")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    validate_base_url("https://acme.talon.one")
