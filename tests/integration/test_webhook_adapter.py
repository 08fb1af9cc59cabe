"""The signed webhook adapter against a real local HTTP peer that verifies every signature."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrears.provisioning.base import ConfigError, ProvisioningCall, State
from arrears.provisioning.webhook import (
    Callback,
    SignatureError,
    WebhookAdapter,
    WebhookSettings,
    encode_call,
    parse_callback,
    sign,
    verify,
)
from peers.http_gateway import HttpGateway, Reply
from peers.webhook_peer import WebhookPeer

SECRET = "s3cret-s3cret-s3cret"
OTHER_SECRET = "another-secret-of-ours"
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_leftover_threads(no_leftover_threads: None) -> None:
    """Every test here leaves no thread of its peers behind (tests/conftest.py)."""


def a_call(*, key: str = "req-17-suspended", attempt: int = 1, **attributes: Any) -> ProvisioningCall:
    return ProvisioningCall(
        request_id=17,
        key=key,
        action="suspended",
        provider="acme",
        account="A-100",
        service="S-200 ☎",
        service_type="mobile",
        attempt=attempt,
        created_at=NOW,
        attributes=attributes,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def adapter_for(url: str, secret: str = SECRET, **settings: Any) -> WebhookAdapter:
    return WebhookAdapter(WebhookSettings.from_config({"url": url, "secret": secret, **settings}))


@pytest.fixture
def peer() -> Iterator[WebhookPeer]:
    with WebhookPeer(SECRET, Reply.json(200, {"id": "net-42"})) as server:
        yield server


@pytest.fixture
def adapter(peer: WebhookPeer) -> Iterator[WebhookAdapter]:
    webhook = adapter_for(f"http://{peer.netloc}/provision")
    yield webhook
    webhook.close()


# -- signed requests ------------------------------------------------------------------------


def test_signed_post_is_verified_and_confirmed(peer: WebhookPeer, adapter: WebhookAdapter) -> None:
    call = a_call(radius_user="u@isp")

    result = adapter.execute(call)

    assert (result.state, result.reference) == (State.CONFIRMED, "net-42")
    assert result.detail == "HTTP 200 OK"
    assert peer.rejected == []
    [request] = peer.requests
    assert (request.method, request.path) == ("POST", "/provision")
    assert request.body == encode_call(call)  # the exact bytes that were signed
    assert b", " not in request.body and b": " not in request.body  # compact
    assert request.json() == call.as_json()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "req-17-suspended"
    assert request.headers["arrears-request-id"] == "17"
    assert request.headers["arrears-signature"].startswith("t=")


def test_wrong_secret_is_refused_by_the_peer(peer: WebhookPeer) -> None:
    webhook = adapter_for(f"http://{peer.netloc}/provision", secret=OTHER_SECRET)
    try:
        result = webhook.execute(a_call())
    finally:
        webhook.close()

    assert result.state is State.RETRY  # configuration, not this request: kept for a retry
    assert result.detail.startswith("HTTP 401")
    assert "signature does not match" in result.detail
    assert "check the webhook secret" in result.detail
    assert peer.requests == []
    [(_, why)] = peer.rejected
    assert why == "signature does not match"


def test_a_peer_holding_old_and_new_secret_accepts_either() -> None:
    with WebhookPeer([OTHER_SECRET, SECRET]) as peer:
        for secret in (SECRET, OTHER_SECRET):
            webhook = adapter_for(f"http://{peer.netloc}/", secret=secret)
            try:
                assert webhook.execute(a_call()).state is State.CONFIRMED
            finally:
                webhook.close()
        assert len(peer.requests) == 2 and peer.rejected == []


@pytest.mark.parametrize(("age", "accepted"), [(299, True), (-299, True), (301, False), (-301, False)])
def test_the_peer_refuses_a_stale_or_future_signature(age: int, accepted: bool) -> None:
    with WebhookPeer(SECRET) as peer:
        webhook = WebhookAdapter(
            WebhookSettings(f"http://{peer.netloc}/", SECRET),
            clock=lambda: datetime.now(UTC) - timedelta(seconds=age),
        )
        try:
            result = webhook.execute(a_call())
        finally:
            webhook.close()
    if accepted:
        assert result.state is State.CONFIRMED
    else:
        assert result.state is State.RETRY  # a clock out of step: the operator's to fix
        assert "outside the tolerance" in result.detail


# -- sign and verify ------------------------------------------------------------------------


def test_signature_format() -> None:
    header = sign(b'{"a":1}', SECRET, NOW)
    timestamp, _, rest = header.partition(",")
    assert timestamp == f"t={int(NOW.timestamp())}"
    assert rest.startswith("v1=") and len(rest) == 3 + 64


def test_tolerance_boundaries() -> None:
    header = sign(b"x", SECRET, NOW)
    verify(header, b"x", SECRET, NOW + timedelta(seconds=300))
    verify(header, b"x", SECRET, NOW - timedelta(seconds=300))
    with pytest.raises(SignatureError, match="301 s old"):
        verify(header, b"x", SECRET, NOW + timedelta(seconds=301))
    with pytest.raises(SignatureError, match="301 s in the future"):
        verify(header, b"x", SECRET, NOW - timedelta(seconds=301))
    verify(header, b"x", SECRET, NOW + timedelta(seconds=500), tolerance=timedelta(minutes=10))


def test_several_v1_entries_and_secrets() -> None:
    old = sign(b"body", OTHER_SECRET, NOW)
    new = sign(b"body", SECRET, NOW)
    both = f"{new},{old.partition(',')[2]},v0=ignored"
    verify(both, b"body", OTHER_SECRET, NOW)
    verify(both, b"body", SECRET, NOW)
    verify(new, b"body", ["yet-another-secret-x", SECRET], NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(both, b"body", "neither-of-those-secrets", NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "not name=value"),
        ("garbage", "not name=value"),
        ("v1=" + "0" * 64, "no timestamp"),
        ("t=1741064767", "no v1 signature"),
        ("t=17a,v1=" + "0" * 64, "is not a number"),
        ("t=-5,v1=" + "0" * 64, "is not a number"),
        ("t=1,t=2,v1=" + "0" * 64, "more than one timestamp"),
        ("t=1741064767,v1=xyz", "not a hex"),
        ("t=1741064767,v1=" + "é" * 64, "not a hex"),
    ],
)
def test_malformed_headers(header: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason) as caught:
        verify(header, b"", SECRET, NOW)
    assert caught.value.reason.startswith("malformed signature header")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        sign(b"", SECRET, datetime(2025, 1, 1))


@hypothesis.settings(deadline=None, max_examples=60)  # no per-example deadline: CI machines are shared
@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40), data=st.data())
def test_sign_verify_round_trip_and_any_byte_change_fails(
    body: bytes, secret: str, data: st.DataObject
) -> None:
    header = sign(body, secret, NOW)
    verify(header, body, secret, NOW)

    changed = bytearray(body or b"\x00")
    if body:
        index = data.draw(st.integers(0, len(body) - 1), label="index")
        byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="byte")
        changed[index] = byte
    with pytest.raises(SignatureError, match="does not match"):
        verify(header, bytes(changed), secret, NOW)


# -- how answers are classified -------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204])
def test_success_confirms(status: int) -> None:
    reply = Reply(204) if status == 204 else Reply.json(status, {"id": 991, "ok": True})
    with WebhookPeer(SECRET, reply) as peer:
        webhook = adapter_for(f"http://{peer.netloc}/")
        try:
            result = webhook.execute(a_call())
        finally:
            webhook.close()
    assert result.state is State.CONFIRMED
    assert result.reference == (None if status == 204 else "991")


@pytest.mark.parametrize(
    ("reply", "in_detail"),
    [
        (Reply(500, "database down"), "HTTP 500 Internal Server Error: database down"),
        (Reply(503, "", headers={"Retry-After": "30"}), "HTTP 503 Service Unavailable (retry after 30)"),
        (
            Reply(429, "slow down", headers={"Retry-After": "5"}),
            "HTTP 429 Too Many Requests: slow down (retry after 5)",
        ),
        (Reply(408), "HTTP 408"),
        (Reply(425), "HTTP 425"),
        (Reply(409, "in progress"), "HTTP 409 Conflict: in progress"),
    ],
)
def test_transient_answers_are_retried(
    peer: WebhookPeer, adapter: WebhookAdapter, reply: Reply, in_detail: str
) -> None:
    peer.reply_next(reply)
    result = adapter.execute(a_call())
    assert result.state is State.RETRY
    assert in_detail in result.detail


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (
            Reply(400, "unknown service S-200\n  (line 2)"),
            "HTTP 400 Bad Request: unknown service S-200 (line 2)",
        ),
        (Reply(404), "HTTP 404 Not Found"),
        (Reply(422, "x" * 500), "HTTP 422 Unprocessable Entity: " + "x" * 199 + "…"),
    ],
)
def test_other_client_errors_fail(
    peer: WebhookPeer, adapter: WebhookAdapter, reply: Reply, detail: str
) -> None:
    peer.reply_next(reply)
    result = adapter.execute(a_call())
    assert (result.state, result.detail) == (State.FAILED, detail)


def test_redirects_are_not_followed(peer: WebhookPeer, adapter: WebhookAdapter) -> None:
    peer.reply_next(Reply(307, headers={"Location": "http://elsewhere.example/hook"}))
    result = adapter.execute(a_call())
    assert result.state is State.FAILED
    assert "redirect to http://elsewhere.example/hook not followed" in result.detail
    assert len(peer.requests) == 1


def test_a_slow_peer_is_retried() -> None:
    with WebhookPeer(SECRET, Reply(200, delay=0.6)) as peer:
        webhook = adapter_for(f"http://{peer.netloc}/", timeout=0.2)
        try:
            started = time.monotonic()
            result = webhook.execute(a_call())
            elapsed = time.monotonic() - started
        finally:
            webhook.close()
    assert result.state is State.RETRY
    assert result.detail.startswith("webhook timed out after 0.2 s (ReadTimeout)")
    assert elapsed < 0.55  # did not wait for the 0.6 s answer


def test_connection_refused_is_retried() -> None:
    webhook = adapter_for(f"http://127.0.0.1:{closed_port()}/")
    try:
        result = webhook.execute(a_call())
    finally:
        webhook.close()
    assert result.state is State.RETRY
    assert result.detail.startswith("cannot reach webhook: ConnectError")


def test_idempotency_key_is_stable_across_retries() -> None:
    with WebhookPeer(SECRET, fail_every=2) as peer:
        peer.reply_next(Reply(503), Reply(200))  # the 2nd call is failed by fail_every
        webhook = adapter_for(f"http://{peer.netloc}/")
        try:
            states = [webhook.execute(a_call(attempt=n)).state for n in (1, 2, 3)]
            other = webhook.execute(a_call(key="req-18-restore"))
        finally:
            webhook.close()
    assert states == [State.RETRY, State.RETRY, State.CONFIRMED]
    assert other.state is State.RETRY  # the 4th call: fail_every again
    keys = [r.headers["idempotency-key"] for r in peer.requests]
    assert keys == ["req-17-suspended"] * 3 + ["req-18-restore"]
    assert [r.json()["attempt"] for r in peer.requests[:3]] == [1, 2, 3]


def test_a_call_json_cannot_carry_fails_without_a_request(peer: WebhookPeer, adapter: WebhookAdapter) -> None:
    result = adapter.execute(a_call(since=datetime(2025, 1, 1)))
    assert result.state is State.FAILED
    assert result.detail.startswith("cannot encode the call as JSON")
    assert peer.requests == [] and peer.rejected == []


def test_configured_headers_are_sent(peer: WebhookPeer) -> None:
    webhook = adapter_for(f"http://{peer.netloc}/", headers={"Authorization": "Bearer abc"})
    try:
        webhook.execute(a_call())
    finally:
        webhook.close()
    assert peer.requests[0].headers["authorization"] == "Bearer abc"


# -- 202 and the signed callback ------------------------------------------------------------


class CallbackReceiver(HttpGateway):
    """Our receiving side, in miniature: checks each callback with `parse_callback`."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = list(secrets)
        self.parsed: list[Callback] = []
        self.errors: list[str] = []
        self.arrived = threading.Event()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://{self.netloc}/callbacks/webhook"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            parsed = parse_callback(dict(handler.headers.items()), body, self.secrets, datetime.now(UTC))
            status = 204
        except SignatureError as exc:
            self.errors.append(f"signature: {exc.reason}")
            status = 401
        except ValueError as exc:
            self.errors.append(f"body: {exc}")
            status = 400
        else:
            self.parsed.append(parsed)
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        self.arrived.set()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver([SECRET]) as server:
        yield server


def test_accepted_then_signed_callback(receiver: CallbackReceiver) -> None:
    reply = Reply.json(202, {"id": "job-7"})
    with WebhookPeer(SECRET, reply, callback_url=receiver.url, callback_detail="port 3 shut") as peer:
        webhook = adapter_for(f"http://{peer.netloc}/")
        try:
            result = webhook.execute(a_call())
        finally:
            webhook.close()
        assert receiver.arrived.wait(2)

    assert (result.state, result.reference) == (State.ACCEPTED, "job-7")
    assert receiver.errors == []
    assert receiver.parsed == [Callback(17, "req-17-suspended", State.CONFIRMED, "port 3 shut")]
    assert [c.status for c in peer.callbacks] == [204]


def test_a_callback_signed_with_another_secret_is_refused(receiver: CallbackReceiver) -> None:
    reply = Reply(202)
    with WebhookPeer(SECRET, reply, callback_url=receiver.url, callback_secret=OTHER_SECRET) as peer:
        webhook = adapter_for(f"http://{peer.netloc}/")
        try:
            assert webhook.execute(a_call()).state is State.ACCEPTED
        finally:
            webhook.close()
        assert receiver.arrived.wait(2)
    assert receiver.parsed == []
    assert receiver.errors == ["signature: signature does not match"]
    assert [c.status for c in peer.callbacks] == [401]


def signed(payload: object, secret: str = SECRET, now: datetime = NOW) -> tuple[dict[str, str], bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"arrears-signature": sign(body, secret, now)}, body


def test_parse_callback_reads_a_failure_with_reference() -> None:
    headers, body = signed(
        {"request_id": 3, "key": "k", "state": "failed", "detail": "no such port", "reference": "r9", "x": 1}
    )
    assert parse_callback(headers, body, [OTHER_SECRET, SECRET], NOW) == Callback(
        3, "k", State.FAILED, "no such port", "r9"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "not JSON"),
        ([1, 2], "must be a JSON object"),
        ({"request_id": "3", "key": "k", "state": "confirmed"}, "request_id must be an integer"),
        ({"request_id": True, "key": "k", "state": "confirmed"}, "request_id must be an integer"),
        ({"request_id": 3, "state": "confirmed"}, "key must be a non-empty string"),
        ({"request_id": 3, "key": "k", "state": "accepted"}, "state must be 'confirmed' or 'failed'"),
        ({"request_id": 3, "key": "k", "state": "failed", "detail": 5}, "detail must be a string"),
    ],
)
def test_parse_callback_refuses_a_bad_shape(payload: object, message: str) -> None:
    headers, body = signed(payload)
    with pytest.raises(ValueError, match=message):
        parse_callback(headers, body, SECRET, NOW)


def test_parse_callback_refuses_a_bad_signature() -> None:
    headers, body = signed({"request_id": 3, "key": "k", "state": "confirmed"})
    with pytest.raises(SignatureError, match="missing Arrears-Signature"):
        parse_callback({}, body, SECRET, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        parse_callback(headers, body.replace(b"confirmed", b"failed"), SECRET, NOW)
    with pytest.raises(SignatureError, match="outside the tolerance"):
        parse_callback(headers, body, SECRET, NOW + timedelta(minutes=6))
    assert not issubclass(SignatureError, ValueError)  # callers answer 401 and 400 apart


# -- configuration --------------------------------------------------------------------------


def test_settings_from_config() -> None:
    settings = WebhookSettings.from_config(
        {
            "type": "webhook",
            "url": "https://net.example/hook",
            "secret": SECRET,
            "timeout": 3,
            "headers": {"Authorization": "Bearer t"},
            "verify_tls": False,
        }
    )
    assert settings == WebhookSettings(
        "https://net.example/hook", SECRET, 3.0, {"Authorization": "Bearer t"}, False
    )
    assert SECRET not in repr(settings) and "Bearer" not in repr(settings)
    defaults = WebhookSettings.from_config({"url": "http://h/", "secret": SECRET})
    assert (defaults.timeout, defaults.headers, defaults.verify_tls) == (10.0, {}, True)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": None}, "url"),
        ({"url": "ftp://net.example/"}, "url"),
        ({"url": "net.example/hook"}, "url"),
        ({"url": "http:///path"}, "url"),
        ({"url": "http://h:99999/"}, "url"),
        ({"secret": None}, "secret"),
        ({"secret": "short"}, "secret"),
        ({"secret": 1234567890123456789}, "secret"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"verify_tls": "no"}, "verify_tls"),
        ({"headers": ["a"]}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"Idempotency-Key": "x"}}, "headers.Idempotency-Key"),
        ({"headers": {"X-Token": "a\r\nInjected: 1"}}, "headers.X-Token"),
        ({"secert": "typo"}, "secert"),
    ],
)
def test_config_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    cfg: dict[str, Any] = {"url": "https://net.example/hook", "secret": SECRET, **changes}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        WebhookSettings.from_config(cfg)
    assert caught.value.field == field
    assert "short" not in str(caught.value)  # a secret is never echoed
