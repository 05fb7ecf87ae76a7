"""`make run` prints the demo's login, URLs and curl last: setup_demo waits
until the web server and the sandbox answer."""

import io

import pytest
from django.core.management import CommandError, call_command

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_prints_once_web_and_sandbox_answer(live_server, sandbox_server):
    out = io.StringIO()
    call_command("setup_demo", "--wait", "10", web_url=live_server.url,
                 sandbox_url=sandbox_server.url, stdout=out)  # fmt: skip

    assert "login admin / admin" in out.getvalue()


def test_prints_nothing_when_the_web_server_never_answers(sandbox_server):
    out = io.StringIO()
    with pytest.raises(CommandError, match="did not answer"):
        call_command("setup_demo", "--wait", "1", web_url=f"http://127.0.0.1:{free_port()}",
                     sandbox_url=sandbox_server.url, stdout=out)  # fmt: skip

    assert out.getvalue() == ""
