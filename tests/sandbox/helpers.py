"""Shared test helpers: an Integration API caller and the catalogue the tests use."""

from typing import Any
from urllib.parse import quote

import requests

API_KEY = "test-key"
ATTRIBUTES = {
    "email": "string",
    "age": "number",
    "vip": "boolean",
    "createdAt": "time",
    "home": "location",
    "tags": "(list string)",
    "scores": "(list number)",
    "visits": "(list time)",
    "places": "(list location)",
}


class TalonApi:
    """Calls the sandbox's Integration API like a Talon.One client would."""

    def __init__(self, base_url: str, api_key: str = API_KEY) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"ApiKey-v1 {api_key}"

    def authping(self, **headers: str) -> requests.Response:
        return self.session.get(f"{self.base_url}/v2/authping", headers=headers, timeout=10)

    def put_profile(self, integration_id: str, body: Any, **params: str) -> requests.Response:
        return self.session.put(
            f"{self.base_url}/v2/customer_profiles/{quote(integration_id, safe='')}",
            json=body,
            params=params,
            timeout=10,
        )

    def put_profiles(self, profiles: list[dict[str, Any]], **params: str) -> requests.Response:
        return self.session.put(
            f"{self.base_url}/v2/customer_profiles",
            json={"customerProfiles": profiles},
            params=params,
            timeout=10,
        )


def pointers(response: requests.Response) -> list[str]:
    return [error["source"].get("pointer") for error in response.json()["errors"]]
