"""A NAS answering RFC 5176 CoA-Request / Disconnect-Request on 127.0.0.1 UDP, for the radius adapter tests.

Packets are decoded and answered with pyrad's own packet classes, from the
server side. The NAS verifies the Request Authenticator (and the
Message-Authenticator when there is one) with its shared secret and silently
drops what does not verify, as a real NAS does. Its dictionary is written out
here rather than taken from arrears, so a wrong attribute code in arrears'
dictionary shows up as a wrong attribute at the NAS.

Script answers with `answer_next(...)`: `ACK`, `Nak(cause)` or `SILENT`; once
the script runs out every request is acknowledged. A retransmission (same
Identifier and Authenticator) gets the same treatment as the original and is
not recorded twice. `close()` stops the thread and closes the socket.
"""

from __future__ import annotations

import io
import socket
import threading
from dataclasses import dataclass
from typing import Any, Self

from pyrad import packet
from pyrad.dictionary import Dictionary

DICTIONARY = """
ATTRIBUTE User-Name 1 string
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE Filter-Id 11 string
ATTRIBUTE Reply-Message 18 string
ATTRIBUTE Acct-Session-Id 44 string
ATTRIBUTE Event-Timestamp 55 date
ATTRIBUTE Message-Authenticator 80 octets
ATTRIBUTE Error-Cause 101 integer
"""

NAMES = {
    packet.CoARequest: "CoA-Request",
    packet.DisconnectRequest: "Disconnect-Request",
}


@dataclass(frozen=True)
class Nak:
    error_cause: int | None = None
    reply_message: str | None = None


class _Ack:
    def __repr__(self) -> str:
        return "ACK"


class _Silent:
    def __repr__(self) -> str:
        return "SILENT"


ACK = _Ack()
SILENT = _Silent()
Answer = _Ack | _Silent | Nak


@dataclass(frozen=True)
class Request:
    """One request as the NAS received and verified it."""

    code: int
    attributes: dict[str, list[Any]]  # decoded by name, Message-Authenticator left out
    message_authenticator: bool
    answer: Answer
    sends: int = 1  # how many copies arrived (retransmissions included)

    @property
    def kind(self) -> str:
        return NAMES.get(self.code, str(self.code))

    def get(self, name: str) -> Any:
        """The single value of an attribute, None when absent."""
        values = self.attributes.get(name)
        return values[0] if values else None


class Nas:
    def __init__(self, secret: bytes = b"nas-secret") -> None:
        self.secret = secret
        self.dictionary = Dictionary(io.StringIO(DICTIONARY))
        self.requests: list[Request] = []
        self.dropped = 0  # packets that did not verify with the secret, or did not decode
        self._script: list[Answer] = []
        self._seen: dict[tuple[int, bytes], int] = {}  # (id, authenticator) -> index in requests
        self._answers: dict[tuple[int, bytes], bytes | None] = {}  # what a duplicate gets again
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.host, self.port = self._sock.getsockname()
        self._thread = threading.Thread(target=self._serve, name="test-nas", daemon=True)
        self._thread.start()

    def answer_next(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:  # closed under us
                return
            reply = self._handle(data)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def _handle(self, data: bytes) -> bytes | None:
        try:
            request = packet.CoAPacket(secret=self.secret, dict=self.dictionary, packet=data)
        except packet.PacketError:
            with self._lock:
                self.dropped += 1
            return None
        if request.code not in NAMES or not request.VerifyCoARequest():
            with self._lock:
                self.dropped += 1
            return None
        has_ma = bool(request.message_authenticator)
        if has_ma and not request.verify_message_authenticator():
            with self._lock:
                self.dropped += 1
            return None

        key = (request.id, request.authenticator)
        with self._lock:
            if key in self._seen:
                index = self._seen[key]
                old = self.requests[index]
                self.requests[index] = Request(
                    old.code, old.attributes, old.message_authenticator, old.answer, old.sends + 1
                )
                return self._answers[key]
            answer = self._script.pop(0) if self._script else ACK
            # keys() gives attribute names; iterating the packet would give raw codes
            names = request.keys()
            attributes = {str(name): list(request[name]) for name in names if name != "Message-Authenticator"}
            self._seen[key] = len(self.requests)
            self.requests.append(Request(request.code, attributes, has_ma, answer))
            self._answers[key] = encoded = self._encode(request, answer, has_ma)
            return encoded

    @staticmethod
    def _encode(request: Any, answer: Answer, message_authenticator: bool) -> bytes | None:
        if isinstance(answer, _Silent):
            return None
        reply = request.CreateReply()
        if isinstance(answer, Nak):
            reply.code = packet.CoANAK if request.code == packet.CoARequest else packet.DisconnectNAK
            if answer.error_cause is not None:
                reply["Error-Cause"] = answer.error_cause
            if answer.reply_message is not None:
                reply["Reply-Message"] = answer.reply_message
        if message_authenticator:
            reply.add_message_authenticator()
        return bytes(reply.ReplyPacket())
