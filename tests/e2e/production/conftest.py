"""One production topology (docker-compose.yml as processes, see topology.py)
for all the tests of this folder."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.e2e.production.topology import Topology


@pytest.fixture(scope="package")
def topology(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """The whole stack, once for this folder; every process's output is shown
    when one of its tests failed."""
    failed_before = request.session.testsfailed
    topology = Topology(tmp_path_factory.mktemp("topology"))
    try:
        topology.up()
        topology.start_sandbox()
        yield topology
    finally:
        topology.down()
        if request.session.testsfailed > failed_before or sys.exc_info()[0] is not None:
            print(topology.logs())
