"""SMS over SMPP 3.4, straight to an SMSC (or an aggregator speaking SMPP).

One `SmppChannel` holds one bound session and reuses it across `send` calls;
a broken session is dropped and the next `send` connects and binds again.
Submits are synchronous (one `submit_sm`, then its `submit_sm_resp`): notice
volumes are small, and it keeps the mapping of responses to messages trivial.

With receipts wanted the session is bound as a transceiver, so the SMSC can
deliver `deliver_sm` delivery receipts on it; they are picked up whenever the
channel reads from the socket (during `send`, and in `receipts()`).
"""

from __future__ import annotations

import logging
import random
import re
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from smpplib import consts, exceptions, gsm, smpp
from smpplib.client import Client

from arrears.channels.base import LogFailed, Message, NoLog, Outcome, Receipt, Result, SendLog

log = logging.getLogger(__name__)

DEFAULT_PORT = 2775

# Statuses worth trying again later: the SMSC is busy or broken, not the message.
_TRANSIENT = frozenset(
    {
        consts.SMPP_ESME_RINVBNDSTS,  # our session is in the wrong state: rebind and retry
        consts.SMPP_ESME_RSYSERR,
        consts.SMPP_ESME_RMSGQFUL,
        consts.SMPP_ESME_RTHROTTLED,
        consts.SMPP_ESME_RX_T_APPN,  # "temporary application error", by definition
    }
)
# Statuses that make the session (not the message) unusable: drop it and reconnect next time.
_SESSION_BROKEN = frozenset({consts.SMPP_ESME_RINVBNDSTS})

# `status -> "ESME_RTHROTTLED"`, from smpplib's constants.
_STATUS_NAMES: dict[int, str] = {
    value: name.removeprefix("SMPP_")
    for name, value in vars(consts).items()
    if name.startswith("SMPP_ESME_") and isinstance(value, int)
}

# esm_class bits 2-5 (SMPP 3.4 §5.2.12): SMSC delivery receipt, intermediate delivery notification.
_RECEIPT_TYPES = frozenset({0x04, 0x20 | 0x04})
_RECEIPT_FIELD = re.compile(rb"(id|stat|err):(\S*)", re.IGNORECASE)
_MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}

_NUMERIC_ADDRESS = re.compile(r"^\+?[0-9]{1,20}$")
_E164 = re.compile(r"^\+[1-9][0-9]{5,14}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def status_text(status: int) -> str:
    """`ESME_RTHROTTLED (0x58): Throttling error ...`, for operators' eyes."""
    name = _STATUS_NAMES.get(status, "unknown status")
    description = consts.DESCRIPTIONS.get(status, "")
    return f"{name} (0x{status:02X})" + (f": {description}" if description else "")


def classify_status(status: int) -> Result:
    if status == consts.SMPP_ESME_ROK:
        return Result.SENT
    return Result.RETRY if status in _TRANSIENT else Result.FAILED


def source_ton_npi(address: str) -> tuple[int, int]:
    """Numeric (or E.164) senders are international numbers; anything else is alphanumeric."""
    if not address:
        return consts.SMPP_TON_UNK, consts.SMPP_NPI_UNK  # let the SMSC fill in its default
    if _NUMERIC_ADDRESS.match(address):
        return consts.SMPP_TON_INTL, consts.SMPP_NPI_ISDN
    return consts.SMPP_TON_ALNUM, consts.SMPP_NPI_UNK


@dataclass(frozen=True)
class SmppSettings:
    host: str
    system_id: str
    password: str
    port: int = DEFAULT_PORT
    system_type: str = ""
    source_addr: str = ""  # used when a message has no sender of its own
    # Explicit TON/NPI for the source, for SMSCs that want e.g. short codes as TON 3; None: from the address.
    source_ton: int | None = None
    source_npi: int | None = None
    registered_delivery: bool = True  # ask for delivery receipts (and bind as transceiver to get them)
    timeout: float = 10.0  # connect, bind, and wait for each submit_sm_resp
    enquire_link_interval: float = 30.0  # probe an idle session before using it again

    def __post_init__(self) -> None:
        # smpplib silently truncates over-long fields, which shows up as a baffling bind failure.
        for field, value, limit in (
            ("system_id", self.system_id, 15),
            ("password", self.password, 8),
            ("system_type", self.system_type, 12),
            ("source", self.source_addr, 20),
        ):
            if len(value) > limit:
                raise ValueError(f"SMPP {field} is longer than {limit} characters (SMPP 3.4 limit)")
        if self.source_addr and not _NUMERIC_ADDRESS.match(self.source_addr) and len(self.source_addr) > 11:
            raise ValueError("SMPP source is alphanumeric and longer than 11 characters (the GSM limit)")
        if not self.host:
            raise ValueError("SMPP host is missing")
        if not self.system_id:
            raise ValueError("SMPP system_id (the URL's user name) is missing")
        if not 0 < self.port < 65536:
            raise ValueError(f"SMPP port {self.port} is out of range")
        if self.timeout <= 0:
            raise ValueError("SMPP timeout must be positive")

    @classmethod
    def from_url(cls, url: str) -> SmppSettings:
        """`smpp://system_id:password@host:2775?source=ARREARS&system_type=&receipts=true`.

        Optional query parameters: source, system_type, receipts (true/false),
        timeout (seconds), source_ton, source_npi. Unknown ones are an error, to catch typos.
        """
        parts = urlsplit(url)
        if parts.scheme != "smpp":
            raise ValueError(f"SMPP URL must start with smpp://, not {parts.scheme or 'nothing'}://")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ValueError(f"SMPP URL has an invalid port: {parts.netloc.rpartition('@')[2]!r}") from None
        if not parts.hostname:
            raise ValueError("SMPP URL has no host")
        if not parts.username:
            raise ValueError("SMPP URL has no system_id (smpp://system_id:password@host)")
        if parts.path not in ("", "/"):
            raise ValueError(f"SMPP URL has an unexpected path {parts.path!r}")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        known = {"source", "system_type", "receipts", "timeout", "source_ton", "source_npi"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ValueError(
                f"SMPP URL has unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(
            host=parts.hostname,
            port=port,
            system_id=unquote(parts.username),
            password=unquote(parts.password or ""),
            system_type=query.get("system_type", ""),
            source_addr=query.get("source", ""),
            source_ton=_optional_int(query, "source_ton"),
            source_npi=_optional_int(query, "source_npi"),
            registered_delivery=_flag(query, "receipts", default=True),
            timeout=_positive_float(query, "timeout", default=10.0),
        )


def _flag(query: dict[str, str], name: str, *, default: bool) -> bool:
    value = query.get(name)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"SMPP URL parameter {name}={value!r} is not true or false")


def _optional_int(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) > 255:
        raise ValueError(f"SMPP URL parameter {name}={value!r} is not a number from 0 to 255")
    return int(value)


def _positive_float(query: dict[str, str], name: str, *, default: float) -> float:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise ValueError(f"SMPP URL parameter {name}={value!r} is not a positive number of seconds")
    return number


class _Disconnected(Exception):
    """The session is gone (or was never there); the detail says why."""


# The GSM 03.38 default alphabet and its extension table, without smpplib's "`" fillers.
_GSM7 = frozenset(gsm.GSM_CHARACTER_TABLE) - {"`"}


def is_gsm7(text: str) -> bool:
    """True when every character of `text` has a GSM 03.38 code (basic or extension table)."""
    return all(char in _GSM7 for char in text)


def encode_parts(text: str) -> tuple[list[bytes], int, int]:
    """(short_message of each part, data_coding, esm_class) for `text`.

    smpplib chooses GSM-7 (unpacked, one septet per octet) or UCS-2 and adds
    the concatenation UDH; its splitter cuts at a fixed byte count, which can
    split a GSM escape pair or a UTF-16 surrogate pair, so long texts are
    re-split here at safe boundaries with the same header layout.
    """
    # smpplib's own fallback to UCS-2 misses "`", which its table "encodes" as a filler.
    coding = consts.SMPP_ENCODING_DEFAULT if is_gsm7(text) else consts.SMPP_ENCODING_ISO10646
    parts, coding, esm_class = gsm.make_parts(text, encoding=coding)
    if len(parts) == 1:
        return list(parts), int(coding), int(esm_class)
    if coding == consts.SMPP_ENCODING_ISO10646:
        encoded, size = text.encode("utf-16-be"), consts.UCS2_PART_SIZE
    else:
        encoded, size = gsm.gsm_encode(text), consts.SEVENBIT_PART_SIZE
    chunks: list[bytes] = []
    start = 0
    while start < len(encoded):
        end = min(start + size, len(encoded))
        if end < len(encoded):
            if coding == consts.SMPP_ENCODING_ISO10646:
                if 0xD8 <= encoded[end - 2] <= 0xDB:  # a high surrogate: keep it with its low half
                    end -= 2
            elif _ends_in_escape(encoded[start:end]):
                end -= 1
        chunks.append(encoded[start:end])
        start = end
    if len(chunks) > 255:
        raise exceptions.MessageTooLong()
    reference = random.randint(0, 255)
    header = bytes((0x05, 0x00, 0x03, reference, len(chunks)))
    return (
        [header + bytes((n,)) + chunk for n, chunk in enumerate(chunks, start=1)],
        int(coding),
        int(esm_class),
    )


def _ends_in_escape(chunk: bytes) -> bool:
    """True when the last octet is a lone GSM escape (0x1B) whose character is in the next part."""
    escapes = len(chunk) - len(chunk.rstrip(b"\x1b"))
    return escapes % 2 == 1


def _committing(log: SendLog, index: int) -> None:
    try:
        log.committing(index)
    except Exception as exc:
        raise LogFailed(exc) from exc


class SmppChannel:
    """The `sms` channel over one SMPP session. Not thread-safe: one worker uses one channel."""

    name = "sms"

    def __init__(self, settings: SmppSettings) -> None:
        self.settings = settings
        self._client: Any = None  # smpplib.client.Client while connected
        self._receipts: list[Receipt] = []
        self._last_used = 0.0

    # -- the Channel interface -------------------------------------------------

    def send(self, messages: Sequence[Message], progress: SendLog | None = None) -> list[Outcome]:
        log_ = progress or NoLog()
        outcomes: list[Outcome] = []
        broken: str | None = None
        for index, message in enumerate(messages):
            if broken is not None:
                # A batch shares one session; after it breaks the rest wait for the next run.
                outcomes.append(Outcome(Result.RETRY, broken))
                continue
            try:
                outcome = self._send_one(message, partial(_committing, log_, index))
                log_.outcome(index, outcome)
                outcomes.append(outcome)
            except LogFailed:
                raise
            except _Disconnected as exc:
                broken = str(exc)
                self._drop()
                outcomes.append(Outcome(Result.RETRY, broken))
            except Exception as exc:  # never raise out of send: anything unexpected is retried
                log.exception("SMPP send to %s failed unexpectedly", self.settings.host)
                broken = f"SMPP error: {type(exc).__name__}: {exc}"
                self._drop()
                outcomes.append(Outcome(Result.RETRY, broken))
        return outcomes

    def receipts(self) -> list[Receipt]:
        if self.settings.registered_delivery:
            try:
                self._ensure_bound()
                self._drain(wait=0.05)
            except _Disconnected as exc:
                log.warning("SMPP receipts: %s", exc)
                self._drop()
            except Exception:
                log.exception("SMPP receipts from %s failed unexpectedly", self.settings.host)
                self._drop()
        received, self._receipts = self._receipts, []
        return received

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.state in (
                consts.SMPP_CLIENT_STATE_BOUND_TX,
                consts.SMPP_CLIENT_STATE_BOUND_TRX,
            ):
                self._drain(wait=0.0, client=client)
                unbind = smpp.make_pdu("unbind", client=client)
                client.send_pdu(unbind)
                self._await_response(client, "unbind_resp", unbind.sequence)
        except Exception as exc:  # a polite unbind is best effort
            log.debug("SMPP unbind failed: %s", exc)
        finally:
            client.disconnect()

    # -- one message -------------------------------------------------------------

    def _send_one(self, message: Message, committing: Callable[[], None]) -> Outcome:
        if not _E164.match(message.to):
            return Outcome(Result.FAILED, f"destination {message.to!r} is not an E.164 number")
        sender = message.sender or self.settings.source_addr
        ton, npi = source_ton_npi(sender)
        if self.settings.source_ton is not None:
            ton = self.settings.source_ton
        if self.settings.source_npi is not None:
            npi = self.settings.source_npi
        try:
            parts, coding, esm_class = encode_parts(message.text)
        except exceptions.MessageTooLong:
            return Outcome(Result.FAILED, "text is longer than 255 SMS parts")

        client = self._ensure_bound()
        # The first submit_sm is the step that cannot be taken back.
        committing()
        ids: list[str] = []
        for number, part in enumerate(parts, start=1):
            try:
                pdu = client.send_message(
                    source_addr_ton=ton,
                    source_addr_npi=npi,
                    source_addr=sender.removeprefix("+") if ton == consts.SMPP_TON_INTL else sender,
                    dest_addr_ton=consts.SMPP_TON_INTL,
                    dest_addr_npi=consts.SMPP_NPI_ISDN,
                    destination_addr=message.to.removeprefix("+"),
                    esm_class=esm_class,
                    data_coding=coding,
                    registered_delivery=1 if self.settings.registered_delivery else 0,
                    short_message=part,
                )
                response = self._await_response(client, "submit_sm_resp", pdu.sequence)
                self._last_used = time.monotonic()
            except _Disconnected as exc:
                done = (
                    f" after {len(ids)} of {len(parts)} parts were accepted ({', '.join(ids)})" if ids else ""
                )
                raise _Disconnected(f"{exc}{done}") from None
            status = int(response.status)
            if status != consts.SMPP_ESME_ROK:
                if status in _SESSION_BROKEN:
                    self._drop()
                where = f"part {number} of {len(parts)}: " if len(parts) > 1 else ""
                done = f" (parts already accepted: {', '.join(ids)})" if ids else ""
                return Outcome(classify_status(status), f"submit_sm {where}{status_text(status)}{done}")
            ids.append(_text(response.message_id))
        detail = f"accepted as {', '.join(ids)}" if len(ids) > 1 else "accepted"
        return Outcome(Result.SENT, detail, reference=ids[-1])

    # -- the session ---------------------------------------------------------------

    def _ensure_bound(self) -> Any:
        client = self._client
        if client is not None and self._alive(client):
            return client
        self._drop()
        settings = self.settings
        client = Client(settings.host, settings.port, timeout=settings.timeout, allow_unknown_opt_params=True)
        try:
            client.connect()
        except exceptions.ConnectionError as exc:
            client.disconnect()
            raise _Disconnected(f"cannot connect to SMSC {settings.host}:{settings.port}: {exc}") from None
        bind = client.bind_transceiver if settings.registered_delivery else client.bind_transmitter
        try:
            bind(
                system_id=settings.system_id,
                password=settings.password,
                system_type=settings.system_type,
            )
        except exceptions.PDUError as exc:
            client.disconnect()
            status = exc.args[1] if len(exc.args) > 1 else consts.SMPP_ESME_RUNKNOWNERR
            # Retried, not failed: a wrong password is a configuration problem, not the customer's.
            raise _Disconnected(
                f"bind failed at SMSC {settings.host}:{settings.port} as {settings.system_id!r}: "
                f"{status_text(int(status))}"
            ) from None
        except (exceptions.ConnectionError, OSError) as exc:
            client.disconnect()
            raise _Disconnected(
                f"bind failed at SMSC {settings.host}:{settings.port}: no answer ({exc or 'connection closed'})"
            ) from None
        self._client = client
        self._last_used = time.monotonic()
        return client

    def _alive(self, client: Any) -> bool:
        """Read whatever the SMSC sent while we were idle; probe with enquire_link after a long pause."""
        try:
            self._drain(wait=0.0, client=client)
            if time.monotonic() - self._last_used >= self.settings.enquire_link_interval:
                probe = smpp.make_pdu("enquire_link", client=client)
                client.send_pdu(probe)
                self._await_response(client, "enquire_link_resp", probe.sequence)
                self._last_used = time.monotonic()
        except (_Disconnected, exceptions.ConnectionError, exceptions.PDUError, OSError) as exc:
            log.info("SMPP session to %s is gone (%s); reconnecting", self.settings.host, exc)
            return False
        return client.state in (consts.SMPP_CLIENT_STATE_BOUND_TX, consts.SMPP_CLIENT_STATE_BOUND_TRX)

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()

    def _drain(self, *, wait: float, client: Any = None) -> None:
        """Handle the PDUs already waiting on the socket (receipts, enquire_link), without blocking."""
        client = client if client is not None else self._client
        if client is None:
            return
        while True:
            sock = client._socket  # smpplib has no public accessor; needed to poll without blocking
            if sock is None:
                raise _Disconnected("SMPP connection closed")
            readable, _, _ = select.select([sock], [], [], wait)
            if not readable:
                return
            wait = 0.0
            self._handle(client, self._read(client))

    def _await_response(self, client: Any, command: str, sequence: int) -> Any:
        """Read until the response to `sequence`, handling what the SMSC sends meanwhile."""
        deadline = time.monotonic() + self.settings.timeout
        while True:
            if time.monotonic() > deadline:
                raise _Disconnected(f"no {command} from SMSC within {self.settings.timeout:g}s")
            pdu = self._read(client)
            if pdu.command in (command, "generic_nack") and pdu.sequence == sequence:
                return pdu
            self._handle(client, pdu)

    def _read(self, client: Any) -> Any:
        try:
            pdu = client.read_pdu()
        except TimeoutError:
            # The submit may or may not have reached the SMSC; retrying risks a duplicate, not a loss.
            raise _Disconnected(f"SMSC did not answer within {self.settings.timeout:g}s") from None
        except (exceptions.ConnectionError, OSError):
            raise _Disconnected("SMSC closed the connection") from None
        except (exceptions.PDUError, exceptions.UnknownCommandError) as exc:
            raise _Disconnected(f"SMSC sent a PDU we cannot read: {exc}") from None
        if pdu is None:
            raise _Disconnected("SMSC sent an unknown PDU")
        return pdu

    def _handle(self, client: Any, pdu: Any) -> None:
        """React to a PDU that is not the response we are waiting for."""
        if pdu.command == "deliver_sm":
            receipt = parse_receipt(pdu)
            if receipt is not None:
                self._receipts.append(receipt)
            # Acknowledge everything, receipts or not: an unacknowledged deliver_sm is redelivered forever.
            self._respond(client, pdu, "deliver_sm_resp")
        elif pdu.command == "enquire_link":
            self._respond(client, pdu, "enquire_link_resp")
        elif pdu.command == "unbind":
            self._respond(client, pdu, "unbind_resp")
            raise _Disconnected("SMSC unbound the session")
        elif pdu.command in ("enquire_link_resp", "submit_sm_resp", "unbind_resp"):
            pass  # a late answer to something we gave up on
        else:
            log.warning("SMPP: ignoring %s from SMSC", pdu.command)

    @staticmethod
    def _respond(client: Any, request: Any, command: str) -> None:
        response = smpp.make_pdu(command, client=client)
        response.sequence = request.sequence
        try:
            client.send_pdu(response)
        except (exceptions.ConnectionError, exceptions.PDUError, OSError):
            raise _Disconnected("SMSC closed the connection") from None


def parse_receipt(pdu: Any) -> Receipt | None:
    """A delivery receipt from a deliver_sm, or None when it is an ordinary (mobile-originated) message.

    The receipt text is the de facto format of SMPP 3.4 appendix B
    (`id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:... done date:... stat:DDDDDDD err:E text:...`);
    the receipted_message_id and message_state TLVs win when the SMSC sends them.
    """
    if (int(pdu.esm_class or 0) & 0x3C) not in _RECEIPT_TYPES:
        return None
    body = bytes(pdu.short_message or b"")
    fields = {name.lower().decode(): value.decode("latin-1") for name, value in _RECEIPT_FIELD.findall(body)}
    reference = _text(getattr(pdu, "receipted_message_id", None)) or fields.get("id", "")
    state = fields.get("stat", "")
    message_state = getattr(pdu, "message_state", None)
    if message_state is not None and message_state in _MESSAGE_STATES:
        state = _MESSAGE_STATES[int(message_state)]
    if not reference:
        log.warning("SMPP: delivery receipt without a message id: %r", body[:160])
        return None
    detail = body.decode("latin-1", errors="replace").strip()
    if "err" in fields and not detail:
        detail = f"err:{fields['err']}"
    return Receipt(reference=reference, state=state.upper() or "UNKNOWN", detail=detail)


def _text(value: object) -> str:
    """smpplib hands back C-octet strings as bytes when parsed and str when set."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)
