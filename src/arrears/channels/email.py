"""The email channel: notices sent over SMTP (aiosmtplib), one connection per batch.

Configuration is one URL (see `SmtpSettings.from_url`)::

    smtp://[user[:password]@]host[:port][?starttls=false&cafile=/path/ca.pem&verify=false
                                         &timeout=10&local_hostname=billing.example.com]
    smtps://[user[:password]@]host[:port][?cafile=...&verify=...&timeout=...&local_hostname=...]

How SMTP replies become outcomes (`Result`):

* accepted (2xx after DATA): SENT, `reference` = the Message-ID, `detail` = the server's reply.
* 5xx for the recipient (RCPT) or the content (DATA): FAILED, with the code and text.
  Exceptions, because they describe the configuration rather than the notice and would
  otherwise burn every notice of the batch as permanently failed: a refused sender
  (MAIL FROM, except 552 "message too big") and 530 "authentication required" are RETRY.
* 4xx, connection refused/reset, timeouts, TLS and certificate errors: RETRY.
* a failure that loses the connection mid-batch: that message and the rest of the batch RETRY.
* an authentication failure (535, or no AUTH offered): RETRY for the whole batch, see `SmtpChannel`.

A RETRY after the message data was sent (a timeout waiting for the final reply) may
deliver a notice twice; its Message-ID is the same both times, so mail systems can tell.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import parseaddr
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from arrears.channels.base import LogFailed, Message, NoLog, Outcome, Receipt, Result, SendLog, message_id

log = logging.getLogger("arrears.channels.email")

Security = Literal["starttls", "tls", "none"]

# CRLF line ends as on the wire, and 7bit so non-ASCII bodies get quoted-printable or base64:
# we never ask for 8BITMIME, so the bytes are safe for any relay.
_POLICY = SMTP_POLICY.clone(cte_type="7bit")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_QUERY_KEYS = frozenset({"starttls", "cafile", "verify", "timeout", "local_hostname"})


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to submit mail.

    `security`:
      * "starttls": connect in plain text and upgrade with STARTTLS; a server that does not
        offer it is an error (RETRY), never a silent fall back to plain text.
      * "tls": implicit TLS from the first byte (SMTPS, usually port 465).
      * "none": plain text throughout, not even opportunistic STARTTLS. Meant for a local
        relay (localhost:25), where a certificate check would only fail.

    `cafile` replaces the system trust store (to trust a private CA only); `verify=False`
    turns off certificate and host name checks altogether (tests, never production).
    `local_hostname` is the name sent in EHLO; None means the machine's FQDN.
    """

    host: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # kept out of logs
    timeout: float = 30.0  # seconds, for connecting and for each SMTP command
    cafile: str | None = None
    verify: bool = True
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("smtp settings: host is missing")
        if not 0 < self.port < 65536:
            raise ValueError(f"smtp settings: port must be between 1 and 65535, not {self.port}")
        if self.security not in ("starttls", "tls", "none"):
            raise ValueError(f"smtp settings: security must be starttls, tls or none, not {self.security!r}")
        if not self.timeout > 0:
            raise ValueError(f"smtp settings: timeout must be positive, not {self.timeout}")
        if self.password is not None and self.username is None:
            raise ValueError("smtp settings: a password needs a username")
        # Both end up on an SMTP command line or in a TLS check: no spaces or control characters.
        for what, value in (("host", self.host), ("local_hostname", self.local_hostname)):
            if value is not None and (
                not value or not value.isprintable() or any(c.isspace() for c in value)
            ):
                raise ValueError(f"smtp settings: {what} is empty or contains spaces or control characters")

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """Parse `smtp://` (port 587, STARTTLS required unless `starttls=false`: then plain)
        or `smtps://` (port 465, implicit TLS). User and password are URL-decoded.

        Raises ValueError naming the bad part, e.g. "smtp url: port must be a number".
        """
        try:
            parts = urlsplit(url.strip())
        except ValueError as exc:  # e.g. an unbalanced IPv6 bracket
            raise ValueError(f"smtp url: cannot parse: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps"):
            raise ValueError(f"smtp url: scheme must be smtp or smtps, not {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("smtp url: host is missing")
        try:
            explicit_port = parts.port
        except ValueError:
            raise ValueError("smtp url: port must be a number between 1 and 65535") from None
        if explicit_port == 0:
            raise ValueError("smtp url: port must be a number between 1 and 65535")
        if parts.path not in ("", "/"):
            raise ValueError(f"smtp url: unexpected path {parts.path!r}")
        if parts.fragment:
            raise ValueError(f"smtp url: unexpected fragment {parts.fragment!r}")

        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if password is not None and not username:
            raise ValueError("smtp url: a password needs a user name")
        if username == "":
            username = None

        query = _parse_query(parts.query)
        security: Security = "tls" if scheme == "smtps" else "starttls"
        if "starttls" in query:
            if scheme == "smtps":
                raise ValueError("smtp url: starttls does not apply to smtps (implicit TLS)")
            if not _flag(query, "starttls"):
                security = "none"
        verify = _flag(query, "verify") if "verify" in query else True
        timeout = 30.0
        if "timeout" in query:
            try:
                timeout = float(query["timeout"])
            except ValueError:
                timeout = -1.0
            if not 0 < timeout < float("inf"):
                raise ValueError("smtp url: timeout must be a positive number of seconds")
        return cls(
            host=parts.hostname,
            port=explicit_port or (465 if security == "tls" else 587),
            security=security,
            username=username,
            password=password,
            timeout=timeout,
            cafile=query.get("cafile") or None,
            verify=verify,
            local_hostname=query.get("local_hostname") or None,
        )


def _parse_query(query: str) -> dict[str, str]:
    try:
        pairs = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(f"smtp url: bad query string {query!r}") from None
    result: dict[str, str] = {}
    for key, values in pairs.items():
        # An unknown key is most likely a typo of a security setting: refuse rather than ignore.
        if key not in _QUERY_KEYS:
            raise ValueError(f"smtp url: unknown parameter {key!r} (known: {', '.join(sorted(_QUERY_KEYS))})")
        if len(values) > 1:
            raise ValueError(f"smtp url: parameter {key!r} given more than once")
        result[key] = values[0]
    return result


def _flag(query: dict[str, str], key: str) -> bool:
    value = query[key].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"smtp url: {key} must be true or false, not {query[key]!r}")


def build_email(message: Message, *, date: datetime | None = None) -> EmailMessage:
    """The MIME message for a notice: text/plain, or multipart/alternative when `html` is set.

    Raises ValueError for a message that can never be sent (a line break in a header).
    """
    mime = EmailMessage(policy=_POLICY)
    mime["From"] = message.sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = date if date is not None else datetime.now(UTC)
    mime["Message-ID"] = _message_id(message)
    # The key lets a bounce or a complaint be traced to its notification.
    mime["X-Arrears-Key"] = message.key
    mime.set_content(message.text, subtype="plain", charset="utf-8")
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html", charset="utf-8")
        for part in mime.iter_parts():
            del part["MIME-Version"]  # the stdlib adds it to the added part; it belongs on top only
        # A boundary derived from the content instead of a random one, so the bytes are
        # reproducible; the content cannot contain a hash of itself.
        seed = "\0".join((message.key, message.text, message.html)).encode("utf-8", "surrogatepass")
        mime.set_boundary("=_" + hashlib.sha256(seed).hexdigest()[:40])
    return mime


def render_mime(message: Message, *, date: datetime | None = None) -> bytes:
    """The exact bytes `SmtpChannel` sends for `message` (CRLF line ends).

    The Date header is the current time unless `date` is given; everything else (the
    MIME boundary too) depends only on the message, so the same date gives the same bytes.
    """
    return build_email(message, date=date).as_bytes()


@dataclass(frozen=True)
class _Prepared:
    envelope_from: str
    recipient: str
    data: bytes
    reference: str


def _prepare(message: Message) -> _Prepared | Outcome:
    """The envelope and bytes for a message, or FAILED when it can never be sent."""
    envelope_from = parseaddr(message.sender)[1]
    recipient = parseaddr(message.to)[1]
    if "@" not in recipient:
        return Outcome(Result.FAILED, f"invalid recipient address {message.to!r}")
    if "@" not in envelope_from:
        return Outcome(Result.FAILED, f"invalid sender address {message.sender!r}")
    if not (envelope_from + recipient).isascii():
        # Would need SMTPUTF8, which we do not negotiate.
        return Outcome(Result.FAILED, f"non-ASCII address {message.to!r} is not supported")
    try:
        data = render_mime(message)
    except (ValueError, TypeError) as exc:
        return Outcome(Result.FAILED, f"cannot build the message: {exc}")
    return _Prepared(envelope_from, recipient, data, _message_id(message))


def _message_id(message: Message) -> str:
    # The bare address, so a sender like "Billing <billing@isp.example>" gives a valid id
    # (message_id takes everything after the "@"); for a bare address this is message_id(key, sender).
    return message_id(message.key, parseaddr(message.sender)[1] or message.sender)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    text = str(exc) or type(exc).__name__
    # aiosmtplib wraps TLS errors; the certificate problem is in the cause.
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text


def _classify(code: int, text: str, what: str) -> Outcome:
    detail = f"{what}: {code} {text}"
    # 530: the relay wants authentication; configuration, not this notice.
    if 500 <= code < 600 and code != 530:
        return Outcome(Result.FAILED, detail)
    return Outcome(Result.RETRY, detail)


class SmtpChannel:
    """Sends notices through one SMTP submission server.

    `send` opens one connection for the batch, authenticates when a username is set,
    submits each message in its own transaction and quits. It never raises: every
    problem becomes an `Outcome` (see the module docstring for the mapping).

    An authentication failure is RETRY, not FAILED, on purpose: a wrong or expired
    password is an operator's problem, and FAILED would permanently drop every notice
    sent until it is fixed. RETRY keeps them; the dispatcher's backoff and its alert on
    repeated retries bring it to an operator. The detail starts with
    "authentication failed" so the alert says what to fix.

    The API is synchronous: `send` runs the SMTP dialogue with `asyncio.run` (in a worker
    thread when called from inside a running event loop).
    """

    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        # Built once, so an unreadable cafile is a startup error, not a RETRY per batch.
        self._tls_context = _tls_context(settings)

    def send(self, messages: Sequence[Message], progress: SendLog | None = None) -> list[Outcome]:
        if not messages:
            return []
        log_ = progress or NoLog()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._send_batch(messages, log_))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="arrears-smtp") as pool:
            return pool.submit(lambda: asyncio.run(self._send_batch(messages, log_))).result()

    def receipts(self) -> list[Receipt]:
        return []  # SMTP has no delivery receipts we act on; bounces arrive as mail

    def close(self) -> None:
        pass  # no connection outlives a batch

    async def _send_batch(self, messages: Sequence[Message], log_: SendLog) -> list[Outcome]:
        prepared = [_prepare(m) for m in messages]
        if all(isinstance(p, Outcome) for p in prepared):
            return [p for p in prepared if isinstance(p, Outcome)]
        s = self.settings
        where = f"{s.host}:{s.port}"
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",  # False: not even opportunistically
            tls_context=self._tls_context,
            timeout=s.timeout,
            local_hostname=s.local_hostname,
        )
        try:
            await smtp.connect()
        except Exception as exc:  # refused, reset, timed out, TLS: all transient from here
            return _retry_all(prepared, f"cannot connect to {where}: {_describe(exc)}")
        transport = smtp.transport  # after STARTTLS, the TLS one
        try:
            if s.username is not None:
                try:
                    await smtp.login(s.username, s.password or "")
                except Exception as exc:  # 535, or no AUTH offered (e.g. only after TLS)
                    return _retry_all(prepared, f"authentication failed at {where}: {_describe(exc)}")
            outcomes: list[Outcome] = []
            for i, p in enumerate(prepared):
                outcome = await self._send_one(smtp, p, i, log_)
                log_.outcome(i, outcome)
                outcomes.append(outcome)
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except Exception:  # everything is submitted; a failed QUIT changes nothing
                    log.debug("QUIT to %s failed", where, exc_info=True)
            return outcomes
        finally:
            # A graceful TLS close waits for the server's close_notify, which can outlive
            # asyncio.run and leak the socket: abort instead (QUIT has been answered, or the
            # session is abandoned anyway), and give the loop a turn to close the socket.
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
            smtp.close()
            await asyncio.sleep(0)

    async def _send_one(
        self, smtp: aiosmtplib.SMTP, item: _Prepared | Outcome, index: int, log_: SendLog
    ) -> Outcome:
        if isinstance(item, Outcome):
            return item
        if not smtp.is_connected:
            return Outcome(Result.RETRY, "not attempted: the connection was lost earlier in the batch")
        try:
            await smtp.mail(item.envelope_from)
            try:
                await smtp.rcpt(item.recipient)
            except aiosmtplib.SMTPRecipientRefused as exc:
                await _reset(smtp)
                return _classify(exc.code, exc.message, "recipient refused")
            # Up to here nothing can be delivered; DATA is the step that cannot be taken back.
            try:
                log_.committing(index)
            except Exception as exc:
                await _reset(smtp)
                raise LogFailed(exc) from exc
            reply = await smtp.data(item.data)
        except LogFailed:
            raise
        except aiosmtplib.SMTPSenderRefused as exc:
            await _reset(smtp)
            # The sender is shared configuration, except for 552: this message is too big.
            if exc.code == 552:
                return Outcome(Result.FAILED, f"message refused: {exc.code} {exc.message}")
            return Outcome(Result.RETRY, f"sender refused: {exc.code} {exc.message}")
        except aiosmtplib.SMTPResponseException as exc:  # DATA, or an unexpected reply
            await _reset(smtp)
            return _classify(exc.code, exc.message, "message refused")
        except Exception as exc:
            # A timeout or a broken connection leaves the session in an unknown state:
            # drop it, so this and the remaining messages are retried.
            if not isinstance(exc, aiosmtplib.SMTPException | OSError):
                log.exception("unexpected error sending to %s", item.recipient)
            smtp.close()
            return Outcome(Result.RETRY, f"connection lost: {_describe(exc)}")
        return Outcome(Result.SENT, reply.message, reference=item.reference)


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    """RSET after a refusal, so the next message starts a clean transaction."""
    if smtp.is_connected:
        try:
            await smtp.rset()
        except Exception:  # the next message finds out whether the session still works
            log.debug("RSET failed", exc_info=True)


def _retry_all(prepared: Sequence[_Prepared | Outcome], detail: str) -> list[Outcome]:
    """RETRY for each message, keeping the FAILED of messages that can never be sent."""
    return [p if isinstance(p, Outcome) else Outcome(Result.RETRY, detail) for p in prepared]


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if settings.security == "none":
        return None
    try:
        context = ssl.create_default_context(cafile=settings.cafile)
    except OSError as exc:  # includes ssl.SSLError for a file that is not PEM
        raise ValueError(f"smtp settings: cannot load cafile {settings.cafile!r}: {exc}") from exc
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
