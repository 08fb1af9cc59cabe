"""Server-side console sessions.

The browser holds a random 256-bit token in an HttpOnly, SameSite=Lax cookie; the database
keeps only its SHA-256 (a fast hash is enough for a random token) and the session's CSRF
token. A session ends after `IDLE` without a request, after `LIFETIME` in any case, on
sign-out, and when its user is disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from arrears.store.tables import ConsoleSessionRow, ConsoleUserRow

COOKIE = "arrears_session"
IDLE = timedelta(hours=12)
LIFETIME = timedelta(days=7)
# A request extends the idle expiry only this long after the last extension: not one write per page.
TOUCH_EVERY = timedelta(minutes=1)
KEEP_ENDED = timedelta(days=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class SignedIn:
    """Who a session belongs to, as a request needs it."""

    session_id: int
    user_id: int
    username: str
    role: str
    provider_id: int | None  # None: a platform user, who picks the provider to look at
    csrf_token: str

    @property
    def actor(self) -> str:
        """How history lines and operator actions name this person."""
        return f"console:{self.username}"


def start(session: Session, user: ConsoleUserRow, now: datetime) -> str:
    """A new session for `user`; returns the token for the cookie (kept nowhere else).

    Sessions that ended more than `KEEP_ENDED` ago are deleted here, so the table
    holds only recent ones without a job of its own.
    """
    session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < now - KEEP_ENDED))
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSessionRow(
            user_id=user.id,
            token_hash=token_hash(token),
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + IDLE,
        )
    )
    session.flush()
    return token


def find(session: Session, token: str, now: datetime) -> SignedIn | None:
    """The live session of this token (its idle expiry moved on), else None."""
    found = session.execute(
        select(ConsoleSessionRow, ConsoleUserRow)
        .join(ConsoleUserRow, ConsoleUserRow.id == ConsoleSessionRow.user_id)
        .where(ConsoleSessionRow.token_hash == token_hash(token))
    ).first()
    if found is None:
        return None
    row, user = found
    if row.expires_at <= now or user.disabled_at is not None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = min(now + IDLE, row.created_at + LIFETIME)
    return SignedIn(row.id, user.id, user.username, user.role, user.provider_id, row.csrf_token)


def end(session: Session, token: str, now: datetime) -> None:
    row = session.scalar(select(ConsoleSessionRow).where(ConsoleSessionRow.token_hash == token_hash(token)))
    if row is not None:
        row.expires_at = min(row.expires_at, now)
