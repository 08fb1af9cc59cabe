"""The radius adapter: walled garden and suspension for an ISP running FreeRADIUS (SPEC §8).

Each call is two steps, always in this order:

1. SQL. The user's rows in FreeRADIUS's `radusergroup` table are replaced by the
   walled-garden group (`restricted`) or the suspended group (`suspended`,
   `deactivated`); `restore` puts back exactly the groups the user had. Those
   original groups are kept in arrears' own table in the same database, written
   in the same transaction as the move and only when the user is not already
   held, so a repeated or escalating action never overwrites them.
2. RFC 5176 to the NAS, so the change applies now and not only at the next
   login: a CoA-Request carrying the new policy (`restricted`, and `restore`
   unless configured otherwise) or a Disconnect-Request (`suspended`,
   `deactivated`). The NAS is contacted only once the SQL change has committed.

Both steps are safe to repeat, so a RETRY simply runs the call again.

The bookkeeping table is created on first use when it is missing (the adapter's
database user then needs CREATE); a DBA may create it beforehand instead:

    CREATE TABLE arrears_radius_saved_groups (
        id serial PRIMARY KEY,
        username varchar(64) NOT NULL,
        groupname varchar(64),          -- NULL: the user had no group at all
        priority integer,
        saved_at timestamp with time zone NOT NULL
    );
    CREATE INDEX arrears_radius_saved_groups_username ON arrears_radius_saved_groups (username);
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyrad import packet as radius_packet
from pyrad.dictionary import Dictionary
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from arrears.provisioning.base import ConfigError, ProvisioningCall, Result, State

log = logging.getLogger(__name__)

DICTIONARY_PATH = Path(__file__).with_name("radius_dictionary")

ACTIONS = ("restricted", "suspended", "deactivated", "restore")
RESTORE_MODES = ("coa", "disconnect")
USERNAME_PLACEHOLDERS = ("service", "account")
MAX_NAME = 64  # radusergroup.username / groupname are varchar(64) in FreeRADIUS's schema
HELD_PRIORITY = 0  # the walled-garden / suspended row is the user's only group

# Error-Cause values (RFC 5176)
ERROR_CAUSES = {
    201: "Residual Session Context Removed",
    202: "Invalid EAP Packet",
    401: "Unsupported Attribute",
    402: "Missing Attribute",
    403: "NAS Identification Mismatch",
    404: "Invalid Request",
    405: "Unsupported Service",
    406: "Unsupported Extension",
    407: "Invalid Attribute Value",
    501: "Administratively Prohibited",
    502: "Request Not Routable (Proxy)",
    503: "Session Context Not Found",
    504: "Session Context Not Removable",
    505: "Other Proxy Processing Error",
    506: "Resources Unavailable",
    507: "Request Initiated",
    508: "Multiple Session Selection Unsupported",
}
SESSION_NOT_FOUND = 503
RESOURCES_UNAVAILABLE = 506  # the NAS says it is short of resources right now: worth another try

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PLACEHOLDER = re.compile(r"\{(service|account)\}")

_SETTINGS = (
    "nas_host",
    "nas_port",
    "secret",
    "timeout",
    "retries",
    "sql_url",
    "sql_connect_timeout",
    "table",
    "saved_table",
    "walled_garden_group",
    "suspended_group",
    "username",
    "coa_attribute",
    "restore",
    "restore_policy",
    "nas_ip_address",
    "message_authenticator",
    "dictionaries",
)
# Keys a registry may leave in an adapter's section to say which adapter it is.
_SELECTOR_KEYS = ("adapter", "type")


def load_dictionary(extra: Sequence[str] = ()) -> Any:
    """The shipped minimal dictionary, plus any deployment dictionaries (e.g. for vendor attributes)."""
    return Dictionary(str(DICTIONARY_PATH), *extra)


@dataclass(frozen=True)
class RadiusSettings:
    nas_host: str
    secret: bytes = field(repr=False)
    sql_url: str = field(repr=False)  # may carry the database password
    walled_garden_group: str
    suspended_group: str
    nas_port: int = 3799
    timeout: float = 3.0  # seconds to wait for an answer after each send
    retries: int = 3  # how many times a request is sent in all (pyrad's meaning), at least 1
    sql_connect_timeout: int = 5  # seconds; applies to PostgreSQL and MySQL/MariaDB drivers
    table: str = "radusergroup"  # may be "schema.table"
    saved_table: str = "arrears_radius_saved_groups"  # lives in the same schema as `table`
    username: str = "{service}"  # template; {service} and {account} only
    coa_attribute: str = "Filter-Id"  # the attribute that carries the policy in a CoA-Request
    restore: str = "coa"  # or "disconnect": end the session so the user logs in to the normal group
    restore_policy: str | None = None  # fixed restore CoA value; default: the user's first group
    nas_ip_address: str | None = None  # sent as NAS-IP-Address when the NAS wants to see itself named
    message_authenticator: bool = True  # BlastRADIUS hardening (CVE-2024-3596)
    dictionaries: tuple[str, ...] = ()  # extra dictionary files, read after the shipped one

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RadiusSettings:
        if not isinstance(cfg, Mapping):
            raise ConfigError("radius", "must be a mapping")
        for key in cfg:
            if key not in _SETTINGS and key not in _SELECTOR_KEYS:
                raise ConfigError(str(key), f"unknown setting (known: {', '.join(_SETTINGS)})")

        sql_url = _text(cfg, "sql_url")
        try:
            make_url(sql_url)
        except ArgumentError as exc:
            raise ConfigError("sql_url", f"not a database URL: {exc}") from None

        username = _text(cfg, "username", "{service}")
        rest = _PLACEHOLDER.sub("", username)
        if "{" in rest or "}" in rest:
            raise ConfigError("username", "the only placeholders are {service} and {account}")
        if rest == username:
            raise ConfigError("username", "must contain {service} or {account}")

        dictionaries = cfg.get("dictionaries", [])
        if isinstance(dictionaries, str) or not isinstance(dictionaries, Sequence):
            raise ConfigError("dictionaries", "must be a list of dictionary file paths")
        if not all(isinstance(p, str) and p for p in dictionaries):
            raise ConfigError("dictionaries", "must be a list of dictionary file paths")
        try:
            dictionary = load_dictionary(dictionaries)
        except Exception as exc:  # pyrad raises ParseError, OSError, ValueError, ... for a bad file
            raise ConfigError("dictionaries", f"cannot read: {exc}") from None

        coa_attribute = _text(cfg, "coa_attribute", "Filter-Id")
        if coa_attribute not in dictionary:
            raise ConfigError("coa_attribute", f"{coa_attribute!r} is not in the RADIUS dictionary")
        if dictionary[coa_attribute].type != "string":
            raise ConfigError("coa_attribute", f"{coa_attribute!r} must be a string attribute")

        restore = _text(cfg, "restore", "coa")
        if restore not in RESTORE_MODES:
            raise ConfigError("restore", f"{restore!r} is not one of: {', '.join(RESTORE_MODES)}")

        nas_ip = _optional_text(cfg, "nas_ip_address")
        if nas_ip is not None:
            try:
                ipaddress.IPv4Address(nas_ip)
            except ValueError:
                raise ConfigError("nas_ip_address", f"{nas_ip!r} is not an IPv4 address") from None

        message_authenticator = cfg.get("message_authenticator", True)
        if not isinstance(message_authenticator, bool):
            raise ConfigError("message_authenticator", "must be true or false")

        restore_policy = _optional_text(cfg, "restore_policy")
        if restore_policy is not None:
            _check_length("restore_policy", restore_policy, 253)

        return cls(
            nas_host=_text(cfg, "nas_host"),
            nas_port=_int(cfg, "nas_port", 3799, 1, 65535),
            secret=_text(cfg, "secret").encode(),
            timeout=_number(cfg, "timeout", 3.0, 0.001, 60.0),
            retries=_int(cfg, "retries", 3, 1, 10),
            sql_url=sql_url,
            sql_connect_timeout=_int(cfg, "sql_connect_timeout", 5, 1, 300),
            table=_table_name(cfg, "table", "radusergroup", schema_allowed=True),
            saved_table=_table_name(cfg, "saved_table", "arrears_radius_saved_groups", schema_allowed=False),
            walled_garden_group=_group(cfg, "walled_garden_group"),
            suspended_group=_group(cfg, "suspended_group"),
            username=username,
            coa_attribute=coa_attribute,
            restore=restore,
            restore_policy=restore_policy,
            nas_ip_address=nas_ip,
            message_authenticator=message_authenticator,
            dictionaries=tuple(dictionaries),
        )


_REQUIRED: Any = object()


def _text(cfg: Mapping[str, Any], key: str, default: Any = _REQUIRED) -> str:
    value = cfg.get(key, default)
    if value is _REQUIRED:
        raise ConfigError(key, "is required")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "must be a non-empty string")
    return value


def _optional_text(cfg: Mapping[str, Any], key: str) -> str | None:
    if cfg.get(key) is None:
        return None
    return _text(cfg, key)


def _check_length(key: str, value: str, limit: int) -> None:
    if len(value.encode()) > limit:
        raise ConfigError(key, f"must be at most {limit} bytes")


def _group(cfg: Mapping[str, Any], key: str) -> str:
    value = _text(cfg, key)
    if len(value) > MAX_NAME:
        raise ConfigError(key, f"must be at most {MAX_NAME} characters (radusergroup.groupname)")
    return value


def _int(cfg: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = cfg.get(key, default)
    # bool is an int in Python, but `retries: yes` is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(key, f"must be a whole number from {low} to {high}")
    return value


def _number(cfg: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(key, f"must be a number of seconds from {low} to {high}")
    return float(value)


def _table_name(cfg: Mapping[str, Any], key: str, default: str, *, schema_allowed: bool) -> str:
    value = _text(cfg, key, default)
    parts = value.split(".")
    if len(parts) > (2 if schema_allowed else 1) or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        shape = "a table name, optionally schema.table" if schema_allowed else "a plain table name"
        raise ConfigError(key, f"{value!r} is not {shape}")
    return value


Group = tuple[str, int | None]  # (groupname, priority)


@dataclass(frozen=True)
class _Change:
    """What the SQL step did, for the operator, and the user's groups afterwards."""

    summary: str
    groups: list[Group]


@dataclass(frozen=True)
class _Exchange:
    reply: Any  # a pyrad CoAPacket, or None after the last try went unanswered
    ignored: int  # replies dropped for a bad authenticator: usually a shared-secret mismatch


class RadiusAdapter:
    """Moves users between FreeRADIUS groups and tells the NAS with CoA / Disconnect (RFC 5176)."""

    name = "radius"

    def __init__(self, settings: RadiusSettings) -> None:
        self.settings = settings
        self._dictionary = load_dictionary(settings.dictionaries)
        url = make_url(settings.sql_url)
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() in ("postgresql", "mysql", "mariadb"):
            # without it an unreachable database blocks the worker for the OS's TCP timeout
            connect_args["connect_timeout"] = settings.sql_connect_timeout
        try:
            self._engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError("sql_url", f"cannot use {url.drivername}: {exc}") from None

        schema, _, name = settings.table.rpartition(".")
        metadata = MetaData(schema=schema or None)
        # Only the columns arrears touches: FreeRADIUS schemas differ in the rest (id, types).
        self._groups = Table(
            name,
            metadata,
            Column("username", String(MAX_NAME), nullable=False),
            Column("groupname", String(MAX_NAME), nullable=False),
            Column("priority", Integer),
        )
        self._saved = Table(
            settings.saved_table,
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("username", String(MAX_NAME), nullable=False),
            Column("groupname", String(MAX_NAME)),
            Column("priority", Integer),
            Column("saved_at", DateTime(timezone=True), nullable=False),
        )
        Index(f"{settings.saved_table}_username", self._saved.c.username)
        self._saved_ready = False
        self._ready_lock = threading.Lock()

    # -- the Adapter interface -------------------------------------------------------------

    def execute(self, call: ProvisioningCall) -> Result:
        if call.action not in ACTIONS:
            return Result(State.FAILED, f"unknown action {call.action!r}")
        try:
            # checked before the SQL step, so a bad call changes nothing
            username = self.username_for(call)
            session = _session_id(call)
        except ValueError as exc:
            return Result(State.FAILED, str(exc))

        try:
            change = self._apply(call.action, username)
        except SQLAlchemyError as exc:
            # the database is down or refuses: nothing changed, and the NAS must not hear of it yet
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Result(State.RETRY, f"RADIUS database: {first_line}")

        code, policy, why = self._request_kind(call.action, change)
        summary = f"{change.summary}{why}"
        try:
            request = self._build_request(code, username, session, policy)
        except (ValueError, TypeError, KeyError) as exc:
            return Result(State.FAILED, f"{summary}; cannot build the {_kind(code)}-Request: {exc}")
        try:
            exchange = self._send(request)
        except OSError as exc:
            return Result(State.RETRY, f"{summary}; NAS {self._nas}: {exc}")
        return self._outcome(code, summary, exchange, username)

    def close(self) -> None:
        self._engine.dispose()

    # -- naming the user -------------------------------------------------------------------

    def username_for(self, call: ProvisioningCall) -> str:
        """The RADIUS User-Name of the call's service; ValueError when there is no usable one."""
        given = call.attributes.get("radius_username")
        if given is not None:
            if not isinstance(given, str) or not given:
                raise ValueError("attribute radius_username must be a non-empty string")
            username = given
        else:
            values = {"service": call.service, "account": call.account}
            # one pass with a function, so a value that itself contains "{account}" stays literal
            username = _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.settings.username)
        if not username:
            raise ValueError("the RADIUS user name is empty")
        if len(username) > MAX_NAME:
            raise ValueError(f"RADIUS user name {username!r} is longer than {MAX_NAME} characters")
        return username

    # -- step 1: SQL ---------------------------------------------------------------------

    def _apply(self, action: str, username: str) -> _Change:
        self._ensure_saved_table()
        with self._engine.begin() as conn:
            if action == "restore":
                return self._restore(conn, username)
            target = (
                self.settings.walled_garden_group if action == "restricted" else self.settings.suspended_group
            )
            return self._hold(conn, username, target)

    def _ensure_saved_table(self) -> None:
        if self._saved_ready:
            return
        with self._ready_lock:
            if not self._saved_ready:
                with self._engine.begin() as conn:
                    self._saved.create(conn, checkfirst=True)
                self._saved_ready = True

    def _current(self, conn: Connection, username: str) -> list[Group]:
        g = self._groups.c
        rows = conn.execute(
            select(g.groupname, g.priority)
            .where(g.username == username)
            .order_by(g.priority, g.groupname)
            # serialises two workers on the same user; SQLite ignores it
            .with_for_update()
        )
        return [(r.groupname, r.priority) for r in rows]

    def _hold(self, conn: Connection, username: str, target: str) -> _Change:
        current = self._current(conn, username)
        s = self._saved.c
        held = conn.execute(select(func.count()).where(s.username == username)).scalar_one() > 0
        notes: list[str] = []
        if held:
            # the saved groups are the user's own; what they are in now is arrears' doing
            notes.append("original groups already saved")
        else:
            now = datetime.now(UTC)
            # a NULL row records "no group at all", so the user still counts as held
            rows = [
                {"username": username, "groupname": g, "priority": p, "saved_at": now} for g, p in current
            ]
            conn.execute(
                insert(self._saved),
                rows or [{"username": username, "groupname": None, "priority": None, "saved_at": now}],
            )
            notes.append(f"saved groups: {_describe(current)}")
        wanted: list[Group] = [(target, HELD_PRIORITY)]
        if current == wanted:
            return _Change(f"user {username} already in group {target} ({'; '.join(notes)})", wanted)
        g = self._groups.c
        conn.execute(delete(self._groups).where(g.username == username))
        conn.execute(insert(self._groups).values(username=username, groupname=target, priority=HELD_PRIORITY))
        return _Change(f"user {username} moved to group {target} ({'; '.join(notes)})", wanted)

    def _restore(self, conn: Connection, username: str) -> _Change:
        current = self._current(conn, username)
        s = self._saved.c
        saved = conn.execute(
            select(s.groupname, s.priority)
            .where(s.username == username)
            .order_by(s.priority, s.groupname, s.id)
        ).all()
        if not saved:
            # never held, or a repeated restore: the user's groups are theirs, leave them be
            return _Change(
                f"user {username} not held by arrears, groups left as they are: {_describe(current)}", current
            )
        originals: list[Group] = [(r.groupname, r.priority) for r in saved if r.groupname is not None]
        g = self._groups.c
        conn.execute(delete(self._groups).where(g.username == username))
        if originals:
            conn.execute(
                insert(self._groups),
                [{"username": username, "groupname": n, "priority": p} for n, p in originals],
            )
        conn.execute(delete(self._saved).where(s.username == username))
        return _Change(f"user {username} restored to groups: {_describe(originals)}", originals)

    # -- step 2: RFC 5176 ------------------------------------------------------------------

    def _request_kind(self, action: str, change: _Change) -> tuple[int, str | None, str]:
        """(packet code, policy value for a CoA, a note on why when it is not the obvious choice)."""
        if action == "restricted":
            return radius_packet.CoARequest, self.settings.walled_garden_group, ""
        if action in ("suspended", "deactivated"):
            return radius_packet.DisconnectRequest, None, ""
        if self.settings.restore == "disconnect":
            return radius_packet.DisconnectRequest, None, ""
        policy = self.settings.restore_policy or (change.groups[0][0] if change.groups else None)
        if policy is None:
            # nothing to name as the normal policy: a fresh login gets FreeRADIUS's defaults
            return (
                radius_packet.DisconnectRequest,
                None,
                "; no group to send as policy, disconnecting instead",
            )
        return radius_packet.CoARequest, policy, ""

    def _build_request(self, code: int, username: str, session: str | None, policy: str | None) -> Any:
        s = self.settings
        request = radius_packet.CoAPacket(code=code, secret=s.secret, dict=self._dictionary)
        if s.message_authenticator:
            request.add_message_authenticator()
        request["User-Name"] = username
        if session is not None:
            request["Acct-Session-Id"] = session
        if s.nas_ip_address:
            request["NAS-IP-Address"] = s.nas_ip_address
        # RFC 5176 recommends it: lets the NAS reject replayed requests
        request["Event-Timestamp"] = int(time.time())
        if policy is not None:
            request[s.coa_attribute] = policy
        return request

    @property
    def _nas(self) -> str:
        return f"{self.settings.nas_host}:{self.settings.nas_port}"

    def _send(self, request: Any) -> _Exchange:
        """Send the request up to `retries` times and wait for a reply that verifies with the secret.

        A plain socket rather than pyrad's Client, so the socket is closed on every path.
        Retransmissions are byte-identical (same Identifier and Authenticator, RFC 5080 §2.2.1),
        so a NAS that already acted on the first one recognises the duplicate.
        """
        s = self.settings
        raw = request.RequestPacket()
        family, _, _, _, address = socket.getaddrinfo(s.nas_host, s.nas_port, type=socket.SOCK_DGRAM)[0]
        ignored = 0
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            for _ in range(s.retries):
                sock.sendto(raw, address)
                deadline = time.monotonic() + s.timeout
                while (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    try:
                        data = sock.recv(4096)
                    except TimeoutError:
                        break
                    try:
                        reply = request.CreateReply(packet=data)
                    except radius_packet.PacketError:
                        ignored += 1
                        continue
                    if request.VerifyReply(reply, data):
                        return _Exchange(reply, ignored)
                    ignored += 1
        return _Exchange(None, ignored)

    def _outcome(self, code: int, summary: str, exchange: _Exchange, username: str) -> Result:
        kind = _kind(code)
        reply = exchange.reply
        if reply is None:
            tries = f"{self.settings.retries} tr{'y' if self.settings.retries == 1 else 'ies'}"
            detail = f"{summary}; no answer from NAS {self._nas} to the {kind}-Request after {tries}"
            if exchange.ignored:
                detail += (
                    f" ({exchange.ignored} replies ignored: bad authenticator, is the shared secret right?)"
                )
            return Result(State.RETRY, detail)
        ack, nak = (
            (radius_packet.CoAACK, radius_packet.CoANAK)
            if code == radius_packet.CoARequest
            else (radius_packet.DisconnectACK, radius_packet.DisconnectNAK)
        )
        if reply.code == ack:
            return Result(State.CONFIRMED, f"{summary}; NAS {self._nas} answered {kind}-ACK")
        if reply.code != nak:
            return Result(
                State.FAILED, f"{summary}; NAS {self._nas} answered with unexpected code {reply.code}"
            )

        causes = [int.from_bytes(v, "big") for v in reply.get(101, []) if len(v) == 4]
        message = _reply_message(reply)
        if SESSION_NOT_FOUND in causes:
            return Result(
                State.CONFIRMED,
                f"{summary}; NAS {self._nas} answered {kind}-NAK 503 {ERROR_CAUSES[SESSION_NOT_FOUND]}: "
                f"{username} is not online, the new group applies at the next login",
            )
        described = ", ".join(f"{c} {ERROR_CAUSES.get(c, 'unknown Error-Cause')}" for c in causes)
        detail = (
            f"{summary}; NAS {self._nas} answered {kind}-NAK {described or 'without Error-Cause'}{message}"
        )
        if RESOURCES_UNAVAILABLE in causes:
            return Result(State.RETRY, detail)
        return Result(State.FAILED, detail)


def _session_id(call: ProvisioningCall) -> str | None:
    """The NAS's session id (Acct-Session-Id) when the provider knows it; it narrows the request to one session."""
    session = call.attributes.get("acct_session_id")
    if session is None:
        return None
    if not isinstance(session, str) or not session or len(session.encode()) > 253:
        raise ValueError("attribute acct_session_id must be a string of 1 to 253 bytes")
    return session


def _kind(code: int) -> str:
    return "CoA" if code == radius_packet.CoARequest else "Disconnect"


def _describe(groups: Sequence[Group]) -> str:
    if not groups:
        return "none"
    return ", ".join(f"{name} (priority {priority})" for name, priority in groups)


def _reply_message(reply: Any) -> str:
    texts = [v.decode("utf-8", "replace") for v in reply.get(18, []) if isinstance(v, bytes)]
    return f" ({' '.join(texts)})" if texts else ""
