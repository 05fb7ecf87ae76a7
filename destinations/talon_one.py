"""The Talon.One Integration API client: URLs, headers, timeouts, which
addresses may be reached, and the classification of every outcome as success,
retryable or permanent.

Nothing else in the project builds Talon.One requests.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone
from requests.adapters import HTTPAdapter

from destinations.fields import is_valid_secret

RESPONSE_BODY_LIMIT = 4000  # characters stored and shown
RESPONSE_READ_LIMIT = 1_000_000  # bytes read: a bulk 400 names up to 1,000 profiles
MESSAGE_LIMIT = 500
REDACTED = "[redacted]"
BULK_LIMIT = 1000  # profiles per PUT /v2/customer_profiles
MAX_RETRY_AFTER_SECONDS = 3600.0

# Global by Python's standard, yet carrying an IPv4 address inside (6to4, NAT64):
# Talon.One is never there, and they can lead back to a private network.
_EMBEDDING_IPV4 = tuple(
    ipaddress.ip_network(net) for net in ("2002::/16", "64:ff9b::/96", "64:ff9b:1::/48")
)
# Names that point at this machine or a cloud's metadata service without a lookup.
_LOCAL_NAMES = ("localhost", "metadata", "metadata.google.internal", "instance-data")


class Outcome(enum.Enum):
    SUCCESS = "success"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Result:
    """What one request did. `url` and `body` are what was sent, minus the key."""

    method: str
    url: str
    body: dict[str, Any]
    outcome: Outcome
    status: int | None
    response_body: str  # truncated for the audit log
    error: str
    duration_ms: int
    retry_after: float | None = None
    message: str = ""
    # The answer's JSON on success (a created audience's id, say); None otherwise.
    data: Any = None

    def summary(self) -> str:
        """A one-line reason for operators."""
        if self.status is None:
            return self.error
        detail = f": {self.message}" if self.message else ""
        return f"Talon.One answered {self.status}{detail}"


def read_error(text: str) -> str:
    """Talon.One's error message. Only shown to people: the format of its details
    is not documented, so nothing is decided on them."""
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return ""
    return data["message"][:MESSAGE_LIMIT]


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.SUCCESS
    # 409: parallel update of one profile; 429: rate limited; 5xx: their outage.
    if status in (408, 409, 425, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.PERMANENT


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait, from delta-seconds or an HTTP date; at most an hour."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def allowed_hosts() -> set[str]:
    return {host.lower() for host in settings.TALON_HTTP_ALLOWED_HOSTS}


def address_allowed(address: str) -> bool:
    """Public unicast only, unless listed in TALON_HTTP_ALLOWED_HOSTS: never
    loopback, private, link-local (cloud metadata), reserved or multicast."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if address.lower() in allowed_hosts() or str(ip) in allowed_hosts():
        return True
    if any(ip in network for network in _EMBEDDING_IPV4):
        return False
    return ip.is_global and not ip.is_multicast


def base_url_error(value: str) -> str:
    """Why a destination's base URL is refused, or "" when it is fine."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "Enter a valid host and port (1 to 65535)."
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "Enter the deployment's root URL, e.g. https://mycompany.talon.one."
    listed = host in allowed_hosts()
    if parts.scheme == "http" and not listed:
        return (
            "Use https. Plain http is allowed only for hosts in TALON_HTTP_ALLOWED_HOSTS "
            "(the local sandbox)."
        )
    if parts.path or parts.query or parts.fragment or value.endswith("/"):
        return "Give the host only: no path, query or trailing slash."
    if parts.username or parts.password:
        return "Do not put credentials in the URL; use the API key field."
    if port == 0:
        return "Enter a valid host and port (1 to 65535)."
    if listed:
        return ""
    try:
        URLValidator(schemes=["https"])(value)
    except ValidationError:
        return "Enter a valid host name, e.g. https://mycompany.talon.one."
    refused = (
        "This host is refused: loopback, private, link-local and cloud metadata addresses "
        "are reachable only when listed in TALON_HTTP_ALLOWED_HOSTS."
    )
    try:
        return "" if address_allowed(host) else refused
    except ValueError:  # a name, not an address: checked again once resolved
        name = host.rstrip(".")
        return refused if name in _LOCAL_NAMES or name.endswith(".localhost") else ""


class AddressNotAllowed(requests.RequestException):
    pass


class GuardedAdapter(HTTPAdapter):
    """Connects only to allowed addresses, checked when the request is sent (a
    name may resolve elsewhere than when it was saved: DNS rebinding).

    The name is resolved once, every address it has is checked, and the
    connection goes to the first of them: no second lookup can swap it. TLS is
    still verified against the name (SNI and certificate), and the Host header
    carries it."""

    def build_connection_pool_key_attributes(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host, port = host_params["host"], host_params["port"]
        if host in allowed_hosts():
            return host_params, pool_kwargs
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise requests.ConnectionError("name resolution failed") from exc
        addresses = [str(info[4][0]) for info in found]
        if not addresses or not all(address_allowed(address) for address in addresses):
            raise AddressNotAllowed("address not allowed")
        if addresses[0] != host:
            request.headers["Host"] = host if port is None else f"{host}:{port}"
            if host_params["scheme"] == "https":
                pool_kwargs["server_hostname"] = host
                pool_kwargs["assert_hostname"] = host
            host_params["host"] = addresses[0]
        return host_params, pool_kwargs


def guarded_session() -> requests.Session:
    session = requests.Session()
    session.mount("https://", GuardedAdapter())
    session.mount("http://", GuardedAdapter())
    return session


BAD_KEY = (
    "The Integration API key cannot be sent: it holds characters other than printable "
    "ASCII (a space or an invisible character, say). Set it again."
)


class _ApiClient:
    """What Talon.One's two APIs share: the guarded session, timeouts, key check,
    redaction and error reading. Each API's client adds its own requests only, so
    neither can send the other's with its key."""

    # How the key is named in the Authorization header, and the reason given
    # when it cannot be sent.
    auth_scheme: str
    bad_key: str

    def __init__(self, base_url: str, api_key: str, session: requests.Session | None = None):
        self.base_url = base_url
        self._api_key = api_key
        self._session = session or guarded_session()

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> Result:
        url = self.base_url + path
        shown = body if body is not None else {}
        started = time.monotonic()
        if not is_valid_secret(self._api_key):
            return Result(
                method, url, shown, Outcome.PERMANENT, None, "", self.bad_key, _elapsed_ms(started)
            )
        try:
            response = self._session.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"{self.auth_scheme} {self._api_key}"},
                timeout=(settings.TALON_CONNECT_TIMEOUT, settings.TALON_READ_TIMEOUT),
                allow_redirects=False,
                stream=True,
            )
            with response:
                text = _read_text(response)
        except Exception as exc:  # every failure to build or send becomes a recorded attempt
            # The reason names the kind of failure only: the exception's text
            # may quote the URL and headers, the key among them.
            outcome, error = _failure(exc)
            return Result(method, url, shown, outcome, None, "", error, _elapsed_ms(started))
        text = self._redact(text)
        outcome = classify(response.status_code)
        return Result(
            method=method,
            url=url,
            body=shown,
            outcome=outcome,
            status=response.status_code,
            response_body=text[:RESPONSE_BODY_LIMIT],
            error="",
            duration_ms=_elapsed_ms(started),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            message="" if outcome is Outcome.SUCCESS else read_error(text),
            data=_json(text) if outcome is Outcome.SUCCESS else None,
        )

    def _redact(self, text: str) -> str:
        """Talon.One's answer without the key, even if the answer echoes the request
        (as sent, JSON-escaped or percent-encoded). Before any cut, so no half of it
        stays either."""
        forms = {self._api_key, json.dumps(self._api_key)[1:-1], quote(self._api_key, safe="")}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, REDACTED)
        return text


class TalonOneClient(_ApiClient):
    """Talon.One's Integration API."""

    auth_scheme = "ApiKey-v1"
    bad_key = BAD_KEY

    def update_profile(
        self,
        integration_id: str,
        attributes: dict[str, Any],
        run_rule_engine: bool,
        dry: bool = False,
    ) -> Result:
        """PUT /v2/customer_profiles/{integrationId}; dry (only with the rule engine,
        says Talon.One) validates and answers without storing anything."""
        path = f"/v2/customer_profiles/{quote(integration_id, safe='')}"
        query = f"?runRuleEngine={'true' if run_rule_engine else 'false'}"
        if dry:
            query += "&dry=true"
        return self._send("PUT", path + query, {"attributes": attributes})

    def update_profiles(self, profiles: dict[str, dict[str, Any]]) -> Result:
        if len(profiles) > BULK_LIMIT:
            raise ValueError(f"Talon.One takes at most {BULK_LIMIT} profiles per bulk request")
        body = {
            "customerProfiles": [
                {"integrationId": integration_id, "attributes": attributes}
                for integration_id, attributes in profiles.items()
            ]
        }
        return self._send("PUT", "/v2/customer_profiles?silent=yes", body)

    def track_event(
        self, integration_id: str, event_type: str, attributes: dict[str, Any]
    ) -> Result:
        """POST /v2/events (trackEventV2), silent: no effects are read back."""
        body = {"profileId": integration_id, "type": event_type, "attributes": attributes}
        return self._send("POST", "/v2/events?silent=yes", body)

    def create_audience(self, name: str, integration_id: str) -> Result:
        """POST /v2/audiences (createAudienceV2); the new audience's id is in `data`."""
        body = {"name": name, "integration": "segment", "integrationId": integration_id}
        return self._send("POST", "/v2/audiences", body)

    def update_audiences(self, changes: list[dict[str, Any]]) -> Result:
        """POST /v2/customer_audiences: adds and deletes of memberships, in bulk."""
        if len(changes) > BULK_LIMIT:
            raise ValueError(f"Talon.One takes at most {BULK_LIMIT} changes per request")
        return self._send("POST", "/v2/customer_audiences", {"data": changes})

    def delete_customer_data(self, integration_id: str) -> Result:
        """DELETE /v1/customer_data/{integrationId}: the customer's data in every
        Application of the key's environment."""
        return self._send("DELETE", f"/v1/customer_data/{quote(integration_id, safe='')}", None)

    def authping(self) -> Result:
        """GET /v2/authping: 204 for a valid key, 401 otherwise. Not in the OpenAPI
        document; Segment's own Talon.One destination tests its connection with it."""
        return self._send("GET", "/v2/authping", None)


# Talon.One's Management API allows about 3 requests/s per endpoint.
MANAGEMENT_REQUEST_INTERVAL_SECONDS = 0.35  # a margin for network jitter
MANAGEMENT_PAGE_SIZE = 1000  # the largest pageSize Talon.One takes
MANAGEMENT_MAX_PAGES = 100
MANAGEMENT_RETRIES = 3  # after a 429 or 5xx, waiting Retry-After (or the interval)
MANAGEMENT_MAX_WAIT_SECONDS = 10.0


class CatalogError(Exception):
    """The attribute catalog could not be read; the message says why, in plain words."""


@dataclass(frozen=True)
class CatalogAttribute:
    name: str
    type: str
    title: str
    talon_id: int | None


class ManagementClient(_ApiClient):
    """Talon.One's Management API, read-only: the customer-profile attribute
    definitions. Same guarded session, timeouts, redaction and error reading as
    the Integration API client; requests are spaced to stay within its limit."""

    auth_scheme = "ManagementKey-v1"
    bad_key = (
        "The Management API key cannot be sent: it holds characters other than printable "
        "ASCII (a space or an invisible character, say). Set it again."
    )

    def __init__(
        self,
        base_url: str,
        management_key: str,
        session: requests.Session | None = None,
        *,
        page_size: int = MANAGEMENT_PAGE_SIZE,
        interval: float = MANAGEMENT_REQUEST_INTERVAL_SECONDS,
    ):
        super().__init__(base_url, management_key, session)
        self.page_size = page_size
        self.interval = interval
        self._last_request: float | None = None

    def customer_profile_attributes(self) -> list[CatalogAttribute]:
        """Every CustomerProfile attribute, page by page (GET /v1/attributes).
        Raises CatalogError."""
        found: list[CatalogAttribute] = []
        for page in range(MANAGEMENT_MAX_PAGES):
            skip = page * self.page_size
            data = self._page(skip)
            items, total = data["data"], data["totalResultSize"]
            found.extend(_catalog_attribute(item) for item in items)
            if not items or skip + len(items) >= total:
                return found
        raise CatalogError(
            f"Talon.One's catalog has more than {MANAGEMENT_MAX_PAGES * self.page_size} "
            "attributes; not read."
        )

    def _page(self, skip: int) -> dict[str, Any]:
        path = f"/v1/attributes?entity=CustomerProfile&pageSize={self.page_size}&skip={skip}"
        for _ in range(MANAGEMENT_RETRIES):
            result = self._paced("GET", path)
            if result.outcome is not Outcome.RETRY:
                break
            time.sleep(min(result.retry_after or self.interval, MANAGEMENT_MAX_WAIT_SECONDS))
        if result.outcome is not Outcome.SUCCESS:
            raise CatalogError(_catalog_failure(result))
        data = result.data
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("data"), list)
            or type(data.get("totalResultSize")) is not int
        ):
            raise CatalogError("Talon.One's answer is not a list of attributes.")
        return data

    def _paced(self, method: str, path: str) -> Result:
        if self._last_request is not None:
            wait = self._last_request + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last_request = time.monotonic()
        return self._send(method, path, None)


def _catalog_attribute(item: Any) -> CatalogAttribute:
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("name"), str)
        or not isinstance(item.get("type"), str)
    ):
        raise CatalogError("Talon.One's answer holds an attribute without a name or type.")
    title = item.get("title")
    talon_id = item.get("id")
    return CatalogAttribute(
        name=item["name"],
        type=item["type"],
        title=title if isinstance(title, str) else "",
        talon_id=talon_id if type(talon_id) is int and talon_id >= 0 else None,
    )


def _catalog_failure(result: Result) -> str:
    if result.status is None:
        return result.error
    if result.status in (401, 403):
        reason = "Talon.One refused the Management API key"
    else:
        reason = "Talon.One did not give its attribute catalog"
    detail = f": {result.message}" if result.message else ""
    return f"{reason} (it answered {result.status}{detail})."


def _read_text(response: requests.Response) -> str:
    """At most RESPONSE_READ_LIMIT bytes of the body: a huge answer cannot exhaust memory."""
    data = bytearray()
    for chunk in response.iter_content(64 * 1024):
        data += chunk
        if len(data) >= RESPONSE_READ_LIMIT:
            break
    return bytes(data[:RESPONSE_READ_LIMIT]).decode(response.encoding or "utf-8", "replace")


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


_UNUSABLE_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
)


def _failure(exc: Exception) -> tuple[Outcome, str]:
    """The outcome and reason for a request that got no answer. A refused or
    filtered port, and a host that does not resolve, all read "Could not
    connect": the reason does not tell which ports of a host are open."""
    if isinstance(exc, AddressNotAllowed):
        return Outcome.PERMANENT, (
            "Not sent: the base URL's host resolves to an address that is not allowed "
            "(loopback, private, link-local or metadata)"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return Outcome.RETRY, "TLS error: Talon.One's certificate could not be verified"
    if isinstance(exc, requests.ConnectionError):  # ConnectTimeout included
        return Outcome.RETRY, "Could not connect to Talon.One"
    if isinstance(exc, requests.Timeout):
        return Outcome.RETRY, "Timed out waiting for Talon.One"
    if isinstance(exc, _UNUSABLE_URL):
        return Outcome.PERMANENT, "Not sent: the base URL is not valid; correct it"
    if isinstance(exc, requests.RequestException):
        return Outcome.RETRY, f"Request to Talon.One failed ({type(exc).__name__})"
    return Outcome.PERMANENT, f"Not sent: the request could not be built ({type(exc).__name__})"
