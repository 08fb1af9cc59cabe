"""The HTTP SMS gateways (generic JSON, Kannel sendsms) against a real local HTTP server."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

import pytest

from arrears.channels.base import Message, Result
from arrears.channels.http_sms import JsonSmsGateway, JsonSmsSettings, KannelGateway, KannelSettings
from peers.http_gateway import HttpGateway, Reply

TO = "+61412345678"


@pytest.fixture(autouse=True)
def _no_leftover_threads(no_leftover_threads: None) -> None:
    """Every test here leaves no thread of its peers behind (tests/conftest.py)."""


def msg(text: str = "Your account is overdue.", *, key: str = "k1", sender: str = "ARREARS") -> Message:
    return Message(key=key, to=TO, sender=sender, text=text)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- generic JSON ---------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[HttpGateway]:
    with HttpGateway(Reply.json(200, {"id": "gw-1", "status": "queued"})) as server:
        yield server


@pytest.fixture
def json_sms(api: HttpGateway) -> Iterator[JsonSmsGateway]:
    channel = JsonSmsGateway(
        JsonSmsSettings.from_url(f"http+json://{api.netloc}/v1/sms?token=s3cret&account=7")
    )
    yield channel
    channel.close()


def test_json_post(api: HttpGateway, json_sms: JsonSmsGateway) -> None:
    [outcome] = json_sms.send([msg("Pay by Friday, please — 請付款")])

    assert outcome.result is Result.SENT
    assert outcome.reference == "gw-1"
    [request] = api.requests
    assert (request.method, request.path, request.query) == ("POST", "/v1/sms", {"account": "7"})
    assert request.json() == {
        "to": TO,
        "from": "ARREARS",
        "text": "Pay by Friday, please — 請付款",
        "reference": "k1",
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["idempotency-key"] == hashlib.sha256(b"k1").hexdigest()


def test_idempotency_key_is_stable_per_notification(api: HttpGateway, json_sms: JsonSmsGateway) -> None:
    json_sms.send([msg(key="a|1"), msg(key="b|2")])
    json_sms.send([msg(key="a|1")])

    first, other, again = (r.headers["idempotency-key"] for r in api.requests)
    assert first == again != other


def test_json_without_token_sends_no_authorization(api: HttpGateway) -> None:
    channel = JsonSmsGateway(JsonSmsSettings.from_url(f"http+json://{api.netloc}/send"))
    try:
        channel.send([msg()])
    finally:
        channel.close()
    assert "authorization" not in api.requests[0].headers


@pytest.mark.parametrize(
    ("reply", "result", "reference", "detail"),
    [
        (Reply.json(202, {"message_id": 42}), Result.SENT, "42", "HTTP 202"),
        (Reply(200, "OK"), Result.SENT, None, "HTTP 200"),
        (Reply(429, "slow down", headers={"Retry-After": "30"}), Result.RETRY, None, "retry after 30"),
        (Reply(500, "boom"), Result.RETRY, None, "HTTP 500"),
        (Reply(503, "maintenance"), Result.RETRY, None, "maintenance"),
        (Reply.json(400, {"error": "invalid number"}), Result.FAILED, None, "invalid number"),
        (Reply(404, "no such route"), Result.FAILED, None, "HTTP 404"),
        (Reply(401, "bad token"), Result.RETRY, None, "check the token"),
        (Reply(403, "forbidden"), Result.RETRY, None, "check the token"),
    ],
)
def test_json_status_classification(
    api: HttpGateway,
    json_sms: JsonSmsGateway,
    reply: Reply,
    result: Result,
    reference: str | None,
    detail: str,
) -> None:
    api.reply_next(reply)
    [outcome] = json_sms.send([msg()])

    assert outcome.result is result
    assert outcome.reference == reference
    assert detail in outcome.detail


def test_json_back_off_stops_the_batch(api: HttpGateway, json_sms: JsonSmsGateway) -> None:
    api.reply_next(Reply(429, "", headers={"Retry-After": "5"}))
    outcomes = json_sms.send([msg(key="a"), msg(key="b"), msg(key="c")])

    assert [o.result for o in outcomes] == [Result.RETRY] * 3
    assert "not attempted" in outcomes[1].detail
    assert len(api.requests) == 1


def test_json_server_error_does_not_stop_the_batch(api: HttpGateway, json_sms: JsonSmsGateway) -> None:
    api.reply_next(Reply(500, "oops"), Reply(400, "bad number"))
    outcomes = json_sms.send([msg(key="a"), msg(key="b"), msg(key="c")])

    assert [o.result for o in outcomes] == [Result.RETRY, Result.FAILED, Result.SENT]


def test_json_connection_refused() -> None:
    channel = JsonSmsGateway(JsonSmsSettings.from_url(f"http+json://127.0.0.1:{closed_port()}/sms"))
    try:
        outcomes = channel.send([msg(key="a"), msg(key="b")])
    finally:
        channel.close()

    assert [o.result for o in outcomes] == [Result.RETRY, Result.RETRY]
    assert "cannot reach gateway" in outcomes[0].detail


def test_json_timeout(api: HttpGateway) -> None:
    api.reply_next(Reply(200, "{}", delay=0.5))
    channel = JsonSmsGateway(JsonSmsSettings.from_url(f"http+json://{api.netloc}/sms?timeout=0.1"))
    try:
        [outcome] = channel.send([msg()])
    finally:
        channel.close()

    assert outcome.result is Result.RETRY
    assert "timed out" in outcome.detail


# -- Kannel ---------------------------------------------------------------------------


@pytest.fixture
def kannel() -> Iterator[HttpGateway]:
    with HttpGateway(Reply(202, "0: Accepted for delivery")) as server:
        yield server


def kannel_url(server: HttpGateway, query: str = "from=ARREARS") -> str:
    return f"kannel://arrears:p%40ss@{server.netloc}/cgi-bin/sendsms?{query}"


@pytest.fixture
def kannel_sms(kannel: HttpGateway) -> Iterator[KannelGateway]:
    channel = KannelGateway(KannelSettings.from_url(kannel_url(kannel)))
    yield channel
    channel.close()


def test_kannel_sendsms_query(kannel: HttpGateway) -> None:
    dlr = "http%3A%2F%2Farrears.local%2Fdlr%3Fid%3D%25i%26status%3D%25d"
    channel = KannelGateway(
        KannelSettings.from_url(kannel_url(kannel, f"from=ARREARS&dlr-mask=31&dlr-url={dlr}"))
    )
    try:
        [outcome] = channel.send([msg("Your account is overdue.", sender="")])
    finally:
        channel.close()

    assert outcome.result is Result.SENT
    assert "Accepted for delivery" in outcome.detail
    [request] = kannel.requests
    assert (request.method, request.path) == ("GET", "/cgi-bin/sendsms")
    assert request.query == {
        "username": "arrears",
        "password": "p@ss",
        "from": "ARREARS",
        "to": TO,
        "text": "Your account is overdue.",
        "charset": "UTF-8",
        "coding": "0",
        "dlr-mask": "31",
        "dlr-url": "http://arrears.local/dlr?id=%i&status=%d",
    }


def test_kannel_unicode_is_ucs2_and_sender_overrides(kannel: HttpGateway, kannel_sms: KannelGateway) -> None:
    kannel_sms.send([msg("Счёт просрочен 😀", sender="+61400000001")])

    [request] = kannel.requests
    assert request.query["coding"] == "2"
    assert request.query["text"] == "Счёт просрочен 😀"
    assert request.query["from"] == "+61400000001"


@pytest.mark.parametrize(
    ("reply", "result"),
    [
        (Reply(202, "0: Accepted for delivery"), Result.SENT),
        (Reply(202, "3: Queued for later delivery"), Result.SENT),
        (Reply(200, "Sent."), Result.SENT),
        (Reply(400, "Missing receiver number, rejected"), Result.FAILED),
        (Reply(403, "Number(s) has/have been denied by white- and/or black-lists."), Result.FAILED),
        (Reply(403, "Authorization failed for sendsms"), Result.RETRY),
        (Reply(400, "Sender missing and no global set, rejected"), Result.RETRY),
        (Reply(503, "Sending failed."), Result.RETRY),
        (Reply(500, "Internal error"), Result.RETRY),
    ],
)
def test_kannel_status_classification(
    kannel: HttpGateway, kannel_sms: KannelGateway, reply: Reply, result: Result
) -> None:
    kannel.reply_next(reply)
    [outcome] = kannel_sms.send([msg()])

    assert outcome.result is result
    assert reply.body in outcome.detail
    assert outcome.reference is None


def test_kannel_wrong_password_keeps_the_whole_batch(kannel: HttpGateway, kannel_sms: KannelGateway) -> None:
    kannel.reply_next(Reply(403, "Authorization failed for sendsms"))
    outcomes = kannel_sms.send([msg(key="a"), msg(key="b")])

    assert [o.result for o in outcomes] == [Result.RETRY, Result.RETRY]
    assert "check the kannel:// URL" in outcomes[0].detail
    assert len(kannel.requests) == 1


def test_kannel_connection_refused() -> None:
    channel = KannelGateway(KannelSettings.from_url(f"kannel://u:p@127.0.0.1:{closed_port()}"))
    try:
        [outcome] = channel.send([msg()])
    finally:
        channel.close()

    assert outcome.result is Result.RETRY
    assert "cannot reach gateway" in outcome.detail
    assert channel.receipts() == []
