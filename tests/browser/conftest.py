"""A real headless Chromium (Debian's `chromium`, driven by Playwright) against
the real service: gunicorn serving the admin, a Celery worker with beat and the
Talon.One sandbox, each a process of its own on the test database, started
once per module. Each test makes its own data: the database is flushed after it.

With SCREENSHOTS=1 the tests save their pages under docs/screenshots/ (the
README shows them); without, they take none, so a run leaves git clean."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from playwright.sync_api import Browser, Page, expect, sync_playwright

from destinations.models import AttributeMapping, Destination
from talon_sandbox.client import SandboxClient
from tests.browser.caches import GENERATION_FILE
from tests.conftest import API_KEY, CATALOGUE, sign
from tests.e2e.conftest import (
    ROOT,
    Process,
    child_env,
    new_sandbox_process,
    pytest_runtest_makereport,  # noqa: F401 (records each test's outcome for show_output)
    start_sandbox,
    start_web,
    worker_process,
)
from tests.security.conftest import PASSWORD, roles  # noqa: F401 (roles: a fixture)

# A loaded machine (CI has two cores) may take longer than Playwright's 5 s.
expect.set_options(timeout=15_000)

SCREENSHOTS = ROOT / "docs" / "screenshots"
WIDTH = 1280
SHARED_SECRET = "browser-shared-secret-5e1d9a"


@dataclass
class Stack:
    web: str
    sandbox: SandboxClient
    sandbox_port: int
    processes: list[Process]
    generation: Path

    @property
    def talon_url(self) -> str:
        """The sandbox by name, not address: a leak of the base URL is then
        "localhost" in a page, which nothing else there says."""
        return f"http://localhost:{self.sandbox_port}"

    def send(self, slug: str, *events: dict[str, Any]) -> None:
        """Events in as Segment sends them: signed, over HTTP, to the real server."""
        raw = json.dumps(list(events) if len(events) > 1 else events[0]).encode()
        response = requests.post(
            f"{self.web}/api/v1/segment/{slug}/",
            data=raw,
            headers={"Content-Type": "application/json", "X-Signature": sign(raw, SHARED_SECRET)},
            timeout=10,
        )
        response.raise_for_status()


@pytest.fixture(scope="module")
def stack(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("browser")
    generation = log_dir / "generation"
    generation.write_text("0")
    env = {
        **child_env(),
        "DJANGO_SETTINGS_MODULE": "tests.browser.settings",
        GENERATION_FILE: str(generation),
    }
    processes: list[Process] = []
    try:
        sandbox_process = new_sandbox_process(processes, env, log_dir)
        sandbox = start_sandbox(sandbox_process)
        worker_process(processes, env, log_dir).start()
        web = start_web(processes, env, log_dir)
        port = int(sandbox_process.url.rsplit(":", 1)[1])  # type: ignore[attr-defined]
        yield Stack(web, sandbox, port, processes, generation)
    finally:
        for process in reversed(processes):
            process.stop()


@pytest.fixture(autouse=True)
def show_output(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    """The processes' output when a test fails."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in stack.processes:
            print(f"----- {process.name} -----\n{process.output()}")


@pytest.fixture(autouse=True)
def fresh_stack(stack: Stack) -> None:
    """The sandbox as new, and the processes forget what they cached (caches.py)."""
    stack.sandbox.reset(attributes=CATALOGUE, api_keys=[API_KEY])
    stack.generation.write_text(str(int(stack.generation.read_text()) + 1))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (Debian's package; make system-packages)")
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # Playwright's sync API keeps an event loop in this thread, so Django
        # takes the test's own queries for async code and refuses them.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A fresh browser profile (no cookies) at 1280 px wide."""
    context = browser.new_context(
        base_url=stack.web, viewport={"width": WIDTH, "height": 800}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def account(request: pytest.FixtureRequest) -> Callable[[str, str], User]:
    """A person's account as the README says to add one: `manage.py create_user`."""
    request.getfixturevalue("roles")  # the groups, put back after the last test's flush

    def create(username: str, role: str) -> User:
        call_command(
            "create_user",
            username,
            "--role",
            role,
            "--password-stdin",
            stdin=io.StringIO(PASSWORD + "\n"),
            stdout=io.StringIO(),
        )
        return User.objects.get(username=username)

    return create


@pytest.fixture
def marketer(account: Callable[[str, str], User]) -> User:
    return account("mia", "marketer")


@pytest.fixture
def operator(account: Callable[[str, str], User]) -> User:
    return account("otto", "operator")


@pytest.fixture
def log_in(page: Page) -> Callable[[User], Page]:
    """Through the admin's login form, as a person would."""

    def log_in_as(user: User) -> Page:
        page.goto("/admin/login/?next=/admin/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        return page

    return log_in_as


@pytest.fixture
def make_shop(stack: Stack, transactional_db: None) -> Callable[..., Destination]:
    """The destination "shop" on the sandbox, with rows email, plan and age (number)."""

    def make(**fields: Any) -> Destination:
        values = {
            "name": "Shop",
            "slug": "shop",
            "base_url": stack.talon_url,
            "api_key": API_KEY,
            "shared_secret": SHARED_SECRET,
            **fields,
        }
        destination = Destination.objects.create(**values)
        for name, type_ in [("email", "string"), ("plan", "string"), ("age", "number")]:
            AttributeMapping.objects.create(destination=destination, name=name, type=type_)
        return destination

    return make


def screenshot(page: Page, name: str) -> None:
    """The whole page, for the README; only when asked (SCREENSHOTS=1)."""
    if os.environ.get("SCREENSHOTS") == "1":
        # From the top: the admin's sidebar is sticky, and would be drawn where
        # the page was scrolled to (a redirect to an anchor scrolls it).
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
