"""The SMTP email channel against a real SMTP server (aiosmtpd) in the test process.

Plain, STARTTLS and implicit TLS (with a private CA from trustme), AUTH, and how SMTP
replies and network failures become SENT / RETRY / FAILED outcomes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from arrears.channels.base import Message, Outcome, Result, message_id
from arrears.channels.email import SmtpChannel, SmtpSettings, render_mime
from peers.smtp_server import DROP, Credentials, RecordingHandler, Server, smtp_server

SENDER = "billing@isp.example"


def notice(n: int, *, to: str | None = None, html: bool = True, key: str | None = None) -> Message:
    return Message(
        key=key or f"notice-{n}",
        to=to or f"customer{n}@example.com",
        sender=SENDER,
        subject=f"Your account is overdue ({n})",
        text=f"Please pay invoice {n}.\nThank you.",
        html=f"<p>Please pay invoice <b>{n}</b>.</p>" if html else None,
    )


def plain(server: Server, **changes: object) -> SmtpSettings:
    settings = SmtpSettings(
        host=server.host, port=server.port, security="none", timeout=2.0, local_hostname="arrears.test"
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


def results(outcomes: list[Outcome]) -> list[Result]:
    return [o.result for o in outcomes]


# --- TLS material: a private CA and a certificate for 127.0.0.1 ---------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def server() -> Iterator[Server]:
    with smtp_server() as s:
        yield s


# --- plain delivery -------------------------------------------------------------------------------


def test_a_batch_is_delivered_over_one_connection(server: Server) -> None:
    messages = [notice(1), notice(2, html=False), notice(3)]
    outcomes = SmtpChannel(plain(server)).send(messages)

    assert results(outcomes) == [Result.SENT] * 3
    assert [o.reference for o in outcomes] == [message_id(m.key, SENDER) for m in messages]
    assert all("queued as" in o.detail for o in outcomes)
    received = server.handler.received
    assert len(received) == 3
    assert len(server.handler.connections) == 1
    assert [r.rcpt_tos for r in received] == [[m.to] for m in messages]
    assert {r.mail_from for r in received} == {SENDER}
    assert not any(r.tls for r in received)


def test_the_received_message_has_the_headers_and_both_bodies(server: Server) -> None:
    message = notice(1)
    SmtpChannel(plain(server)).send([message])

    mime = server.handler.received[0].parsed()
    assert mime["From"] == SENDER
    assert mime["To"] == message.to
    assert mime["Subject"] == message.subject
    assert mime["Message-ID"] == message_id(message.key, SENDER)
    assert mime["X-Arrears-Key"] == message.key
    assert mime["Date"].datetime is not None
    assert mime.get_content_type() == "multipart/alternative"
    text = mime.get_body(preferencelist=("plain",))
    html = mime.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert text.get_content() == message.text + "\n"
    assert html.get_content() == f"{message.html}\n"


def test_a_text_only_message_is_a_single_text_part(server: Server) -> None:
    SmtpChannel(plain(server)).send([notice(1, html=False)])
    mime = server.handler.received[0].parsed()
    assert mime.get_content_type() == "text/plain"
    assert mime.get_content() == "Please pay invoice 1.\nThank you.\n"


def test_non_ascii_text_and_subject_survive(server: Server) -> None:
    message = replace(notice(1), subject="Zahlungsrückstand: 50,00 €", text="Grüße, Ihr Kundendienst")
    assert SmtpChannel(plain(server)).send([message])[0].result is Result.SENT
    mime = server.handler.received[0].parsed()
    assert mime["Subject"] == message.subject
    body = mime.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content() == message.text + "\n"
    assert server.handler.received[0].data.isascii()  # no 8BITMIME needed


def test_the_message_id_is_stable_for_a_key(server: Server) -> None:
    channel = SmtpChannel(plain(server))
    channel.send([notice(1, key="k-42")])
    channel.send([notice(1, key="k-42")])

    ids = [r.parsed()["Message-ID"] for r in server.handler.received]
    assert ids == [message_id("k-42", SENDER)] * 2
    assert len(server.handler.connections) == 2  # one connection per send


def test_display_names_are_kept_in_headers_and_left_out_of_the_envelope(server: Server) -> None:
    message = replace(notice(1), sender=f"Billing <{SENDER}>", to="Jane Doe <jane@example.com>")
    outcomes = SmtpChannel(plain(server)).send([message])
    received = server.handler.received[0]
    assert (received.mail_from, received.rcpt_tos) == (SENDER, ["jane@example.com"])
    mime = received.parsed()
    assert (mime["From"], mime["To"]) == (message.sender, message.to)
    assert mime["Message-ID"] == outcomes[0].reference == message_id(message.key, SENDER)


def test_render_mime_gives_the_bytes_that_are_sent(server: Server) -> None:
    message = notice(7)
    SmtpChannel(plain(server)).send([message])
    received = server.handler.received[0]
    date = received.parsed()["Date"].datetime
    assert received.data == render_mime(message, date=date)
    assert render_mime(message, date=date) == render_mime(message, date=date)


def test_an_empty_batch_needs_no_server() -> None:
    assert SmtpChannel(SmtpSettings(host="127.0.0.1", port=9, security="none")).send([]) == []


def test_send_works_from_inside_an_event_loop(server: Server) -> None:
    channel = SmtpChannel(plain(server))

    async def caller() -> list[Outcome]:
        return channel.send([notice(1)])

    assert results(asyncio.run(caller())) == [Result.SENT]


# --- TLS --------------------------------------------------------------------------------------------


def test_starttls_with_a_trusted_private_ca(server_tls: ssl.SSLContext, cafile: str) -> None:
    with smtp_server(starttls=server_tls, require_starttls=True) as server:
        outcomes = SmtpChannel(plain(server, security="starttls", cafile=cafile)).send([notice(1), notice(2)])
    assert results(outcomes) == [Result.SENT] * 2
    assert all(r.tls for r in server.handler.received)
    assert len(server.handler.connections) == 1


def test_starttls_with_an_untrusted_certificate_is_retried(server_tls: ssl.SSLContext) -> None:
    with smtp_server(starttls=server_tls, require_starttls=True) as server:
        outcomes = SmtpChannel(plain(server, security="starttls")).send([notice(1), notice(2)])
    assert results(outcomes) == [Result.RETRY] * 2
    assert "certificate verify failed" in outcomes[0].detail
    assert server.handler.received == []


def test_starttls_required_but_not_offered_is_retried_not_sent_in_clear(server: Server) -> None:
    outcomes = SmtpChannel(plain(server, security="starttls")).send([notice(1)])
    assert results(outcomes) == [Result.RETRY]
    assert "STARTTLS" in outcomes[0].detail
    assert server.handler.received == []


def test_plain_settings_do_not_upgrade_opportunistically(server_tls: ssl.SSLContext) -> None:
    with smtp_server(starttls=server_tls) as server:  # offers STARTTLS, does not insist
        assert results(SmtpChannel(plain(server)).send([notice(1)])) == [Result.SENT]
    assert not server.handler.received[0].tls


def test_implicit_tls_with_a_trusted_private_ca(server_tls: ssl.SSLContext, cafile: str) -> None:
    with smtp_server(implicit_tls=server_tls) as server:
        settings = SmtpSettings.from_url(
            f"smtps://{server.host}:{server.port}?cafile={cafile}&timeout=2&local_hostname=arrears.test"
        )
        outcomes = SmtpChannel(settings).send([notice(1), notice(2)])
    assert results(outcomes) == [Result.SENT] * 2
    assert all(r.tls for r in server.handler.received)


def test_implicit_tls_with_an_untrusted_certificate_is_retried(server_tls: ssl.SSLContext) -> None:
    with smtp_server(implicit_tls=server_tls) as server:
        outcomes = SmtpChannel(plain(server, security="tls")).send([notice(1)])
    assert results(outcomes) == [Result.RETRY]
    assert "certificate verify failed" in outcomes[0].detail
    assert server.handler.received == []


def test_verify_false_accepts_an_untrusted_certificate(server_tls: ssl.SSLContext) -> None:
    with smtp_server(implicit_tls=server_tls) as server:
        outcomes = SmtpChannel(plain(server, security="tls", verify=False)).send([notice(1)])
    assert results(outcomes) == [Result.SENT]


def test_an_unreadable_cafile_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cafile"):
        SmtpChannel(SmtpSettings(host="127.0.0.1", cafile=str(tmp_path / "missing.pem")))


# --- AUTH ---------------------------------------------------------------------------------------------


@pytest.fixture
def auth_server(server_tls: ssl.SSLContext) -> Iterator[Server]:
    with smtp_server(
        starttls=server_tls, require_starttls=True, authenticator=Credentials("billing", "s3cret")
    ) as s:
        yield s


def test_good_credentials_deliver(auth_server: Server, cafile: str) -> None:
    settings = plain(auth_server, security="starttls", cafile=cafile, username="billing", password="s3cret")
    assert results(SmtpChannel(settings).send([notice(1), notice(2)])) == [Result.SENT] * 2
    assert len(auth_server.handler.received) == 2


def test_bad_credentials_retry_the_whole_batch_with_a_clear_detail(auth_server: Server, cafile: str) -> None:
    settings = plain(auth_server, security="starttls", cafile=cafile, username="billing", password="wrong")
    outcomes = SmtpChannel(settings).send([notice(1), notice(2)])
    # Documented choice: a wrong password is the operator's to fix, not a reason to drop notices.
    assert results(outcomes) == [Result.RETRY] * 2
    assert outcomes[0].detail.startswith("authentication failed")
    assert "535" in outcomes[0].detail
    assert auth_server.handler.received == []


def test_missing_credentials_where_auth_is_required_retry(auth_server: Server, cafile: str) -> None:
    outcomes = SmtpChannel(plain(auth_server, security="starttls", cafile=cafile)).send([notice(1)])
    assert results(outcomes) == [Result.RETRY]
    assert "530" in outcomes[0].detail


# --- replies and failures -------------------------------------------------------------------------


def test_a_refused_recipient_fails_and_the_others_are_sent() -> None:
    handler = RecordingHandler(rcpt_replies={"customer2@example.com": "550 5.1.1 no such user"})
    with smtp_server(handler) as server:
        outcomes = SmtpChannel(plain(server)).send([notice(1), notice(2), notice(3)])
    assert results(outcomes) == [Result.SENT, Result.FAILED, Result.SENT]
    assert "550" in outcomes[1].detail and "no such user" in outcomes[1].detail
    assert outcomes[1].reference is None
    assert [r.rcpt_tos for r in handler.received] == [["customer1@example.com"], ["customer3@example.com"]]
    assert len(handler.connections) == 1


def test_553_for_a_recipient_fails() -> None:
    handler = RecordingHandler(rcpt_replies={"customer1@example.com": "553 5.1.3 bad address syntax"})
    with smtp_server(handler) as server:
        outcomes = SmtpChannel(plain(server)).send([notice(1)])
    assert results(outcomes) == [Result.FAILED]
    assert "553" in outcomes[0].detail


def test_a_temporary_refusal_is_retried_and_the_others_are_sent() -> None:
    handler = RecordingHandler(rcpt_replies={"customer1@example.com": "451 4.7.1 greylisted, try later"})
    with smtp_server(handler) as server:
        outcomes = SmtpChannel(plain(server)).send([notice(1), notice(2)])
    assert results(outcomes) == [Result.RETRY, Result.SENT]
    assert "451" in outcomes[0].detail and "greylisted" in outcomes[0].detail


def test_content_refused_after_data_fails() -> None:
    handler = RecordingHandler(data_replies={"customer1@example.com": "554 5.7.1 message rejected as spam"})
    with smtp_server(handler) as server:
        outcomes = SmtpChannel(plain(server)).send([notice(1), notice(2)])
    assert results(outcomes) == [Result.FAILED, Result.SENT]
    assert "554" in outcomes[0].detail


def test_a_server_closing_the_session_mid_batch_retries_the_rest() -> None:
    handler = RecordingHandler(rcpt_replies={"customer2@example.com": "421 4.3.2 shutting down"})
    with smtp_server(handler) as server:
        outcomes = SmtpChannel(plain(server)).send([notice(1), notice(2), notice(3)])
    assert results(outcomes) == [Result.SENT, Result.RETRY, Result.RETRY]
    assert "421" in outcomes[1].detail
    assert "not attempted" in outcomes[2].detail


def test_a_dropped_connection_mid_batch_retries_the_rest() -> None:
    handler = RecordingHandler(data_replies={"customer2@example.com": DROP})
    with smtp_server(handler) as server:
        outcomes = SmtpChannel(plain(server)).send([notice(1), notice(2), notice(3)])
    assert results(outcomes) == [Result.SENT, Result.RETRY, Result.RETRY]
    assert outcomes[1].detail.startswith("connection lost")
    assert len(handler.received) == 1


def test_an_unsendable_message_fails_alone(server: Server) -> None:
    bad = replace(notice(2), subject="injected\r\nBcc: everyone@example.com")
    outcomes = SmtpChannel(plain(server)).send([notice(1), bad, replace(notice(3), to="not an address")])
    assert results(outcomes) == [Result.SENT, Result.FAILED, Result.FAILED]
    assert len(server.handler.received) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_server_listening_retries_everything() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), security="none", timeout=2.0)
    outcomes = SmtpChannel(settings).send([notice(1), notice(2)])
    assert results(outcomes) == [Result.RETRY] * 2
    assert outcomes[0].detail.startswith("cannot connect to 127.0.0.1:")


def test_a_silent_server_times_out_and_retries() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        settings = SmtpSettings(
            host="127.0.0.1", port=port, security="none", timeout=0.3, local_hostname="arrears.test"
        )
        started = time.monotonic()
        outcomes = SmtpChannel(settings).send([notice(1)])
    assert results(outcomes) == [Result.RETRY]
    assert "timed out" in outcomes[0].detail.lower()
    assert time.monotonic() - started < 1.5


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpSettings(host="mail.example.com", port=587, security="starttls")),
        ("smtp://mail.example.com:2525", SmtpSettings(host="mail.example.com", port=2525)),
        ("smtp://localhost:25?starttls=false", SmtpSettings(host="localhost", port=25, security="none")),
        ("smtp://localhost?starttls=false", SmtpSettings(host="localhost", port=587, security="none")),
        ("smtps://mail.example.com", SmtpSettings(host="mail.example.com", port=465, security="tls")),
        ("SMTPS://Mail.Example.com:1465", SmtpSettings(host="mail.example.com", port=1465, security="tls")),
        (
            "smtp://billing%40isp.example:p%40ss%3Aw%2Frd@mail.example.com",
            SmtpSettings(host="mail.example.com", username="billing@isp.example", password="p@ss:w/rd"),
        ),
        ("smtp://user@mail.example.com", SmtpSettings(host="mail.example.com", username="user")),
        (
            "smtp://mail.example.com?cafile=/etc/ssl/private%20ca.pem&verify=false&timeout=2.5",
            SmtpSettings(
                host="mail.example.com", cafile="/etc/ssl/private ca.pem", verify=False, timeout=2.5
            ),
        ),
        ("smtp://[::1]:25/?starttls=no", SmtpSettings(host="::1", port=25, security="none")),
        (
            "smtp://h?local_hostname=billing.isp.example",
            SmtpSettings(host="h", local_hostname="billing.isp.example"),
        ),
    ],
)
def test_urls(url: str, expected: SmtpSettings) -> None:
    assert SmtpSettings.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.com", "scheme must be smtp or smtps"),
        ("mail.example.com:25", "scheme"),
        ("smtp://", "host is missing"),
        ("smtp://user:pw@:25", "host is missing"),
        ("smtp://mail.example.com:abc", "port must be a number"),
        ("smtp://mail.example.com:70000", "port must be a number"),
        ("smtp://mail.example.com:0", "port must be a number"),
        ("smtp://:secret@mail.example.com", "password needs a user"),
        ("smtp://mail.example.com/inbox", "unexpected path"),
        ("smtp://mail.example.com?startls=false", "unknown parameter 'startls'"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be true or false"),
        ("smtp://mail.example.com?verify=nope", "verify must be true or false"),
        ("smtp://mail.example.com?timeout=soon", "timeout must be a positive number"),
        ("smtp://mail.example.com?timeout=0", "timeout must be a positive number"),
        ("smtp://mail.example.com?timeout=1&timeout=2", "more than once"),
        ("smtps://mail.example.com?starttls=true", "starttls does not apply to smtps"),
        ("smtp://mail.example.com?local_hostname=a%20b", "local_hostname"),
    ],
)
def test_bad_urls_name_the_bad_part(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^smtp (url|settings): .*{message}"):
        SmtpSettings.from_url(url)


def test_the_password_stays_out_of_the_repr() -> None:
    settings = SmtpSettings.from_url("smtp://billing:hunter2@mail.example.com")
    assert "hunter2" not in repr(settings)
    assert settings.password == "hunter2"
