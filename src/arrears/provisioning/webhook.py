"""A signed HTTP webhook: each provisioning call is POSTed as JSON to the provider's endpoint.

Signing follows Stripe's scheme, so peers can reuse familiar code:

    Arrears-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp bounds replays to the tolerance window (5 minutes by default, either
direction, to allow for clock skew). A header may carry several `v1=` entries and a
verifier may hold several secrets, so a secret can be rotated without downtime.

A peer that answers 202 confirms later by calling back with the same signature
scheme; `parse_callback` checks and reads such a callback on our side.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from arrears.domain.clock import utc
from arrears.provisioning.base import ConfigError, ProvisioningCall, Result, State

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Arrears-Signature"
DEFAULT_TOLERANCE = timedelta(seconds=300)
DEFAULT_TIMEOUT = 10.0
MIN_SECRET_LENGTH = 16
_SCHEME = "v1"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
# Headers the adapter sets itself: configuration must not be able to forge or break them.
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "arrears-signature", "idempotency-key", "arrears-request-id"}
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
# Keys a registry may leave in an adapter's configuration to choose the adapter itself.
_SELECTOR_KEYS = frozenset({"type", "adapter"})
# The same idempotency key still in flight (409), or the peer asking us to wait.
_RETRY_STATUSES = frozenset({408, 409, 425, 429})
_EXCERPT = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- signatures ---------------------------------------------------------------------------


class SignatureError(Exception):
    """A signature header that is malformed, stale, or does not match; `reason` says which.

    Deliberately not a ValueError, so a receiver can answer 401 for this and 400 for a bad body.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, now: datetime) -> str:
    """The `Arrears-Signature` header value for `body` sent at `now` (an aware datetime)."""
    timestamp = int(utc(now).timestamp())
    return f"t={timestamp},{_SCHEME}={_digest(secret, timestamp, body)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, eq, value = item.strip().partition("=")
        if not eq:
            raise SignatureError(f"malformed signature header: {item.strip()[:40]!r} is not name=value")
        if name == "t":
            if timestamp is not None:
                raise SignatureError("malformed signature header: more than one timestamp")
            if not (value.isascii() and value.isdigit()):
                raise SignatureError(f"malformed signature header: timestamp {value[:20]!r} is not a number")
            timestamp = int(value)
        elif name == _SCHEME:
            if not _HEX_DIGEST.fullmatch(value):
                raise SignatureError("malformed signature header: v1 is not a hex HMAC-SHA256")
            signatures.append(value)
        # Other schemes (v0, a future v2) are ignored, as Stripe's verifiers do.
    if timestamp is None:
        raise SignatureError("malformed signature header: no timestamp (t=)")
    if not signatures:
        raise SignatureError("malformed signature header: no v1 signature")
    return timestamp, signatures


def _secret_list(secret: str | Sequence[str]) -> list[str]:
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("no secret to verify the signature with")
    return secrets


def verify(
    header: str,
    body: bytes,
    secret: str | Sequence[str],
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Check an `Arrears-Signature` header for `body`; raises `SignatureError` unless it is good.

    `secret` may be a list (during a rotation, old and new): any secret matching any `v1`
    entry is enough. The timestamp must be within `tolerance` of `now`, in either direction.
    """
    secrets = _secret_list(secret)
    timestamp, signatures = _parse_header(header)
    skew = utc(now).timestamp() - timestamp
    if abs(skew) > tolerance.total_seconds():
        when = f"{skew:.0f} s old" if skew > 0 else f"{-skew:.0f} s in the future"
        raise SignatureError(
            f"signature timestamp outside the tolerance of {tolerance.total_seconds():.0f} s: {when}"
        )
    matched = False
    for key in secrets:
        expected = _digest(key, timestamp, body).encode()
        for candidate in signatures:
            # Not short-circuited, so the time taken does not tell which entry matched.
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise SignatureError("signature does not match")


# -- settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookSettings:
    url: str  # http(s) endpoint the calls are POSTed to
    secret: str = field(repr=False)  # signs every request; at least 16 characters
    timeout: float = DEFAULT_TIMEOUT  # seconds, for each of connect/read/write
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # e.g. Authorization
    verify_tls: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> WebhookSettings:
        """Read `url`, `secret`, `timeout`, `headers`, `verify_tls`; `ConfigError` names a bad field.

        `type`/`adapter` keys are ignored (they choose the adapter); any other unknown key is an error,
        so a misspelt setting is not silently dropped.
        """
        if not isinstance(cfg, Mapping):
            raise ConfigError("webhook", "must be a mapping of settings")
        known = {"url", "secret", "timeout", "headers", "verify_tls"}
        for key in cfg:
            if key not in known and key not in _SELECTOR_KEYS:
                raise ConfigError(str(key), f"unknown setting; known: {', '.join(sorted(known))}")
        return cls(
            url=_url(cfg.get("url")),
            secret=_secret(cfg.get("secret")),
            timeout=_positive_seconds("timeout", cfg.get("timeout", DEFAULT_TIMEOUT)),
            headers=_headers(cfg.get("headers")),
            verify_tls=_flag("verify_tls", cfg.get("verify_tls", True)),
        )


def _url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("url", "is required (the http:// or https:// endpoint)")
    try:
        parts = urlsplit(value.strip())
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError("url", f"is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigError("url", f"must start with http:// or https://, not {parts.scheme or 'nothing'}://")
    if not parts.hostname:
        raise ConfigError("url", "has no host")
    return value.strip()


def _secret(value: object) -> str:
    if value is None or value == "":
        raise ConfigError("secret", "is required (it signs every request)")
    if not isinstance(value, str):
        raise ConfigError("secret", "must be a string")
    if len(value) < MIN_SECRET_LENGTH:
        # Never echo the secret, even a wrong one.
        raise ConfigError("secret", f"must be at least {MIN_SECRET_LENGTH} characters (it has {len(value)})")
    return value


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, f"must be a number of seconds, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(name, f"must be a positive number of seconds, not {value!r}")
    return float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(name, f"must be true or false, not {value!r}")
    return value


def _headers(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("headers", "must be a mapping of header name to value")
    headers: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError("headers", f"{name!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise ConfigError(f"headers.{name}", "is set by the adapter itself and cannot be configured")
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            raise ConfigError(f"headers.{name}", "must be a single-line string")
        headers[name] = text
    return headers


# -- the adapter --------------------------------------------------------------------------


def encode_call(call: ProvisioningCall) -> bytes:
    """The request body: compact JSON, the exact bytes that are signed."""
    return json.dumps(call.as_json(), separators=(",", ":"), ensure_ascii=False).encode()


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


class WebhookAdapter:
    """POSTs each call, signed, to one endpoint; one `httpx.Client` (one connection pool) for its life.

    Safe to repeat: every attempt of a call carries the same `Idempotency-Key` (the call's key),
    so a peer that already applied it answers "done" again. Redirects are never followed: the
    signed request must reach only the configured endpoint.
    """

    name = "webhook"

    def __init__(self, settings: WebhookSettings, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self._clock = clock
        self._client = httpx.Client(
            timeout=settings.timeout,
            follow_redirects=False,
            verify=settings.verify_tls,
            headers={"User-Agent": "arrears-provisioning/1", **settings.headers},
        )

    def execute(self, call: ProvisioningCall) -> Result:
        try:
            body = encode_call(call)
        except (TypeError, ValueError) as exc:
            # An attribute JSON cannot carry: the same call would fail the same way every time.
            return Result(State.FAILED, f"cannot encode the call as JSON: {exc}")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self.settings.secret, self._clock()),
            "Idempotency-Key": call.key,
            "Arrears-Request-Id": str(call.request_id),
        }
        try:
            response = self._client.post(self.settings.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            # The peer may have applied it; the retry carries the same key, so it is not applied twice.
            return Result(
                State.RETRY, f"webhook timed out after {self.settings.timeout:g} s ({type(exc).__name__})"
            )
        except httpx.TransportError as exc:
            return Result(State.RETRY, f"cannot reach webhook: {type(exc).__name__}: {exc}")
        except Exception as exc:  # execute never raises for what the peer or network does
            log.exception("webhook request failed unexpectedly")
            return Result(State.RETRY, f"webhook error: {type(exc).__name__}: {exc}")
        return classify(response)

    def close(self) -> None:
        self._client.close()


def classify(response: httpx.Response) -> Result:
    """2xx: CONFIRMED (202: ACCEPTED); 3xx: FAILED; 401/403/408/409/425/429/5xx: RETRY; other 4xx: FAILED."""
    status = response.status_code
    what = f"HTTP {status} {response.reason_phrase}".rstrip()
    if 200 <= status < 300:
        # 202: taken, and the peer will call back; any other 2xx: the network changed.
        state = State.ACCEPTED if status == 202 else State.CONFIRMED
        return Result(state, what, reference=_reference(response))
    if 300 <= status < 400:
        location = response.headers.get("Location")
        target = f"redirect to {_excerpt(location)}" if location else "redirect"
        return Result(State.FAILED, f"{what}: {target} not followed (configure the final URL)")
    detail = what
    text = response.text.strip()
    if text:
        detail += f": {_excerpt(text)}"
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        detail += f" (retry after {_excerpt(retry_after)})"
    if status in (401, 403):
        # Retried, not failed: a secret out of step (mid-rotation, say) is the operator's
        # to fix, and must not turn real suspensions and restores into permanent failures.
        return Result(State.RETRY, detail + " (check the webhook secret)")
    if status >= 500 or status in _RETRY_STATUSES:
        return Result(State.RETRY, detail)
    return Result(State.FAILED, detail)


def _reference(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("id")
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


# -- callbacks (the receiving side) -------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """A peer's late answer to a call it accepted (202)."""

    request_id: int
    key: str  # the call's idempotency key: match it against the request, not just the id
    state: State  # CONFIRMED or FAILED
    detail: str = ""
    reference: str | None = None  # the peer's id for the change, if it sends one


_CALLBACK_STATES = {"confirmed": State.CONFIRMED, "failed": State.FAILED}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():  # plain dicts are case-sensitive; HTTP names are not
        if key.lower() == wanted:
            return value
    return None


def parse_callback(
    headers: Mapping[str, str],
    body: bytes,
    secret: str | Sequence[str],
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> Callback:
    """Verify and read a callback: `{"request_id": int, "key": str, "state": "confirmed"|"failed", "detail": str?}`.

    Raises `SignatureError` for a missing or bad signature (answer 401), `ValueError` for a body of
    the wrong shape (answer 400). An optional `"reference"` (string) is read too; other keys are ignored.
    A callback may be replayed within the tolerance; applying the same outcome twice is harmless.
    """
    header = _header(headers, SIGNATURE_HEADER)
    if header is None:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    verify(header, body, secret, now, tolerance)
    return callback_from_body(body)


def callback_from_body(body: bytes) -> Callback:
    """The callback's fields, unverified: to find whose secret checks it (then `parse_callback`)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"callback body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("callback body must be a JSON object")
    request_id = data.get("request_id")
    if isinstance(request_id, bool) or not isinstance(request_id, int):
        raise ValueError(f"callback request_id must be an integer, not {request_id!r}")
    key = data.get("key")
    if not isinstance(key, str) or not key:
        raise ValueError("callback key must be a non-empty string")
    state = data.get("state")
    if state not in _CALLBACK_STATES:
        raise ValueError(f"callback state must be 'confirmed' or 'failed', not {state!r}")
    detail = data.get("detail", "")
    if detail is None:
        detail = ""
    if not isinstance(detail, str):
        raise ValueError("callback detail must be a string")
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ValueError("callback reference must be a string")
    return Callback(request_id, key, _CALLBACK_STATES[state], detail, reference or None)
