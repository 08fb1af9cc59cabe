"""API keys and who is calling: the platform, or one provider.

A key reads `arr_<prefix>_<secret>`: the prefix (8 url-safe characters) finds the
stored row and is safe to show in lists; only a SHA-256 hash of the whole key is
kept. Keys are 256-bit random tokens, so a fast hash is enough (a slow password
hash protects guessable secrets, which these are not).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from arrears.api.problems import ApiProblem
from arrears.store.db import Database
from arrears.store.tables import ApiKeyRow

KEY_SCHEME = "arr"
PREFIX_LEN = 8
# The row that stands for $ARREARS_PLATFORM_KEY in api_writes (a prefix no generated key can have).
ENV_KEY_PREFIX = "env"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its prefix."""
    # token_urlsafe may use "_" too, so the prefix is cut by length, never split on "_".
    prefix = secrets.token_urlsafe(PREFIX_LEN)[:PREFIX_LEN]
    return f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    head = f"{KEY_SCHEME}_"
    if not key.startswith(head) or len(key) < len(head) + PREFIX_LEN + 2:
        return None
    if key[len(head) + PREFIX_LEN] != "_":
        return None
    return key[len(head) : len(head) + PREFIX_LEN]


def create_key(
    session: Session, provider_id: int | None, name: str, actor: str, now: datetime
) -> tuple[ApiKeyRow, str]:
    """A new key (the platform's when `provider_id` is None); the plaintext is returned once only."""
    while True:
        key, prefix = new_key()
        # A prefix collision (1 in 2^48 per pair) just draws again.
        if session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.prefix == prefix)) is None:
            break
    row = ApiKeyRow(
        provider_id=provider_id, name=name, prefix=prefix, hash=_hash(key), created_at=now, created_by=actor
    )
    session.add(row)
    session.flush()
    return row, key


def list_keys(session: Session, provider_id: int | None, *, everything: bool = False) -> list[ApiKeyRow]:
    """A provider's keys (the platform's for None), or every key with `everything`; oldest first."""
    stmt = select(ApiKeyRow).where(ApiKeyRow.prefix != ENV_KEY_PREFIX).order_by(ApiKeyRow.id)
    if not everything:
        stmt = stmt.where(
            ApiKeyRow.provider_id.is_(None) if provider_id is None else ApiKeyRow.provider_id == provider_id
        )
    return list(session.scalars(stmt).all())


def revoke(session: Session, prefix: str, now: datetime, provider_id: int | None = None) -> ApiKeyRow | None:
    """Revoke a key by its prefix (only among `provider_id`'s keys when given); None if unknown."""
    stmt = select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)
    if provider_id is not None:
        stmt = stmt.where(ApiKeyRow.provider_id == provider_id)
    row = session.scalar(stmt)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = now
    return row


@dataclass(frozen=True)
class Principal:
    """Who is calling: the platform (provider_id None) or one provider, and with which key."""

    key_id: int
    prefix: str
    provider_id: int | None

    @property
    def is_platform(self) -> bool:
        return self.provider_id is None

    @property
    def actor(self) -> str:
        return f"api:{self.prefix}"


def lookup(session: Session, key: str) -> Principal | None:
    """The principal a presented key stands for, or None (unknown, malformed or revoked)."""
    prefix = key_prefix(key)
    if prefix is None:
        return None
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.hash, _hash(key)):
        return None
    return Principal(row.id, row.prefix, row.provider_id)


def env_platform_key(db: Database, key: str, now: datetime) -> Principal:
    """The row that stands for $ARREARS_PLATFORM_KEY, made on first use (writes need a key id)."""
    for _ in range(2):
        try:
            with db.transaction() as s:
                row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == ENV_KEY_PREFIX))
                if row is None:
                    row = ApiKeyRow(
                        provider_id=None,
                        name="ARREARS_PLATFORM_KEY",
                        prefix=ENV_KEY_PREFIX,
                        hash=_hash(key),
                        created_at=now,
                        created_by="environment",
                    )
                    s.add(row)
                    s.flush()
                elif row.hash != _hash(key):
                    row.hash = _hash(key)  # the environment's key was changed
                return Principal(row.id, ENV_KEY_PREFIX, None)
        except IntegrityError:
            continue  # another process made it at the same moment: read theirs
    raise RuntimeError("could not record the environment's platform key")


# -- rate limiting ------------------------------------------------------------------------


@dataclass
class RateLimit:
    """A token bucket per key: `burst` requests at once, refilled at `per_second`."""

    per_second: float = 20.0
    burst: int = 100


@dataclass
class RateLimiter:
    limit: RateLimit
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[Hashable, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: Hashable) -> float | None:
        """None when the request may go ahead, else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.limit.burst), now))
            tokens = min(float(self.limit.burst), tokens + (now - at) * self.limit.per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            if self.limit.per_second <= 0:
                return 3600.0
            return (1.0 - tokens) / self.limit.per_second


# -- FastAPI dependencies -------------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer arr_...`")


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="arrears"'})


def principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """The caller, from `Authorization: Bearer <key>`; 401 without a valid key, 429 over its rate."""
    from arrears.api.context import api_state

    state = api_state(request)
    if credentials is None or not credentials.credentials:
        raise _unauthorized("an API key is required: Authorization: Bearer <key>")
    key = credentials.credentials
    found: Principal | None = None
    if state.platform_key and hmac.compare_digest(key.encode(), state.platform_key.encode()):
        found = state.env_principal()
    else:
        with state.db.transaction() as s:
            found = lookup(s, key)
    if found is None:
        raise _unauthorized("the API key is not valid (unknown or revoked)")
    # Known from here on, so a refused write is still recorded with its key.
    request.state.principal = found
    wait = state.limiter.take(found.key_id) if state.limiter is not None else None
    if wait is not None:
        raise ApiProblem(
            429,
            "too many requests for this API key; retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return found


def platform(caller: Principal = Depends(principal)) -> Principal:
    """A platform key; a provider key is refused (403)."""
    if not caller.is_platform:
        raise ApiProblem(403, "this endpoint needs a platform key")
    return caller


def provider(caller: Principal = Depends(principal)) -> Principal:
    """A provider key; the platform key is refused (403): it manages providers, not their data."""
    if caller.is_platform:
        raise ApiProblem(403, "this endpoint needs a provider's key")
    return caller
