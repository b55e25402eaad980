"""Browser tests: Debian's Chromium driven by Playwright against a real prefcenter server.

One ``prefcenter serve`` process (uvicorn on 127.0.0.1, a temp SQLite file, mail to a real
in-process aiosmtpd SMTP server) serves the whole session; each test seeds its own tenant
into the same database and opens the page in a fresh browser profile.

Chromium is Debian's (``apt-get install -y chromium``), never a Playwright download. Without
it these tests skip with the reason, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from prefcenter import db
from prefcenter.settings import Settings
from tests.e2e.seed import Seeded, seed
from tests.helpers import wait_until_serving

CHROMIUM = os.environ.get("PREFCENTER_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
#: The focused element, inside the component's shadow root too (``document.activeElement``
#: is the ``<prefcenter-preferences>`` host while focus is inside it).
ACTIVE = ("(() => { let a = document.activeElement; "
          "while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement; "
          "return a; })()")
PHONE = {"width": 390, "height": 844}


def _missing_browser() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- a real SMTP server ------------------------------------------------------------------


@dataclass
class Mailbox:
    """Every message the SMTP server accepted, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in str(m.get("To", ""))]

    async def wait_for(self, address: str, count: int = 1, within: float = 20.0
                       ) -> list[EmailMessage]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"no mail to {address} within {within} s "
                             f"(got {len(self.to(address))})")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


# --- host pages on other origins (the embeddable component) --------------------------------


@dataclass
class HostSite:
    """A plain static web server on its own port: another origin, like a customer's SPA."""

    origin: str
    folder: Path

    def page(self, name: str, html_text: str) -> str:
        (self.folder / name).write_text(html_text)
        return f"{self.origin}/{name}"


@contextlib.contextmanager
def _static_site(folder: Path) -> Iterator[HostSite]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield HostSite(origin=f"http://127.0.0.1:{httpd.server_address[1]}", folder=folder)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def host_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostSite]:
    """The origin the server allows (``PREFCENTER_CORS_ORIGINS``)."""
    with _static_site(tmp_path_factory.mktemp("host-allowed")) as site:
        yield site


@pytest.fixture(scope="session")
def other_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostSite]:
    """An origin the server does not allow."""
    with _static_site(tmp_path_factory.mktemp("host-other")) as site:
        yield site


# --- the prefcenter server ----------------------------------------------------------------


@dataclass
class Server:
    url: str
    database_url: str
    mailbox: Mailbox
    log_path: Path

    def settings(self) -> Settings:
        return Settings(database_url=self.database_url, public_url=self.url, run_workers=False)

    def link(self, token: str) -> str:
        return f"{self.url}/p/{token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, smtp_server: tuple[Mailbox, int],
           host_site: HostSite) -> Iterator[Server]:
    problem = _missing_browser()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI=true requires the browser tests to run")
        pytest.skip(problem)
    mailbox, smtp_port = smtp_server
    folder = tmp_path_factory.mktemp("e2e-server")
    database_url = f"sqlite://{folder / 'e2e.sqlite3'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PREFCENTER_PUBLIC_URL": url,
        "PREFCENTER_SMTP_HOST": "127.0.0.1",
        "PREFCENTER_SMTP_PORT": str(smtp_port),
        "PREFCENTER_MAIL_FROM": "Acme <no-reply@acme.example>",
        "PREFCENTER_RUN_WORKERS": "true",
        "PREFCENTER_OUTBOX_POLL_SECONDS": "0.2",
        "PREFCENTER_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "100000",
        "PREFCENTER_RATE_LIMIT_KEY_PER_MINUTE": "100000",
        "PREFCENTER_LOG_LEVEL": "WARNING",
        # Only the host page's origin may call /graphql from a browser (other_site may not).
        "PREFCENTER_CORS_ORIGINS": host_site.origin,
    }
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefcenter", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--database-url", database_url],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(process, url, lambda: log_path.read_text()[-3000:], 40)
        yield Server(url=url, database_url=database_url, mailbox=mailbox, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
async def tenant(server: Server) -> AsyncIterator[Seeded]:
    """A fresh tenant in the server's database; the ORM stays open for the test."""
    # The server migrated the file at start; safe=True only adds what a model in progress
    # elsewhere may still lack a migration for.
    await db.init_db(server.settings(), generate_schemas=True)
    try:
        seeded = await seed("Acme")
        # One database for the session: each test's contact has an address of its own.
        seeded.contact.email = f"ada.{uuid.uuid4().hex[:8]}@example.com"
        await seeded.contact.save(update_fields=["email"])
        yield seeded
    finally:
        await db.close_db()


# --- the browser ------------------------------------------------------------------------------


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh Chromium profile (persistent context in a temp dir), desktop-sized."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=LAUNCH_ARGS, viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
def console_errors() -> Callable[[Any], list[str]]:
    """Attach to a page: collects JavaScript errors (uncaught and console.error)."""

    def attach(page: Any) -> list[str]:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        return errors

    return attach
