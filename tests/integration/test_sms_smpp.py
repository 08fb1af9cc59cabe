"""The SMPP channel against a real (small) SMSC over TCP."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from smpplib import consts

from arrears.channels.base import Message, Result
from arrears.channels.smpp import SmppChannel, SmppSettings
from peers.smsc import NO_ANSWER, Smsc, gsm_decode

TO = "+61412345678"


@pytest.fixture(autouse=True)
def _no_leftover_threads(no_leftover_threads: None) -> None:
    """Every test here leaves no thread of its peers behind (tests/conftest.py)."""


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc() as server:
        yield server


@pytest.fixture
def channel(smsc: Smsc) -> Iterator[SmppChannel]:
    sms = SmppChannel(SmppSettings.from_url(smsc.url(source="ARREARS", timeout="2")))
    yield sms
    sms.close()


def msg(
    text: str = "Your account is overdue.", *, key: str = "k1", to: str = TO, sender: str = ""
) -> Message:
    return Message(key=key, to=to, sender=sender, text=text)


def test_bind_and_submit(smsc: Smsc, channel: SmppChannel) -> None:
    [outcome] = channel.send([msg("Hello from arrears")])

    assert outcome.result is Result.SENT
    [bind] = smsc.binds
    assert (bind.command, bind.system_id, bind.password, bind.accepted) == (
        "bind_transceiver",
        "arrears",
        "secret",
        True,
    )
    [submit] = smsc.submits
    assert outcome.reference == submit.message_id
    assert (submit.destination_addr, submit.dest_addr_ton, submit.dest_addr_npi) == ("61412345678", 1, 1)
    assert (submit.source_addr, submit.source_addr_ton, submit.source_addr_npi) == ("ARREARS", 5, 0)
    assert submit.data_coding == consts.SMPP_ENCODING_DEFAULT
    assert submit.registered_delivery == 1
    assert submit.udh == b""
    assert submit.text == "Hello from arrears"


def test_numeric_sender_is_international_and_session_is_reused(smsc: Smsc, channel: SmppChannel) -> None:
    channel.send([msg(sender="+61400000001")])
    channel.send([msg(key="k2", sender="61400000002")])

    assert len(smsc.binds) == 1
    first, second = smsc.submits
    assert (first.source_addr, first.source_addr_ton, first.source_addr_npi) == ("61400000001", 1, 1)
    assert (second.source_addr, second.source_addr_ton, second.source_addr_npi) == ("61400000002", 1, 1)


def test_transmitter_without_receipts(smsc: Smsc) -> None:
    sms = SmppChannel(SmppSettings.from_url(smsc.url(source="ARREARS", receipts="false")))
    try:
        assert sms.send([msg()])[0].result is Result.SENT
        assert sms.receipts() == []
    finally:
        sms.close()
    assert smsc.binds[0].command == "bind_transmitter"
    assert smsc.submits[0].registered_delivery == 0


def test_long_gsm_text_is_sent_as_concatenated_parts(smsc: Smsc, channel: SmppChannel) -> None:
    # The € is an escape pair (1B 65) placed across the 153-octet part boundary.
    text = "a" * 152 + "€" + "b" * 200 + "{end}"
    [outcome] = channel.send([msg(text)])

    assert outcome.result is Result.SENT
    parts = smsc.submits
    assert len(parts) == 3
    reference = parts[0].udh[3]
    for number, part in enumerate(parts, start=1):
        assert part.esm_class & consts.SMPP_GSMFEAT_UDHI
        assert part.data_coding == consts.SMPP_ENCODING_DEFAULT
        assert part.udh == bytes((0x05, 0x00, 0x03, reference, 3, number))
        assert len(part.short_message) <= 159
        assert not part.payload.endswith(b"\x1b") or part.payload.endswith(b"\x1b\x1b")
    assert "".join(gsm_decode(p.payload) for p in parts) == text
    assert outcome.reference == parts[-1].message_id
    assert all(p.message_id in outcome.detail for p in parts)


def test_ucs2_text(smsc: Smsc, channel: SmppChannel) -> None:
    [outcome] = channel.send([msg("Ваш счёт просрочен — 請付款")])

    assert outcome.result is Result.SENT
    [submit] = smsc.submits
    assert submit.data_coding == consts.SMPP_ENCODING_ISO10646
    assert submit.text == "Ваш счёт просрочен — 請付款"


def test_long_ucs2_text_keeps_surrogate_pairs_whole(smsc: Smsc, channel: SmppChannel) -> None:
    # 66 UCS-2 units then an emoji (a surrogate pair) across the 134-octet part boundary.
    text = "ж" * 66 + "😀" + "ё" * 80
    channel.send([msg(text)])

    parts = smsc.submits
    assert len(parts) == 3
    assert all(p.data_coding == consts.SMPP_ENCODING_ISO10646 and p.udh for p in parts)
    assert "".join(p.text for p in parts) == text  # each part decodes on its own


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (consts.SMPP_ESME_RTHROTTLED, "ESME_RTHROTTLED (0x58)"),
        (consts.SMPP_ESME_RMSGQFUL, "ESME_RMSGQFUL (0x14)"),
        (consts.SMPP_ESME_RSYSERR, "ESME_RSYSERR (0x08)"),
    ],
)
def test_busy_smsc_means_retry(smsc: Smsc, channel: SmppChannel, status: int, name: str) -> None:
    smsc.answer_next(status)
    first, second = channel.send([msg(key="a"), msg(key="b")])

    assert first.result is Result.RETRY
    assert name in first.detail
    assert first.reference is None
    assert second.result is Result.SENT  # the session is still good


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (consts.SMPP_ESME_RINVDSTADR, "ESME_RINVDSTADR (0x0B)"),
        (consts.SMPP_ESME_RINVSRCADR, "ESME_RINVSRCADR (0x0A)"),
        (consts.SMPP_ESME_RSUBMITFAIL, "ESME_RSUBMITFAIL (0x45)"),
    ],
)
def test_rejected_message_fails(smsc: Smsc, channel: SmppChannel, status: int, name: str) -> None:
    smsc.answer_next(status)
    first, second = channel.send([msg(key="a"), msg(key="b")])

    assert first.result is Result.FAILED
    assert name in first.detail
    assert second.result is Result.SENT


def test_not_e164_fails_without_submitting(smsc: Smsc, channel: SmppChannel) -> None:
    [outcome] = channel.send([msg(to="0412345678")])

    assert outcome.result is Result.FAILED
    assert "E.164" in outcome.detail
    assert smsc.submits == []


def test_wrong_password_is_retried_not_failed(smsc: Smsc) -> None:
    sms = SmppChannel(SmppSettings.from_url(smsc.url(password="wrong")))
    try:
        outcomes = sms.send([msg(key="a"), msg(key="b")])
    finally:
        sms.close()

    assert [o.result for o in outcomes] == [Result.RETRY, Result.RETRY]
    assert "bind failed" in outcomes[0].detail
    assert "ESME_RBINDFAIL" in outcomes[0].detail
    assert [b.accepted for b in smsc.binds] == [False]  # one attempt per batch, not one per message
    assert smsc.submits == []


def test_connection_dropped_mid_batch(smsc: Smsc, channel: SmppChannel) -> None:
    smsc.drop_on_submit(2)
    outcomes = channel.send([msg(key="a"), msg(key="b"), msg(key="c")])

    assert [o.result for o in outcomes] == [Result.SENT, Result.RETRY, Result.RETRY]
    assert "closed the connection" in outcomes[1].detail

    [again] = channel.send([msg(key="b")])
    assert again.result is Result.SENT
    assert len(smsc.binds) == 2


def test_smsc_restart_between_batches_loses_nothing(smsc: Smsc, channel: SmppChannel) -> None:
    channel.send([msg(key="a")])
    smsc.drop_connections()
    smsc.wait_for(lambda: smsc.open_sessions == 0)

    [outcome] = channel.send([msg(key="b")])
    assert outcome.result is Result.SENT
    assert len(smsc.binds) == 2


def test_unanswered_submit_is_retried_and_session_replaced(smsc: Smsc) -> None:
    sms = SmppChannel(SmppSettings.from_url(smsc.url(timeout="0.3")))
    try:
        smsc.answer_next(NO_ANSWER)
        first, second = sms.send([msg(key="a"), msg(key="b")])
        assert first.result is Result.RETRY
        assert "did not answer" in first.detail
        assert second.result is Result.RETRY
        assert sms.send([msg(key="b")])[0].result is Result.SENT
    finally:
        sms.close()
    assert len(smsc.binds) == 2


def test_connection_refused_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sms = SmppChannel(SmppSettings(host="127.0.0.1", port=port, system_id="x", password="y", timeout=1))
    outcomes = sms.send([msg(key="a"), msg(key="b")])
    sms.close()

    assert [o.result for o in outcomes] == [Result.RETRY, Result.RETRY]
    assert "cannot connect" in outcomes[0].detail


def test_delivery_receipt(smsc: Smsc, channel: SmppChannel) -> None:
    [outcome] = channel.send([msg()])
    assert outcome.reference is not None
    smsc.send_receipt(outcome.reference, stat="DELIVRD")

    receipts = []

    def arrived() -> bool:
        receipts.extend(channel.receipts())
        return bool(receipts)

    smsc.wait_for(arrived)
    assert [(r.reference, r.state) for r in receipts] == [(outcome.reference, "DELIVRD")]
    assert "stat:DELIVRD" in receipts[0].detail
    smsc.wait_for(lambda: smsc.acknowledged == [outcome.reference])
    assert channel.receipts() == []  # handed over once


def test_receipt_arriving_during_send_is_kept(smsc: Smsc, channel: SmppChannel) -> None:
    [first] = channel.send([msg(key="a")])
    assert first.reference is not None
    smsc.send_receipt(first.reference, stat="UNDELIV", err="001")

    channel.send([msg(key="b")])  # reads the deliver_sm queued ahead of its submit_sm_resp

    smsc.wait_for(lambda: smsc.acknowledged == [first.reference])
    [receipt] = channel.receipts()
    assert (receipt.reference, receipt.state) == (first.reference, "UNDELIV")


def test_close_unbinds(smsc: Smsc) -> None:
    sms = SmppChannel(SmppSettings.from_url(smsc.url()))
    sms.send([msg()])
    sms.close()
    sms.close()  # idempotent

    smsc.wait_for(lambda: smsc.unbinds == 1 and smsc.open_sessions == 0)
