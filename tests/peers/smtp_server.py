"""A real SMTP server (aiosmtpd) in the test process that records what it receives.

    with smtp_server() as server:
        SmtpChannel(SmtpSettings(server.host, server.port, security="none")).send([...])
        server.handler.received  # one `Received` per accepted message

`RecordingHandler.rcpt_replies` / `data_replies` script refusals per recipient address:
a reply line such as "550 5.1.1 no such user", or `DROP` to cut the connection there.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
DROP = "DROP"  # a scripted "reply" that aborts the TCP connection instead of answering


@dataclass(frozen=True)
class Received:
    peer: tuple[str, int]  # the client's address and port: distinct per connection
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the message as received (after dot-unstuffing)
    tls: bool  # whether the session was encrypted

    @property
    def message_id(self) -> str | None:
        """The Message-ID header, read without parsing the whole message (big tests read thousands)."""
        head = self.data.split(b"\r\n\r\n", 1)[0]
        found = re.search(rb"^Message-ID:\s*(<[^>\r\n]+>)", head, re.MULTILINE | re.IGNORECASE)
        return found.group(1).decode() if found else None

    def parsed(self) -> EmailMessage:
        # Wire line ends are CRLF; the parser would keep the CRs in 7bit bodies.
        message = email.message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class RecordingHandler:
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def connections(self) -> set[tuple[str, int]]:
        """The client connections that delivered at least one message."""
        return {r.peer for r in self.received}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return _answer(server, reply)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            reply = self.data_replies.get(address)
            if reply is not None:
                return _answer(server, reply)
        content = envelope.original_content or b""
        with self._lock:
            self.received.append(
                Received(
                    peer=tuple(session.peer),  # type: ignore[arg-type]
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=content,
                    # session.ssl is only set by STARTTLS; the transport knows about implicit TLS too.
                    tls=server.transport is not None
                    and server.transport.get_extra_info("ssl_object") is not None,
                )
            )
            number = len(self.received)
        return f"250 2.0.0 OK queued as Q{number}"


def _answer(server: SMTP, reply: str) -> str:
    if reply == DROP:
        assert server.transport is not None
        server.transport.abort()  # type: ignore[attr-defined]
        return "250 never seen"
    return reply


class Credentials:
    """An aiosmtpd authenticator accepting one user name and password."""

    def __init__(self, username: str, password: str) -> None:
        self.expected = LoginPassword(username.encode(), password.encode())

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and tuple(auth_data) == tuple(self.expected)
        # handled=False: aiosmtpd answers a failure with "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=ok, handled=False)


class _Controller(Controller):
    """A Controller that can listen on port 0 (a free port chosen by the OS)."""

    def _trigger_server(self) -> None:
        # The base class connects to self.port to start the server: learn the real port first.
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    handler: RecordingHandler


@contextmanager
def smtp_server(
    handler: RecordingHandler | None = None,
    *,
    implicit_tls: ssl.SSLContext | None = None,
    starttls: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    authenticator: Credentials | None = None,
) -> Iterator[Server]:
    """Run an SMTP server on 127.0.0.1 and a free port for the duration of the block.

    `implicit_tls`: TLS from the first byte (SMTPS). `starttls`: offer STARTTLS with this
    context (and insist on it before MAIL with `require_starttls`). With `authenticator`,
    AUTH is required, and only offered after TLS.
    """
    handler = handler if handler is not None else RecordingHandler()
    kwargs: dict[str, Any] = {}
    if starttls is not None:
        kwargs.update(tls_context=starttls, require_starttls=require_starttls)
    if authenticator is not None:
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    controller = _Controller(
        handler,
        hostname=HOST,
        port=0,
        ssl_context=implicit_tls,
        server_hostname="smtp.test",  # not socket.getfqdn(), which can be slow
        ready_timeout=5.0,
        **kwargs,
    )
    controller.start()
    try:
        yield Server(HOST, controller.port, handler)
    finally:
        controller.stop()
