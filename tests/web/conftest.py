"""Browser-test fixtures: one real gateway and one headless Chromium per test module."""

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from inference_club.store import Store, default_database_url
from tests.support.fake_backend import FakeBackend
from tests.support.processes import Gateway, Process, start_agent, start_gateway

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
T = TypeVar("T")


@dataclass
class Club:
    """A running gateway with helpers to add members and connect providers."""

    gateway: Gateway
    tmp: Path
    processes: list[Process] = field(default_factory=list)
    backends: list[FakeBackend] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return self.gateway.url

    def add_member(self, name: str, *, admin: bool = False, password: str = PASSWORD) -> str:
        """A member with a dashboard password, written straight into the gateway's database.

        In-process rather than through the CLI (tests/cli covers that) to keep tests fast.
        """

        async def add() -> None:
            async with await self.store() as store:
                await store.add_user(name, is_admin=admin)
                await store.set_password(name, password)

        run_async(add)
        return name

    async def store(self) -> Store:
        """The gateway's database, opened from the test process."""
        return await Store.open(default_database_url(self.gateway.data))

    def connect_provider(self, owner: str, name: str, *models: str) -> FakeBackend:
        """A fake backend serving ``models`` behind an agent registered for ``owner``."""
        backend = FakeBackend(list(models), name=name).start()
        self.backends.append(backend)
        token = self.gateway.add_provider(owner, name)
        self.processes.append(start_agent(self.tmp, self.url, token, backend.url))
        return backend

    def close(self) -> None:
        """Stop everything this club started."""
        for process in self.processes:
            process.stop()
        for backend in self.backends:
            backend.stop()
        self.gateway.process.stop()


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Club]:
    """A gateway for the whole module, with quick heartbeats."""
    tmp = tmp_path_factory.mktemp("club")
    running = Club(start_gateway(tmp, "--heartbeat-interval", "0.5"), tmp)
    yield running
    running.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; never a downloaded browser."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Browser, club: Club) -> Iterator[Callable[[], Page]]:
    """Makes pages in fresh browser contexts (separate cookie jars), closed after the test."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        context = browser.new_context(base_url=club.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def run_async(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from a sync test.

    Playwright's sync API keeps an event loop in the test's thread, so the coroutine gets
    a thread and a loop of its own.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result(timeout=60)


def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    """Sign in through the form and wait for the overview."""
    page.goto("/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    assert page.inner_text("h1") == f"Hello, {name}"
