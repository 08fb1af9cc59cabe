"""SMS through HTTP gateways: a generic JSON POST API, and Kannel's sendsms interface.

Each channel keeps one `httpx.Client` (so one connection pool) for its lifetime.
When the gateway cannot be reached, or asks us to back off (429, 503), the rest
of the batch is not attempted: it is all `RETRY`, as with a broken SMPP session.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx

from arrears.channels.base import LogFailed, Message, NoLog, Outcome, Receipt, Result, SendLog
from arrears.channels.smpp import is_gsm7

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
KANNEL_PORT = 13013
KANNEL_PATH = "/cgi-bin/sendsms"
_BACK_OFF = frozenset({429, 503})  # the gateway asks everyone to wait: stop this batch
_EXCERPT = 200


def idempotency_key(key: str) -> str:
    """The Idempotency-Key header for a notification: stable per key, and no personal data in it."""
    return hashlib.sha256(key.encode()).hexdigest()


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def _timeout(query: dict[str, str], what: str) -> float:
    value = query.pop("timeout", "")
    if value == "":
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{what} URL parameter timeout={value!r} is not a positive number of seconds")
    return seconds


def _port(parts: SplitResult, what: str) -> int | None:
    try:
        return parts.port
    except ValueError:
        raise ValueError(f"{what} URL has an invalid port: {parts.netloc.rpartition('@')[2]!r}") from None


def _transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        # A timed-out request may have been accepted; a retry is a possible duplicate, not a loss.
        return f"gateway timed out ({type(exc).__name__})"
    return f"cannot reach gateway: {type(exc).__name__}: {exc}"


class _HttpChannel:
    """What both gateways share: the client, the batch loop, and the Channel plumbing."""

    name = "sms"

    def __init__(self, timeout: float) -> None:
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "arrears-sms/1"}
        )

    def send(self, messages: Sequence[Message], progress: SendLog | None = None) -> list[Outcome]:
        log_ = progress or NoLog()
        outcomes: list[Outcome] = []
        stop: str | None = None
        for index, message in enumerate(messages):
            if stop is not None:
                outcomes.append(Outcome(Result.RETRY, f"not attempted: {stop}"))
                continue
            try:
                log_.committing(index)  # the request may be acted on as soon as it is written
            except Exception as exc:
                raise LogFailed(exc) from exc
            try:
                outcome, stop = self._send_one(message)
            except httpx.TransportError as exc:
                stop = _transport_error(exc)
                outcome = Outcome(Result.RETRY, stop)
            except Exception as exc:  # never raise out of send
                log.exception("SMS gateway request failed unexpectedly")
                stop = f"gateway error: {type(exc).__name__}: {exc}"
                outcome = Outcome(Result.RETRY, stop)
            log_.outcome(index, outcome)
            outcomes.append(outcome)
        return outcomes

    def _send_one(self, message: Message) -> tuple[Outcome, str | None]:
        """The outcome, and why the rest of the batch should wait (or None)."""
        raise NotImplementedError

    def receipts(self) -> list[Receipt]:
        return []  # HTTP gateways report delivery by callback, which arrears does not receive yet

    def close(self) -> None:
        self._client.close()


# -- a generic JSON API -------------------------------------------------------------


@dataclass(frozen=True)
class JsonSmsSettings:
    url: str  # the real http(s) URL the messages are POSTed to
    token: str | None = None  # sent as "Authorization: Bearer <token>"
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_url(cls, url: str) -> JsonSmsSettings:
        """`http+json://host:port/path?token=...` or `https+json://...` (timeout=seconds optional).

        Any other query parameters stay on the URL that is POSTed to.
        """
        parts = urlsplit(url)
        scheme = {"http+json": "http", "https+json": "https"}.get(parts.scheme)
        if scheme is None:
            raise ValueError(
                f"JSON SMS gateway URL must start with http+json:// or https+json://, not {url!r}"
            )
        if not parts.hostname:
            raise ValueError("JSON SMS gateway URL has no host")
        _port(parts, "JSON SMS gateway")
        if parts.username or parts.password:
            raise ValueError("JSON SMS gateway URL: put the credential in ?token=, not in user:password@")
        query = parse_qsl(parts.query, keep_blank_values=True)
        rest = dict(query)
        token = rest.pop("token", None)
        if token == "":
            raise ValueError("JSON SMS gateway URL has an empty token")
        timeout = _timeout(rest, "JSON SMS gateway")
        kept = [(k, v) for k, v in query if k not in ("token", "timeout")]
        target = urlunsplit((scheme, parts.netloc, parts.path or "/", urlencode(kept), ""))
        return cls(url=target, token=token, timeout=timeout)


class JsonSmsGateway(_HttpChannel):
    """POSTs `{"to", "from", "text", "reference"}` as JSON, one request per message."""

    # The gateway sees the same Idempotency-Key for a repeat and drops it, so a
    # send interrupted by a crash may simply be tried again.
    redelivery_safe = True

    def __init__(self, settings: JsonSmsSettings) -> None:
        super().__init__(settings.timeout)
        self.settings = settings

    def _send_one(self, message: Message) -> tuple[Outcome, str | None]:
        headers = {"Idempotency-Key": idempotency_key(message.key)}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        body = {"to": message.to, "from": message.sender, "text": message.text, "reference": message.key}
        response = self._client.post(self.settings.url, json=body, headers=headers)
        return _classify_json(response)


def _classify_json(response: httpx.Response) -> tuple[Outcome, str | None]:
    status = response.status_code
    what = f"HTTP {status} {response.reason_phrase}".rstrip()
    if 200 <= status < 300:
        return Outcome(Result.SENT, what, reference=_reference(response)), None
    detail = what
    if response.text.strip():
        detail += f": {_excerpt(response.text)}"
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        detail += f" (retry after {retry_after})"
    if status in _BACK_OFF:
        return Outcome(Result.RETRY, detail), detail
    if status >= 500 or status in (408, 409):  # 409: the same idempotency key is still in flight
        return Outcome(Result.RETRY, detail), None
    if status in (401, 403):
        # A bad or expired token is our configuration, not the customer's number: keep the notice.
        detail = f"gateway refused our credentials, check the token: {detail}"
        return Outcome(Result.RETRY, detail), detail
    return Outcome(Result.FAILED, detail), None


def _reference(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    for name in ("id", "message_id"):
        value = data.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


# -- Kannel ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KannelSettings:
    host: str
    username: str
    password: str
    port: int = KANNEL_PORT
    path: str = KANNEL_PATH
    sender: str = ""  # `from`, when a message has no sender of its own
    dlr_mask: int | None = None
    dlr_url: str | None = None
    smsc: str | None = None  # route to this Kannel smsc-id
    timeout: float = DEFAULT_TIMEOUT

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    @classmethod
    def from_url(cls, url: str) -> KannelSettings:
        """`kannel://user:pass@host:13013/cgi-bin/sendsms?from=ARREARS`.

        Optional: dlr-mask (1-31), dlr-url, smsc, timeout (seconds). The path defaults to /cgi-bin/sendsms.
        """
        parts = urlsplit(url)
        if parts.scheme != "kannel":
            raise ValueError(f"Kannel URL must start with kannel://, not {parts.scheme or 'nothing'}://")
        if not parts.hostname:
            raise ValueError("Kannel URL has no host")
        port = _port(parts, "Kannel") or KANNEL_PORT
        if not parts.username:
            raise ValueError("Kannel URL has no sendsms user name (kannel://user:pass@host)")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        timeout = _timeout(query, "Kannel")
        known = {"from", "dlr-mask", "dlr-url", "smsc"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ValueError(
                f"Kannel URL has unknown parameter(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known | {'timeout'}))}"
            )
        mask = query.get("dlr-mask", "")
        if mask and not (mask.isdigit() and 0 < int(mask) < 256):
            raise ValueError(f"Kannel URL parameter dlr-mask={mask!r} is not a number from 1 to 255")
        return cls(
            host=parts.hostname,
            port=port,
            path=parts.path or KANNEL_PATH,
            username=unquote(parts.username),
            password=unquote(parts.password or ""),
            sender=query.get("from", ""),
            dlr_mask=int(mask) if mask else None,
            dlr_url=query.get("dlr-url") or None,
            smsc=query.get("smsc") or None,
            timeout=timeout,
        )


class KannelGateway(_HttpChannel):
    """Kannel's smsbox `sendsms` HTTP interface (GET, one request per message)."""

    def __init__(self, settings: KannelSettings) -> None:
        super().__init__(settings.timeout)
        self.settings = settings

    def params(self, message: Message) -> dict[str, str]:
        s = self.settings
        params = {
            "username": s.username,
            "password": s.password,
            "to": message.to,
            "text": message.text,
            "charset": "UTF-8",
            # 0: GSM 7-bit; 2: UCS-2 (Kannel converts the UTF-8 text itself).
            "coding": "0" if is_gsm7(message.text) else "2",
        }
        sender = message.sender or s.sender
        if sender:
            params["from"] = sender
        if s.dlr_mask is not None:
            params["dlr-mask"] = str(s.dlr_mask)
        if s.dlr_url:
            params["dlr-url"] = s.dlr_url
        if s.smsc:
            params["smsc"] = s.smsc
        return params

    def _send_one(self, message: Message) -> tuple[Outcome, str | None]:
        response = self._client.get(self.settings.endpoint, params=self.params(message))
        return _classify_kannel(response)


# Kannel answers in plain text; these answers are our configuration's fault, not the number's.
_KANNEL_CONFIG_ERRORS = ("authorization failed", "sender missing", "wrong sendsms args")


def _classify_kannel(response: httpx.Response) -> tuple[Outcome, str | None]:
    status = response.status_code
    text = response.text.strip()
    detail = f"HTTP {status}: {_excerpt(text)}" if text else f"HTTP {status}"
    lowered = text.lower()
    if 200 <= status < 300:
        # "0: Accepted for delivery", "3: Queued for later delivery" (Kannel's store), or "Sent." (old).
        return Outcome(Result.SENT, detail), None
    if status in _BACK_OFF:
        return Outcome(Result.RETRY, detail), detail
    if status >= 500:
        return Outcome(Result.RETRY, detail), None
    if status == 401 or any(phrase in lowered for phrase in _KANNEL_CONFIG_ERRORS):
        # A wrong sendsms password would otherwise fail every notice permanently.
        detail = f"Kannel rejected our request, check the kannel:// URL: {detail}"
        return Outcome(Result.RETRY, detail), detail
    # 400 "Missing receiver number", 403 "Number(s) has/have been denied by white- and/or black-lists."
    return Outcome(Result.FAILED, detail), None
