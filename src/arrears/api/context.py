"""What a request works with: the database, the clock, the caller, and its transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from arrears.api import auth, views
from arrears.api.auth import Principal, RateLimiter
from arrears.api.problems import not_found
from arrears.api.views import Owned
from arrears.engine.inputs import Inputs
from arrears.store.db import Database
from arrears.store.tables import ApiWriteRow

WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ApiState:
    """One app's configuration and shared state (kept on `app.state.api`)."""

    db: Database
    clock: Callable[[], datetime] = utcnow
    platform_key: str | None = None
    limiter: RateLimiter | None = None
    _env_principal: Principal | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def env_principal(self) -> Principal:
        with self._lock:
            if self._env_principal is None:
                assert self.platform_key is not None
                self._env_principal = auth.env_platform_key(self.db, self.platform_key, self.clock())
            return self._env_principal


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def record_write(
    session: Session, principal: Principal, method: str, path: str, status: int, at: datetime
) -> None:
    session.add(
        ApiWriteRow(
            provider_id=principal.provider_id,
            key_id=principal.key_id,
            at=at,
            method=method,
            path=path[:500],
            status=status,
        )
    )


@dataclass
class Caller:
    """One request of an authenticated caller."""

    request: Request
    principal: Principal
    state: ApiState
    now: datetime

    @property
    def provider_id(self) -> int:
        assert self.principal.provider_id is not None
        return self.principal.provider_id

    def owned(self, session: Session, model: type[Owned], ext_id: str, what: str) -> Owned:
        """The caller's record by its own id, or a 404 (the same for another provider's)."""
        row = views.owned(session, model, self.provider_id, ext_id)
        if row is None:
            raise not_found(what, ext_id)
        return row

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.state.db.transaction() as session:
            yield session

    @contextmanager
    def write(self, status: int = 200) -> Iterator[Session]:
        """A transaction whose write is recorded in `api_writes` when it commits.

        A write that fails is rolled back and recorded afterwards with its status
        (by the middleware), so the record never says a refused write happened.
        """
        with self.state.db.transaction() as session:
            yield session
            record_write(
                session, self.principal, self.request.method, self.request.url.path, status, self.now
            )
            self.request.state.write_recorded = True

    @contextmanager
    def inputs(self, status: int = 200) -> Iterator[Inputs]:
        """`write` with the provider's `Inputs`; the caller settles before reading back."""
        with self.write(status) as session:
            yield Inputs.open(session, self.provider_id, self.now, actor=self.principal.actor)


def _caller(request: Request, principal: Principal) -> Caller:
    state = api_state(request)
    return Caller(request, principal, state, state.clock())


def platform_caller(request: Request, principal: Principal = Depends(auth.platform)) -> Caller:
    return _caller(request, principal)


def provider_caller(request: Request, principal: Principal = Depends(auth.provider)) -> Caller:
    return _caller(request, principal)


def any_caller(request: Request, principal: Principal = Depends(auth.principal)) -> Caller:
    return _caller(request, principal)
