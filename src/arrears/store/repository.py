"""Reading domain snapshots out of the tables, a batch of accounts at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Text,
    any_,
    bindparam,
    cast,
    func,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload

from arrears.config import mapping_from_body, parse_rule_set
from arrears.domain.calendars import holiday_calendar
from arrears.domain.decisions import ProviderContext
from arrears.domain.events import Mappings
from arrears.domain.model import (
    AccountSnapshot,
    AccountStatus,
    CaseStatus,
    ChangedBy,
    Contact,
    ContactRole,
    Episode,
    Invoice,
    InvoiceStatus,
    OmitFlag,
    PaymentPlan,
    PlanStatus,
    Service,
    ServiceStatus,
    StatusReason,
)
from arrears.domain.rules import RuleSet
from arrears.store.tables import (
    AccountRow,
    CaseRow,
    ContactRow,
    EpisodeRow,
    EventMappingRow,
    GroupRow,
    InvoiceRow,
    NotificationRow,
    PaymentRow,
    PlanRow,
    ProviderRow,
    RuleSetRow,
    ServiceRow,
    unallocated_payment,
)
from arrears.store.types import SCALE, money_from_sql


@dataclass
class ProviderView:
    """A provider row with its decision context and the ids rule sets have in storage."""

    row: ProviderRow
    context: ProviderContext
    rule_set_ids: dict[tuple[str, int], int]

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def tz(self) -> ZoneInfo:
        return self.context.tz

    @property
    def currency(self) -> str:
        return self.row.currency


def load_provider(session: Session, provider_id: int) -> ProviderView:
    row = session.get_one(ProviderRow, provider_id)
    rule_rows = session.scalars(select(RuleSetRow).where(RuleSetRow.provider_id == provider_id)).all()
    rule_sets: list[RuleSet] = []
    ids: dict[tuple[str, int], int] = {}
    for r in rule_rows:
        rs = parse_rule_set(r.body, currency=row.currency, effective_at=r.effective_at, version=r.version)
        rule_sets.append(rs)
        ids[(rs.name, rs.version)] = r.id
    mapping_rows = session.scalars(
        select(EventMappingRow)
        .where(EventMappingRow.provider_id == provider_id)
        .order_by(EventMappingRow.key)
    ).all()
    mappings = Mappings(tuple(mapping_from_body(m.key, m.event, m.body, m.since) for m in mapping_rows))
    ctx = ProviderContext(
        tz=ZoneInfo(row.timezone),
        rule_sets=tuple(rule_sets),
        mappings=mappings,
        send_time=time.fromisoformat(row.send_time),
        calendars=holiday_calendar,
    )
    return ProviderView(row, ctx, ids)


def _accounts_statement(lock: bool) -> Any:
    stmt = (
        select(AccountRow)
        .where(AccountRow.id.in_(bindparam("ids", expanding=True)))
        .options(
            selectinload(AccountRow.groups),
            selectinload(AccountRow.contacts),
            selectinload(AccountRow.services),
            # Only what decisions read: history grows, open items stay few.
            selectinload(AccountRow.invoices.and_(InvoiceRow.status == "open")),
            selectinload(AccountRow.payments.and_(PaymentRow.unallocated > 0)),
            selectinload(AccountRow.plans.and_(PlanRow.status == "in_progress")),
            selectinload(AccountRow.cases.and_(CaseRow.status == "open")),
            selectinload(AccountRow.episode),
        )
        .order_by(AccountRow.id)
        # Inputs written earlier in the same transaction must be seen.
        .execution_options(populate_existing=True)
    )
    return stmt.with_for_update(of=AccountRow) if lock else stmt


# Built once: SQLAlchemy memoizes a statement's cache key on the object, and
# computing it for these loader options costs more than running the queries.
_LOAD_ACCOUNTS = {False: _accounts_statement(False), True: _accounts_statement(True)}


def load_accounts(session: Session, account_ids: Sequence[int], *, lock: bool = False) -> list[AccountRow]:
    """Accounts with everything a decision reads, in a fixed number of queries."""
    if not account_ids:
        return []
    stmt = _LOAD_ACCOUNTS[lock and session.get_bind().dialect.name == "postgresql"]
    return list(session.scalars(stmt, {"ids": list(account_ids)}).unique().all())


@dataclass
class NoticeMemory:
    """What an account's earlier evaluations already recorded about notices."""

    occurrences: set[str]
    warnings: dict[str, datetime]  # mapping key -> when it went out on the current path


def _among(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column IN ids`, for a batch of ids (see `id_filter`)."""
    return id_filter(session, ids)(column)


def id_filter(session: Session, ids: Sequence[int]) -> Callable[[Any], ColumnElement[bool]]:
    """A maker of `column IN ids` conditions for one batch of ids.

    On PostgreSQL it is `column = ANY(CAST(:ids AS BIGINT[]))` with the ids sent
    as one text parameter rendered once: the statement text is the same for any
    number of ids (psycopg prepares it once), with no thousands of parameters
    to render and no list to adapt per query.
    """
    if session.get_bind().dialect.name == "postgresql":
        rendered = "{" + ",".join(str(int(i)) for i in ids) + "}"

        def any_of(column: Any) -> ColumnElement[bool]:
            among: ColumnElement[bool] = column == any_(
                cast(bindparam(None, rendered, type_=Text), ARRAY(BigInteger))
            )
            return among

        return any_of

    def in_(column: Any) -> ColumnElement[bool]:
        among: ColumnElement[bool] = column.in_(ids)
        return among

    return in_


# The events whose notifications an evaluation reads back (`NoticeMemory`).
REMEMBERED_EVENTS = ("invoice_due", "invoice_overdue", "suspension_warning")


class _OnAPath(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def path_started_at(self) -> datetime | None: ...


def notice_memory(session: Session, accounts: Sequence[_OnAPath]) -> dict[int, NoticeMemory]:
    """Recorded notice occurrences of a batch of accounts (rows or states), in one query."""
    return _notice_memory(session, {a.id: a.path_started_at for a in accounts})


def _notice_memory(session: Session, path_started: dict[int, datetime | None]) -> dict[int, NoticeMemory]:
    out = {account_id: NoticeMemory(set(), {}) for account_id in path_started}
    if not path_started:
        return out
    paths = {a: p.isoformat() for a, p in path_started.items() if p is not None}
    rows = session.execute(
        select(
            NotificationRow.account_id,
            NotificationRow.key,
            NotificationRow.mapping_key,
            NotificationRow.event,
            NotificationRow.created_at,
        ).where(
            _among(session, NotificationRow.account_id, list(path_started)),
            NotificationRow.event.in_(REMEMBERED_EVENTS),
        )
    ).all()
    for account_id, key, mapping_key, event, created in rows:
        occurrence = occurrence_of(key)
        memory = out[account_id]
        memory.occurrences.add(occurrence)
        path = paths.get(account_id)
        if event == "suspension_warning" and path is not None and occurrence.endswith(path):
            memory.warnings[mapping_key] = min(created, memory.warnings.get(mapping_key, created))
    return out


def occurrence_of(notification_key: str) -> str:
    """The occurrence part of a notification key (mapping|subject|occurrence[|channel|address])."""
    return "|".join(notification_key.split("|")[:3])


def snapshot(account: AccountRow, memory: NoticeMemory) -> AccountSnapshot:
    services = tuple(
        Service(
            id=s.ext_id,
            type=s.type,
            status=ServiceStatus(s.status),
            changed_by=ChangedBy(s.changed_by),
            in_episode=account.episode_id is not None and s.episode_id == account.episode_id,
        )
        for s in account.services
    )
    invoices = tuple(
        Invoice(
            id=i.ext_id,
            issued_at=i.issued_at,
            due=i.due_date,
            amount=i.amount,
            balance=i.balance,
            status=InvoiceStatus(i.status),
            disputed=i.disputed,
        )
        for i in account.invoices
        if i.status == InvoiceStatus.OPEN.value
    )
    contacts = tuple(
        Contact(ContactRole(c.role), c.name, c.email, c.phone, c.service_ext_id) for c in account.contacts
    )
    plans = tuple(
        PaymentPlan(p.ext_id, PlanStatus(p.status), frozenset(p.invoice_ext_ids)) for p in account.plans
    )
    unallocated = sum((p.unallocated for p in account.payments), Decimal("0"))
    episode = (
        Episode(account.episode.id, account.episode.stage, account.episode.started_at)
        if account.episode is not None
        else None
    )
    omit = OmitFlag(account.omit_reason or "", account.omit_until) if account.omit else None
    return AccountSnapshot(
        id=account.ext_id,
        status=AccountStatus(account.status),
        status_reason=StatusReason(account.status_reason) if account.status_reason else None,
        groups=frozenset(g.name for g in account.groups),
        contacts=contacts,
        services=services,
        invoices=invoices,
        unallocated=unallocated,
        plans=plans,
        open_cases=sum(1 for c in account.cases if c.status == CaseStatus.OPEN.value),
        omit=omit,
        episode=episode,
        operator_restored_at=account.operator_restored_at,
        path_started_at=account.path_started_at,
        warnings_sent=dict(memory.warnings),
        notices_recorded=frozenset(memory.occurrences),
        excluded_reasons=tuple(account.excluded_reasons.split(",")) if account.excluded_reasons else None,
        shadow_stage=account.shadow_stage,
    )


# -- plain rows, straight from the tables ------------------------------------------------
#
# The engine reads accounts as plain rows (no ORM objects): `load_snapshots` for
# looking (scans, dry runs) and `load_states` for acting, where the states are
# mutable and `journal.Writes` writes what changed back with set-based statements.


@dataclass(eq=False, slots=True)
class EpisodeState:
    """An episode row as plain, mutable state; `id` is None until it is inserted."""

    id: int | None
    account_id: int
    started_at: datetime
    stage: str
    rule_set_id: int | None
    ended_at: datetime | None = None
    end_reason: str | None = None
    # The written columns as they are in the database (None: not inserted yet).
    saved: tuple[Any, ...] | None = None

    COLUMNS = ("stage", "ended_at", "end_reason")

    def row(self) -> tuple[Any, ...]:
        return (self.stage, self.ended_at, self.end_reason)


@dataclass(eq=False, slots=True)
class ServiceState:
    """A service row as plain, mutable state.

    Assigning `episode` (as the ORM relationship would) sets `episode_id` when
    the changes are written, once a new episode has its id.
    """

    id: int
    account_id: int
    ext_id: str
    type: str
    status: str
    changed_by: str
    episode_id: int | None
    episode: EpisodeState | None = None
    saved: tuple[Any, ...] = ()

    COLUMNS = ("status", "changed_by", "episode_id")

    def sync(self) -> None:
        """`episode_id` from `episode`, once a new episode has its id."""
        if self.episode is not None:
            self.episode_id = self.episode.id

    def row(self) -> tuple[Any, ...]:
        return (self.status, self.changed_by, self.episode_id)


@dataclass(eq=False, slots=True)
class AccountState:
    """An account with everything a decision reads, as plain rows; the engine's unit of work.

    Within a transaction a state is the only copy of its account, service and
    episode rows the engine changes: `journal.Writes` writes them back (and
    expires any ORM copy the session holds).
    """

    id: int
    provider_id: int
    ext_id: str
    status: str
    status_reason: str | None
    omit: bool
    omit_reason: str | None
    omit_until: date | None
    episode_id: int | None
    operator_restored_at: datetime | None
    path_started_at: datetime | None
    excluded_reasons: str | None
    shadow_stage: str | None
    next_wakeup_at: datetime | None
    evaluated_at: datetime | None
    stage: str | None
    projected_suspension: datetime | None
    episode: EpisodeState | None
    services: list[ServiceState]
    # Read-only inputs of the decision.
    groups: frozenset[str]
    contacts: tuple[Contact, ...]
    invoices: tuple[Invoice, ...]
    unallocated: Decimal
    plans: tuple[PaymentPlan, ...]
    open_cases: int
    saved: tuple[Any, ...] = ()

    # The columns an evaluation may change.
    COLUMNS = (
        "status",
        "status_reason",
        "episode_id",
        "path_started_at",
        "excluded_reasons",
        "shadow_stage",
        "next_wakeup_at",
        "evaluated_at",
        "stage",
        "projected_suspension",
    )

    def sync(self) -> None:
        """`episode_id` from `episode` (and the services'), once a new episode has its id."""
        self.episode_id = self.episode.id if self.episode is not None else None
        for service in self.services:
            service.sync()

    def row(self) -> tuple[Any, ...]:
        return (
            self.status,
            self.status_reason,
            self.episode_id,
            self.path_started_at,
            self.excluded_reasons,
            self.shadow_stage,
            self.next_wakeup_at,
            self.evaluated_at,
            self.stage,
            self.projected_suspension,
        )


def _raw_instant(column: Any) -> Any:
    """A `UTCDateTime` column read as the naive UTC value stored (`load_states` adds the zone).

    Converting in the loop that builds the states costs a fraction of the
    type's per-value result processing, which dominated reading a batch.
    """
    return type_coerce(column, DateTime())


def _raw_money(column: Any) -> Any:
    """A `Money` column read as the stored integer (see `_raw_instant`; scaled back by `SCALE`)."""
    return type_coerce(column, BigInteger())


@dataclass(frozen=True)
class StoredAccount:
    """The columns of an account a scan shows, and those an evaluation rewrites."""

    id: int
    provider_id: int
    ext_id: str
    status: str
    episode_stage: str | None
    excluded_reasons: str | None
    shadow_stage: str | None
    path_started_at: datetime | None
    next_wakeup_at: datetime | None
    evaluated_at: datetime | None
    stage: str | None
    projected_suspension: datetime | None


@dataclass(slots=True)
class _Batch:
    """The rows of a batch of accounts, as read (see `_read_batch`), by account id."""

    accounts: Sequence[Any]  # the account columns, the episode's after them
    groups: dict[int, set[str]]
    contacts: dict[int, list[Contact]]
    services: dict[int, list[tuple[Any, ...]]]  # (id, ext_id, type, status, changed_by, episode_id)
    invoices: dict[int, list[Invoice]]
    unallocated: dict[int, Decimal]
    plans: dict[int, list[PaymentPlan]]
    cases: dict[int, int]
    utc: Callable[[datetime | None], datetime | None]


def load_states(session: Session, account_ids: Sequence[int], *, lock: bool = False) -> list[AccountState]:
    """Accounts with everything a decision reads, as plain rows, in account id order.

    One query per table for the whole batch. With `lock` the account rows are
    locked for the transaction (PostgreSQL `FOR UPDATE`; SQLite has one writer).
    """
    ids = sorted(set(account_ids))
    if not ids:
        return []
    batch = _read_batch(session, ids, lock)
    accounts, groups, contacts, invoices = batch.accounts, batch.groups, batch.contacts, batch.invoices
    unallocated, plans, cases, utc = batch.unallocated, batch.plans, batch.cases, batch.utc
    services: dict[int, list[ServiceState]] = {
        account_id: [
            ServiceState(
                service_id,
                account_id,
                ext_id,
                stype,
                status,
                changed_by,
                episode_id,
                saved=(status, changed_by, episode_id),
            )
            for service_id, ext_id, stype, status, changed_by, episode_id in rows
        ]
        for account_id, rows in batch.services.items()
    }
    zero = Decimal("0")
    no_groups: frozenset[str] = frozenset()
    out: list[AccountState] = []
    for (
        account_id,
        provider_id,
        ext_id,
        status,
        status_reason,
        omit,
        omit_reason,
        omit_until,
        episode_id,
        operator_restored_at,
        path_started_at,
        excluded_reasons,
        shadow_stage,
        next_wakeup_at,
        evaluated_at,
        stage,
        projected,
        episode_started,
        episode_stage,
        episode_rule_set,
        episode_ended,
        episode_end_reason,
    ) in accounts:
        episode = None
        mine = services.get(account_id, [])
        if episode_id is not None:
            episode = EpisodeState(
                episode_id,
                account_id,
                episode_started.replace(tzinfo=UTC),
                episode_stage,
                episode_rule_set,
                None if episode_ended is None else episode_ended.replace(tzinfo=UTC),
                episode_end_reason,
            )
            episode.saved = episode.row()
            for svc in mine:
                if svc.episode_id == episode_id:
                    svc.episode = episode
        member = groups.get(account_id)
        state = AccountState(
            account_id,
            provider_id,
            ext_id,
            status,
            status_reason,
            omit,
            omit_reason,
            omit_until,
            episode_id,
            utc(operator_restored_at),
            utc(path_started_at),
            excluded_reasons,
            shadow_stage,
            utc(next_wakeup_at),
            utc(evaluated_at),
            stage,
            utc(projected),
            episode,
            mine,
            frozenset(member) if member else no_groups,
            tuple(contacts.get(account_id, ())),
            tuple(invoices.get(account_id, ())),
            unallocated.get(account_id, zero),
            tuple(plans.get(account_id, ())),
            cases.get(account_id, 0),
        )
        state.saved = state.row()
        out.append(state)
    return out


def _read_batch(session: Session, ids: list[int], lock: bool) -> _Batch:
    """One query per table for a batch of accounts (ids sorted, not empty)."""
    # Plain (Core) selects do not autoflush: inputs written earlier in the same
    # transaction must be seen.
    session.flush()
    among = id_filter(session, ids)

    a, e = AccountRow.__table__.c, EpisodeRow.__table__.c
    stmt = (
        select(
            a.id,
            a.provider_id,
            a.ext_id,
            a.status,
            a.status_reason,
            a.omit,
            a.omit_reason,
            a.omit_until,
            a.episode_id,
            _raw_instant(a.operator_restored_at),
            _raw_instant(a.path_started_at),
            a.excluded_reasons,
            a.shadow_stage,
            _raw_instant(a.next_wakeup_at),
            _raw_instant(a.evaluated_at),
            a.stage,
            _raw_instant(a.projected_suspension),
            _raw_instant(e.started_at),
            e.stage,
            e.rule_set_id,
            _raw_instant(e.ended_at),
            e.end_reason,
        )
        .select_from(AccountRow.__table__.outerjoin(EpisodeRow.__table__, e.id == a.episode_id))
        .where(among(a.id))
        .order_by(a.id)
    )
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=AccountRow.__table__)
    # Straight on the connection: these are Core selects, the ORM has nothing to add.
    conn = session.connection()
    accounts = conn.execute(stmt).all()

    groups: dict[int, set[str]] = {}
    g = GroupRow.__table__.c
    for account_id, name in conn.execute(select(g.account_id, g.name).where(among(g.account_id))).all():
        groups.setdefault(account_id, set()).add(name)

    contacts: dict[int, list[Contact]] = {}
    c = ContactRow.__table__.c
    for account_id, role, name, email, phone, service in conn.execute(
        select(c.account_id, c.role, c.name, c.email, c.phone, c.service_ext_id)
        .where(among(c.account_id))
        .order_by(c.id)
    ).all():
        contacts.setdefault(account_id, []).append(Contact(_ROLES[role], name, email, phone, service))

    services: dict[int, list[tuple[Any, ...]]] = {}
    s = ServiceRow.__table__.c
    for service_id, account_id, ext_id, stype, status, changed_by, episode_id in conn.execute(
        select(s.id, s.account_id, s.ext_id, s.type, s.status, s.changed_by, s.episode_id)
        .where(among(s.account_id))
        .order_by(s.id)
    ).all():
        services.setdefault(account_id, []).append(
            (service_id, ext_id, stype, status, changed_by, episode_id)
        )

    # Instants and amounts repeat within a batch (a pass's instants, the same
    # bills): each distinct stored value is converted once.
    aware: dict[datetime, datetime] = {}
    amounts: dict[int, Decimal] = {}

    def utc(naive: datetime | None) -> datetime | None:
        if naive is None:
            return None
        found = aware.get(naive)
        if found is None:
            found = aware[naive] = naive.replace(tzinfo=UTC)
        return found

    def money(scaled: int) -> Decimal:
        found = amounts.get(scaled)
        if found is None:
            found = amounts[scaled] = Decimal(scaled) / SCALE
        return found

    invoices: dict[int, list[Invoice]] = {}
    i = InvoiceRow.__table__.c
    is_open = InvoiceStatus.OPEN
    for account_id, ext_id, issued, due, amount, balance, disputed in conn.execute(
        select(
            i.account_id,
            i.ext_id,
            _raw_instant(i.issued_at),
            i.due_date,
            _raw_money(i.amount),
            _raw_money(i.balance),
            _raw_money(i.disputed),
        )
        .where(among(i.account_id), i.status == is_open.value)
        .order_by(i.id)
    ).all():
        issued_at = aware.get(issued)
        if issued_at is None:
            issued_at = aware[issued] = issued.replace(tzinfo=UTC)
        invoices.setdefault(account_id, []).append(
            Invoice(ext_id, issued_at, due, money(amount), money(balance), is_open, money(disputed))
        )

    p = PaymentRow.__table__.c
    unallocated = {
        account_id: money_from_sql(total)
        for account_id, total in conn.execute(
            select(p.account_id, func.sum(p.unallocated))
            .where(among(p.account_id), unallocated_payment())
            .group_by(p.account_id)
        ).all()
    }

    plans: dict[int, list[PaymentPlan]] = {}
    pl = PlanRow.__table__.c
    for account_id, ext_id, status, linked in conn.execute(
        select(pl.account_id, pl.ext_id, pl.status, pl.invoice_ext_ids)
        .where(among(pl.account_id), pl.status == PlanStatus.IN_PROGRESS.value)
        .order_by(pl.id)
    ).all():
        plans.setdefault(account_id, []).append(PaymentPlan(ext_id, PlanStatus(status), frozenset(linked)))

    k = CaseRow.__table__.c
    cases: dict[int, int] = {
        account_id: n
        for account_id, n in conn.execute(
            select(k.account_id, func.count())
            .where(among(k.account_id), k.status == CaseStatus.OPEN.value)
            .group_by(k.account_id)
        ).all()
    }

    return _Batch(accounts, groups, contacts, services, invoices, unallocated, plans, cases, utc)


def state_snapshot(account: AccountState, memory: NoticeMemory) -> AccountSnapshot:
    """The decision's view of a state: what `snapshot` gives for the same rows."""
    current = account.episode_id
    episode: Episode | None = None
    if account.episode is not None:
        # Snapshots are taken of written states (a new episode has its id by then).
        assert account.episode.id is not None, "snapshot of an episode not yet written"
        episode = Episode(account.episode.id, account.episode.stage, account.episode.started_at)
    return AccountSnapshot(
        id=account.ext_id,
        status=_ACCOUNT_STATUSES[account.status],
        status_reason=_STATUS_REASONS[account.status_reason] if account.status_reason else None,
        groups=account.groups,
        contacts=account.contacts,
        services=tuple(
            Service(
                s.ext_id,
                s.type,
                _SERVICE_STATUSES[s.status],
                _CHANGED_BY[s.changed_by],
                current is not None and s.episode_id == current,
            )
            for s in account.services
        ),
        invoices=account.invoices,
        unallocated=account.unallocated,
        plans=account.plans,
        open_cases=account.open_cases,
        omit=OmitFlag(account.omit_reason or "", account.omit_until) if account.omit else None,
        episode=episode,
        operator_restored_at=account.operator_restored_at,
        path_started_at=account.path_started_at,
        warnings_sent=dict(memory.warnings),
        notices_recorded=frozenset(memory.occurrences),
        excluded_reasons=tuple(account.excluded_reasons.split(",")) if account.excluded_reasons else None,
        shadow_stage=account.shadow_stage,
    )


def stored_account(account: AccountState) -> StoredAccount:
    return StoredAccount(
        id=account.id,
        provider_id=account.provider_id,
        ext_id=account.ext_id,
        status=account.status,
        episode_stage=account.episode.stage if account.episode is not None else None,
        excluded_reasons=account.excluded_reasons,
        shadow_stage=account.shadow_stage,
        path_started_at=account.path_started_at,
        next_wakeup_at=account.next_wakeup_at,
        evaluated_at=account.evaluated_at,
        stage=account.stage,
        projected_suspension=account.projected_suspension,
    )


def load_snapshots(
    session: Session, account_ids: Sequence[int]
) -> list[tuple[StoredAccount, AccountSnapshot]]:
    """What `snapshot(load_accounts(...))` gives, without building ORM objects.

    For reading many accounts fast (scans, dry runs): plain rows, one query per
    table for the whole batch, no locks. Ordered by account id. Must stay equal
    to `snapshot` (tests/integration/test_scan.py compares the two).
    """
    ids = sorted(set(account_ids))
    if not ids:
        return []
    # Built straight from the rows: a look needs no mutable states (`load_states`).
    batch = _read_batch(session, ids, lock=False)
    utc = batch.utc
    memory = _notice_memory(session, {row[0]: utc(row[10]) for row in batch.accounts})
    groups, contacts, services, invoices = batch.groups, batch.contacts, batch.services, batch.invoices
    unallocated, plans, cases = batch.unallocated, batch.plans, batch.cases
    zero = Decimal("0")
    no_groups: frozenset[str] = frozenset()
    out: list[tuple[StoredAccount, AccountSnapshot]] = []
    for (
        account_id,
        provider_id,
        ext_id,
        status,
        status_reason,
        omit,
        omit_reason,
        omit_until,
        episode_id,
        operator_restored_at,
        path_started_raw,
        excluded_reasons,
        shadow_stage,
        next_wakeup_at,
        evaluated_at,
        stage,
        projected,
        episode_started,
        episode_stage,
        _episode_rule_set,
        _episode_ended,
        _episode_end_reason,
    ) in batch.accounts:
        path_started_at = utc(path_started_raw)
        episode: Episode | None = None
        if episode_id is not None:
            started = utc(episode_started)
            assert started is not None
            episode = Episode(episode_id, episode_stage, started)
        else:
            episode_stage = None
        member = groups.get(account_id)
        seen = memory[account_id]
        stored = StoredAccount(
            account_id,
            provider_id,
            ext_id,
            status,
            episode_stage,
            excluded_reasons,
            shadow_stage,
            path_started_at,
            utc(next_wakeup_at),
            utc(evaluated_at),
            stage,
            utc(projected),
        )
        snap = AccountSnapshot(
            id=ext_id,
            status=_ACCOUNT_STATUSES[status],
            status_reason=_STATUS_REASONS[status_reason] if status_reason else None,
            groups=frozenset(member) if member else no_groups,
            contacts=tuple(contacts.get(account_id, ())),
            services=tuple(
                Service(
                    svc_ext_id,
                    svc_type,
                    _SERVICE_STATUSES[svc_status],
                    _CHANGED_BY[changed_by],
                    episode_id is not None and svc_episode == episode_id,
                )
                for _, svc_ext_id, svc_type, svc_status, changed_by, svc_episode in services.get(
                    account_id, ()
                )
            ),
            invoices=tuple(invoices.get(account_id, ())),
            unallocated=unallocated.get(account_id, zero),
            plans=tuple(plans.get(account_id, ())),
            open_cases=cases.get(account_id, 0),
            omit=OmitFlag(omit_reason or "", omit_until) if omit else None,
            episode=episode,
            operator_restored_at=utc(operator_restored_at),
            path_started_at=path_started_at,
            warnings_sent=dict(seen.warnings),
            notices_recorded=frozenset(seen.occurrences),
            excluded_reasons=tuple(excluded_reasons.split(",")) if excluded_reasons else None,
            shadow_stage=shadow_stage,
        )
        out.append((stored, snap))
    return out


# Enum members by value: a dict lookup is several times faster than calling the enum.
_ACCOUNT_STATUSES = {m.value: m for m in AccountStatus}
_SERVICE_STATUSES = {m.value: m for m in ServiceStatus}
_STATUS_REASONS = {m.value: m for m in StatusReason}
_CHANGED_BY = {m.value: m for m in ChangedBy}
_ROLES = {m.value: m for m in ContactRole}
