"""A small client for the sandbox's control API (tests, benchmarks, demo)."""

import time
from typing import Any
from urllib.parse import quote

import requests


class SandboxClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def reset(
        self,
        *,
        attributes: dict[str, str] | None = None,
        api_keys: list[str] | None = None,
    ) -> None:
        """Clear profiles, request log, stats and faults; optionally replace config."""
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if api_keys is not None:
            body["api_keys"] = api_keys
        self._call("POST", "/reset", body)

    def attributes(self) -> dict[str, str]:
        return self._call("GET", "/attributes")

    def set_attributes(self, attributes: dict[str, str]) -> None:
        """Replace the customer-profile attribute catalogue, e.g. {"age": "number"}."""
        self._call("PUT", "/attributes", attributes)

    def set_api_keys(self, api_keys: list[str]) -> None:
        self._call("PUT", "/api-keys", api_keys)

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/faults")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Merge faults (see talon_sandbox.state.Faults); returns them all:

        down=True (503 to everything), fail_next=[500, 503, 409] (the next
        Integration API requests answer these, one each, in order),
        error_rate={"500": 0.2} (chance per request), retry_after=SECONDS (on injected
        429/503), latency_ms=MS (updates hold their profiles this long; creating an
        audience takes as long), reject_profiles=["id"] (their updates fail validation).
        """
        return self._call("PUT", "/faults", faults)

    def profiles(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/profiles")

    def profile(self, integration_id: str) -> dict[str, Any] | None:
        response = self._request("GET", "/profiles/" + quote(integration_id, safe=""))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def audiences(self) -> list[dict[str, Any]]:
        return self._call("GET", "/audiences")

    def requests_log(self) -> list[dict[str, Any]]:
        return self._call("GET", "/requests")

    def stats(self) -> dict[str, Any]:
        """requests, by_status, profiles_updated, profiles, parallel_conflicts (real
        409s: a request for a profile another request was updating), in_flight."""
        return self._call("GET", "/stats")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll until the sandbox answers; TimeoutError if it does not in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._request("GET", "/stats").raise_for_status()
                return
            except requests.RequestException as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"sandbox at {self.base_url} not ready") from exc
                time.sleep(0.1)

    def wait_in_flight(self, count: int = 1, timeout: float = 10.0) -> None:
        """Poll until at least `count` Integration API requests are being handled
        (with latency_ms, an update stays in flight that long); TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while self.stats()["in_flight"] < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"fewer than {count} requests in flight after {timeout}s")
            time.sleep(0.01)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._request(method, path, body)
        response.raise_for_status()
        return response.json() if response.content else None

    def _request(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self._session.request(
            method,
            f"{self.base_url}/sandbox{path}",
            json=body,
            timeout=self.timeout,
        )
