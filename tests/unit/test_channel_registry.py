"""Channel URLs: which channel each scheme builds, how its settings are read, and redaction."""

from __future__ import annotations

import pytest

from arrears.channels.base import Result
from arrears.channels.http_sms import JsonSmsGateway, JsonSmsSettings, KannelGateway, KannelSettings
from arrears.channels.registry import channel_from_url, redact
from arrears.channels.smpp import SmppChannel, SmppSettings, classify_status, source_ton_npi


def test_smpp_url() -> None:
    channel = channel_from_url("smpp://arrears:s%40cret@smsc.example:2776?source=ARREARS&system_type=VMA")
    try:
        assert isinstance(channel, SmppChannel)
        assert channel.name == "sms"
        assert channel.settings == SmppSettings(
            host="smsc.example",
            port=2776,
            system_id="arrears",
            password="s@cret",
            system_type="VMA",
            source_addr="ARREARS",
            registered_delivery=True,
        )
    finally:
        channel.close()


def test_smpp_url_defaults_and_options() -> None:
    settings = SmppSettings.from_url(
        "smpp://id:pw@smsc.example?receipts=false&timeout=2.5&source_ton=3&source_npi=0"
    )
    assert settings.port == 2775
    assert settings.registered_delivery is False
    assert settings.timeout == 2.5
    assert (settings.source_ton, settings.source_npi) == (3, 0)
    assert settings.source_addr == ""


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("smpp://smsc.example", "system_id"),
        ("smpp://id:pw@:2775", "no host"),
        ("smpp://id:pw@smsc.example:notaport", "port"),
        ("smpp://id:pw@smsc.example:70000", "port"),
        ("smpp://id:pw@smsc.example?receipts=maybe", "receipts"),
        ("smpp://id:pw@smsc.example?sorce=X", "unknown parameter(s) sorce"),
        ("smpp://id:pw@smsc.example?timeout=0", "timeout"),
        ("smpp://id:pw@smsc.example?source_ton=300", "source_ton"),
        ("smpp://id:toolongpassword@smsc.example", "password is longer than 8"),
        ("smpp://a-very-long-system-id@smsc.example", "system_id is longer than 15"),
        ("smpp://id:pw@smsc.example/path", "path"),
        ("smpp://id:pw@smsc.example?source=ArrearsNotices", "longer than 11"),
    ],
)
def test_bad_smpp_urls(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        SmppSettings.from_url(url)


def test_source_ton_npi() -> None:
    assert source_ton_npi("ARREARS") == (5, 0)
    assert source_ton_npi("+61400000000") == (1, 1)
    assert source_ton_npi("61400000000") == (1, 1)
    assert source_ton_npi("") == (0, 0)


def test_status_classification() -> None:
    assert classify_status(0x00) is Result.SENT
    assert classify_status(0x58) is Result.RETRY
    assert classify_status(0x14) is Result.RETRY
    assert classify_status(0x08) is Result.RETRY
    assert classify_status(0x0B) is Result.FAILED
    assert classify_status(0x0A) is Result.FAILED
    assert classify_status(0x45) is Result.FAILED


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http+json://gw.example:8080/v1/sms?token=abc", "http://gw.example:8080/v1/sms"),
        ("https+json://gw.example/send?token=abc&account=7", "https://gw.example/send?account=7"),
        ("https+json://gw.example", "https://gw.example/"),
    ],
)
def test_json_urls(url: str, target: str) -> None:
    channel = channel_from_url(url)
    try:
        assert isinstance(channel, JsonSmsGateway)
        assert channel.name == "sms"
        assert channel.settings.url == target
        assert channel.settings.token == ("abc" if "token" in url else None)
    finally:
        channel.close()


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http+json:///path", "no host"),
        ("http+json://u:p@gw.example/sms", "token"),
        ("http+json://gw.example/sms?token=", "empty token"),
        ("http+json://gw.example/sms?timeout=soon", "timeout"),
        ("http+json://gw.example:99999/sms", "port"),
    ],
)
def test_bad_json_urls(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        JsonSmsSettings.from_url(url)


def test_kannel_url() -> None:
    channel = channel_from_url(
        "kannel://user:p%26ss@kannel.example/cgi-bin/sendsms?from=ARREARS&dlr-mask=31&smsc=telco"
    )
    try:
        assert isinstance(channel, KannelGateway)
        assert channel.settings == KannelSettings(
            host="kannel.example",
            port=13013,
            path="/cgi-bin/sendsms",
            username="user",
            password="p&ss",
            sender="ARREARS",
            dlr_mask=31,
            smsc="telco",
        )
        assert channel.settings.endpoint == "http://kannel.example:13013/cgi-bin/sendsms"
    finally:
        channel.close()


def test_kannel_default_path() -> None:
    assert KannelSettings.from_url("kannel://u:p@kannel.example:14000").endpoint == (
        "http://kannel.example:14000/cgi-bin/sendsms"
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("kannel://kannel.example", "user name"),
        ("kannel://u:p@kannel.example?dlr-mask=x", "dlr-mask"),
        ("kannel://u:p@kannel.example?to=123", "unknown parameter"),
    ],
)
def test_bad_kannel_urls(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        KannelSettings.from_url(url)


@pytest.mark.parametrize("url", ["ftp://files.example/x", "sms://x", "nothing-here"])
def test_unknown_scheme(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        channel_from_url(url)
    message = str(caught.value)
    assert "unknown channel URL scheme" in message
    assert url.partition(":")[0] in message or "no scheme" in message
    for known in ("smpp://", "http+json://", "https+json://", "kannel://", "smtp://", "smtps://"):
        assert known in message


def test_unknown_scheme_error_does_not_echo_password() -> None:
    with pytest.raises(ValueError) as caught:
        channel_from_url("smppp://id:hunter2@smsc.example")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "smpp://arrears:s3cret@smsc.example:2775?source=ARREARS",
            "smpp://arrears:***@smsc.example:2775?source=ARREARS",
        ),
        (
            "kannel://user:p%40ss@kannel.example/cgi-bin/sendsms?from=X",
            "kannel://user:***@kannel.example/cgi-bin/sendsms?from=X",
        ),
        (
            "https+json://gw.example/sms?token=abc&account=7",
            "https+json://gw.example/sms?token=***&account=7",
        ),
        ("smtp://mailer@relay.example:587", "smtp://mailer@relay.example:587"),
        ("smtps://relay.example?api_key=k&Password=p", "smtps://relay.example?api_key=***&Password=***"),
        ("http+json://gw.example/sms", "http+json://gw.example/sms"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_redact_never_fails() -> None:
    assert "pw" not in redact("smpp://id:pw@[bad")
