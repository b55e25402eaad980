"""Fixtures for the contact-facing flows: a real SMTP server (aiosmtpd) on 127.0.0.1 that
can be taken down and brought back on the same port, and settings that send to it."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from prefcenter.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Sink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[list[str], bytes]] = []
        self.greylisted: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        """``reject...`` addresses are refused for good; ``grey...`` ones once, for now."""
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        if address.startswith("grey") and address not in self.greylisted:
            self.greylisted.add(address)
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """An in-process SMTP server; ``messages`` are parsed ``EmailMessage`` objects."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sink = _Sink()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self.sink.lock:
            raw = [content for _, content in self.sink.received]
        return [email.message_from_bytes(r, policy=email.policy.default)  # type: ignore[misc]
                for r in raw]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return Settings(database_url=database_url, public_url="http://testserver",
                    run_workers=False, rate_limit_anonymous_per_minute=100_000,
                    rate_limit_key_per_minute=100_000, smtp_host="127.0.0.1",
                    smtp_port=smtp.port, mail_from="Acme preferences <prefs@acme.test>")
