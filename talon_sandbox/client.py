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
        """Merge faults: down, latency_ms, error_rate, retry_after, reject_profiles."""
        return self._call("PUT", "/faults", faults)

    def profiles(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/profiles")

    def profile(self, integration_id: str) -> dict[str, Any] | None:
        response = self._request("GET", "/profiles/" + quote(integration_id, safe=""))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def requests_log(self) -> list[dict[str, Any]]:
        return self._call("GET", "/requests")

    def stats(self) -> dict[str, Any]:
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
