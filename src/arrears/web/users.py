"""People who sign in to the console: their roles, passwords (argon2 via pwdlib) and accounts.

Used by the console's login and by `arrears users`. Passwords are guessable secrets, so
they get a slow, salted hash (argon2id, pwdlib's recommended settings); a hash made with
older settings is replaced on the next successful sign-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from pwdlib import PasswordHash
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from arrears.config import ConfigError
from arrears.store.tables import ConsoleSessionRow, ConsoleUserRow, ProviderRow

# Ordered: each role may do everything the ones before it may.
ROLES = ("viewer", "operator", "admin")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; this only bounds the work one request can ask for
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


@cache
def hasher() -> PasswordHash:
    return PasswordHash.recommended()


@cache
def _dummy_hash() -> str:
    # Verified against when the username is unknown, so an unknown user costs as much time as a
    # wrong password and the answer's timing does not tell which usernames exist.
    return hasher().hash("no console user has this password")


def role_allows(role: str, needed: str) -> bool:
    """Whether `role` may do what `needed` may."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConfigError("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ConfigError("password", f"must be at most {MAX_PASSWORD} characters")


def create_user(
    session: Session, username: str, password: str, role: str, provider_id: int | None, now: datetime
) -> ConsoleUserRow:
    """A new user of one provider (`provider_id`), or of the platform (None: picks a provider)."""
    if not _USERNAME.match(username):
        raise ConfigError("username", "1 to 100 letters, digits or . _ @ -, starting with a letter or digit")
    if role not in ROLES:
        raise ConfigError("role", f"{role!r} is not one of: {', '.join(ROLES)}")
    check_password(password)
    if session.scalar(select(ConsoleUserRow.id).where(ConsoleUserRow.username == username)) is not None:
        raise ConfigError("username", f"{username!r} exists already")
    row = ConsoleUserRow(
        provider_id=provider_id,
        username=username,
        password_hash=hasher().hash(password),
        role=role,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def authenticate(session: Session, username: str, password: str) -> ConsoleUserRow | None:
    """The enabled user with this username and password, else None (whatever was wrong)."""
    row = session.scalar(select(ConsoleUserRow).where(ConsoleUserRow.username == username))
    if row is None or len(password) > MAX_PASSWORD:
        hasher().verify(password[:MAX_PASSWORD], _dummy_hash())
        return None
    valid, new_hash = hasher().verify_and_update(password, row.password_hash)
    if not valid or row.disabled_at is not None:
        return None
    if new_hash is not None:
        row.password_hash = new_hash
    return row


@dataclass(frozen=True)
class UserView:
    username: str
    provider: str | None  # the provider's key; None for a platform user
    role: str
    created_at: datetime
    disabled_at: datetime | None


def list_users(session: Session) -> list[UserView]:
    rows = session.execute(
        select(ConsoleUserRow, ProviderRow.key)
        .outerjoin(ProviderRow, ProviderRow.id == ConsoleUserRow.provider_id)
        .order_by(ConsoleUserRow.username)
    ).all()
    return [UserView(u.username, key, u.role, u.created_at, u.disabled_at) for u, key in rows]


def disable_user(session: Session, username: str, now: datetime) -> ConsoleUserRow | None:
    """Disable a user and end their sessions at once; None when there is no such user."""
    row = session.scalar(select(ConsoleUserRow).where(ConsoleUserRow.username == username))
    if row is None:
        return None
    if row.disabled_at is None:
        row.disabled_at = now
    session.execute(
        update(ConsoleSessionRow)
        .where(ConsoleSessionRow.user_id == row.id, ConsoleSessionRow.expires_at > now)
        .values(expires_at=now)
    )
    return row
