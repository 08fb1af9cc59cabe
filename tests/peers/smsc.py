"""A small SMSC speaking SMPP 3.4 over TCP on 127.0.0.1, for the SMPP channel tests.

PDUs are encoded and decoded with smpplib's own PDU classes, used from the
server side. Each connection is served by its own thread; `close()` shuts every
socket and joins every thread, so a test leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from smpplib import consts, smpp
from smpplib.client import SimpleSequenceGenerator
from smpplib.gsm import GSM_CHARACTER_TABLE

BIND_COMMANDS = ("bind_transmitter", "bind_receiver", "bind_transceiver")
NO_ANSWER = -1  # a scripted "status": record the submit_sm but never answer it


@dataclass(frozen=True)
class Bind:
    command: str
    system_id: str
    password: str
    system_type: str
    accepted: bool


@dataclass(frozen=True)
class Submit:
    """One submit_sm as the SMSC received it."""

    session: int
    status: int
    message_id: str  # "" unless accepted
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes

    @property
    def udh(self) -> bytes:
        """The user data header, when esm_class has the UDHI bit."""
        if self.esm_class & consts.SMPP_GSMFEAT_UDHI and self.short_message:
            return self.short_message[: self.short_message[0] + 1]
        return b""

    @property
    def payload(self) -> bytes:
        return self.short_message[len(self.udh) :]

    @property
    def text(self) -> str:
        """The payload decoded from its data_coding (unpacked GSM-7 or UCS-2)."""
        if self.data_coding == consts.SMPP_ENCODING_ISO10646:
            return self.payload.decode("utf-16-be")
        return gsm_decode(self.payload)


def gsm_decode(data: bytes) -> str:
    chars: list[str] = []
    escape = False
    for octet in data:
        if escape:
            chars.append(GSM_CHARACTER_TABLE[octet + 0x80])
            escape = False
        elif octet == 0x1B:
            escape = True
        else:
            chars.append(GSM_CHARACTER_TABLE[octet])
    return "".join(chars)


@dataclass
class _Session:
    number: int
    sock: socket.socket
    thread: threading.Thread | None = None
    bound: str | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)


class Smsc:
    """An SMSC that accepts one system_id/password and records what it is sent.

    Script it with `answer_next` (status for the next N submits), `drop_on_submit`
    (close the connection instead of answering a later submit) and `send_receipt`.
    """

    def __init__(self, system_id: str = "arrears", password: str = "secret") -> None:
        self.system_id = system_id
        self.password = password
        self.binds: list[Bind] = []
        self.submits: list[Submit] = []
        self.acknowledged: list[str] = []  # message ids of receipts answered with deliver_sm_resp
        self.unbinds = 0
        self._lock = threading.Lock()
        self._seq = SimpleSequenceGenerator()
        self._ids = itertools.count(0x1000)
        self._scripted: list[int] = []
        self._drop_countdown: int | None = None
        self._sessions: list[_Session] = []
        self._pending_receipts: dict[int, str] = {}  # deliver_sm sequence -> message id
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.host, self.port = self._listener.getsockname()[:2]
        self._acceptor = threading.Thread(target=self._accept_loop, name="smsc-accept", daemon=True)
        self._acceptor.start()

    # -- scripting ------------------------------------------------------------------

    def url(self, *, password: str | None = None, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        secret = self.password if password is None else password
        return f"smpp://{self.system_id}:{secret}@{self.host}:{self.port}" + (f"?{query}" if query else "")

    def answer_next(self, status: int, count: int = 1) -> None:
        with self._lock:
            self._scripted.extend([status] * count)

    def drop_on_submit(self, nth: int = 1) -> None:
        """Close the connection, unanswered, on the nth submit_sm from now."""
        with self._lock:
            self._drop_countdown = nth

    def send_receipt(self, message_id: str, stat: str = "DELIVRD", err: str = "000") -> None:
        """Send a deliver_sm delivery receipt for `message_id` on the latest transceiver session."""
        with self._lock:
            sessions = [s for s in self._sessions if s.bound == "bind_transceiver"]
        if not sessions:
            raise AssertionError("no transceiver session to deliver a receipt on")
        session = sessions[-1]
        submit = next((s for s in self.submits if s.message_id == message_id), None)
        text = (
            f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:2501011200 done date:2501011201 stat:{stat} err:{err} text:"
        )
        pdu = smpp.make_pdu(
            "deliver_sm",
            client=self._seq,
            service_type="",
            source_addr_ton=consts.SMPP_TON_INTL,
            source_addr_npi=consts.SMPP_NPI_ISDN,
            source_addr=submit.destination_addr if submit else "",
            dest_addr_ton=submit.source_addr_ton if submit else 0,
            dest_addr_npi=submit.source_addr_npi if submit else 0,
            destination_addr=submit.source_addr if submit else "",
            esm_class=0x04,  # SMSC delivery receipt
            short_message=text.encode("ascii"),
        )
        with self._lock:
            self._pending_receipts[pdu.sequence] = message_id
        self._write(session, pdu)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.005)

    @property
    def accepted(self) -> list[Submit]:
        return [s for s in self.submits if s.status == consts.SMPP_ESME_ROK]

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions if s.sock.fileno() != -1)

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=2)
        self._listener.close()
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            self._hang_up(session)
        for session in sessions:
            if session.thread is not None:
                session.thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def drop_connections(self) -> None:
        """Hang up on every client, as an SMSC restart would."""
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            self._hang_up(session)

    # -- serving ----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            with self._lock:
                session = _Session(number=len(self._sessions) + 1, sock=sock)
                self._sessions.append(session)
            session.thread = threading.Thread(
                target=self._serve, args=(session,), name=f"smsc-session-{session.number}", daemon=True
            )
            session.thread.start()

    def _serve(self, session: _Session) -> None:
        try:
            while True:
                pdu = self._read(session.sock)
                if pdu is None:
                    return
                if not self._dispatch(session, pdu):
                    return
        except OSError:
            return
        finally:
            self._hang_up(session)

    def _dispatch(self, session: _Session, pdu: Any) -> bool:
        """Answer one PDU; False to end the session."""
        command = pdu.command
        if command in BIND_COMMANDS:
            accepted = _str(pdu.system_id) == self.system_id and _str(pdu.password) == self.password
            with self._lock:
                self.binds.append(
                    Bind(command, _str(pdu.system_id), _str(pdu.password), _str(pdu.system_type), accepted)
                )
            if accepted:
                session.bound = command
            status = consts.SMPP_ESME_ROK if accepted else consts.SMPP_ESME_RBINDFAIL
            self._answer(session, pdu, f"{command}_resp", status=status, system_id="test-smsc")
        elif command == "submit_sm":
            return self._submit(session, pdu)
        elif command == "enquire_link":
            self._answer(session, pdu, "enquire_link_resp")
        elif command == "unbind":
            with self._lock:
                self.unbinds += 1
            self._answer(session, pdu, "unbind_resp")
            return False
        elif command == "deliver_sm_resp":
            with self._lock:
                message_id = self._pending_receipts.pop(pdu.sequence, None)
                if message_id is not None:
                    self.acknowledged.append(message_id)
        else:
            self._answer(session, pdu, "generic_nack", status=consts.SMPP_ESME_RINVCMDID)
        return True

    def _submit(self, session: _Session, pdu: Any) -> bool:
        with self._lock:
            if self._drop_countdown is not None:
                self._drop_countdown -= 1
                if self._drop_countdown == 0:
                    self._drop_countdown = None
                    return False  # hang up without an answer
            if session.bound not in ("bind_transmitter", "bind_transceiver"):
                status = consts.SMPP_ESME_RINVBNDSTS
            else:
                status = self._scripted.pop(0) if self._scripted else consts.SMPP_ESME_ROK
            message_id = f"{next(self._ids):08X}" if status == consts.SMPP_ESME_ROK else ""
            self.submits.append(
                Submit(
                    session=session.number,
                    status=status,
                    message_id=message_id,
                    source_addr=_str(pdu.source_addr),
                    source_addr_ton=int(pdu.source_addr_ton or 0),
                    source_addr_npi=int(pdu.source_addr_npi or 0),
                    destination_addr=_str(pdu.destination_addr),
                    dest_addr_ton=int(pdu.dest_addr_ton or 0),
                    dest_addr_npi=int(pdu.dest_addr_npi or 0),
                    esm_class=int(pdu.esm_class or 0),
                    data_coding=int(pdu.data_coding or 0),
                    registered_delivery=int(pdu.registered_delivery or 0),
                    short_message=bytes(pdu.short_message or b""),
                )
            )
        if status != NO_ANSWER:
            self._answer(session, pdu, "submit_sm_resp", status=status, message_id=message_id)
        return True

    def _answer(self, session: _Session, request: Any, command: str, **fields: Any) -> None:
        response = smpp.make_pdu(command, client=self._seq, **fields)
        response.sequence = request.sequence
        self._write(session, response)

    @staticmethod
    def _write(session: _Session, pdu: Any) -> None:
        with session.write_lock:
            session.sock.sendall(pdu.generate())

    def _read(self, sock: socket.socket) -> Any:
        header = _recv_exact(sock, 4)
        if header is None:
            return None
        (length,) = struct.unpack(">L", header)
        body = _recv_exact(sock, length - 4)
        if body is None:
            return None
        return smpp.parse_pdu(header + body, client=self._seq, allow_unknown_opt_params=True)

    @staticmethod
    def _hang_up(session: _Session) -> None:
        with contextlib.suppress(OSError):
            session.sock.shutdown(socket.SHUT_RDWR)  # wakes the session thread out of recv
        session.sock.close()


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size > 0:
        chunk = sock.recv(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _str(value: object) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
