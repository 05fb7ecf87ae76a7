import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from talon_sandbox.client import SandboxClient
from talon_sandbox.server import SandboxServer, running_sandbox

from .helpers import API_KEY, ATTRIBUTES, TalonApi


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with running_sandbox(api_keys=[API_KEY], attributes=ATTRIBUTES) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxClient:
    """The control API, with the sandbox reset to the tests' configuration."""
    client = SandboxClient(sandbox_server.url)
    client.reset(attributes=ATTRIBUTES, api_keys=[API_KEY])
    return client


@pytest.fixture
def api(sandbox: SandboxClient) -> TalonApi:
    return TalonApi(sandbox.base_url)


SCHEMAS_PATH = Path(__file__).resolve().parents[1] / "data" / "talon_one_schemas.json"


@pytest.fixture(scope="session")
def operations() -> dict[str, Any]:
    """Talon.One's schemas of the operations used (bin/extract_talon_schemas.py)."""
    assert SCHEMAS_PATH.is_file(), (
        f"{SCHEMAS_PATH.name} is missing: run bin/extract_talon_schemas.py on Talon.One's "
        "OpenAPI document"
    )
    return json.loads(SCHEMAS_PATH.read_text())["operations"]
