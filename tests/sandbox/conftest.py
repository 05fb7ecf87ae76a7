from collections.abc import Iterator

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
