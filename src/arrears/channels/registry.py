"""Build a channel from its configuration URL, and show such URLs safely in logs."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from arrears.channels.base import Channel

KNOWN_SCHEMES = ("smpp", "http+json", "https+json", "kannel", "smtp", "smtps")

# Query parameters whose values are credentials, whatever the scheme.
_SECRET_PARAMETERS = frozenset(
    {"token", "password", "pass", "passwd", "secret", "api_key", "apikey", "key", "access_token", "auth"}
)
_HIDDEN = "***"


def channel_from_url(url: str) -> Channel:
    """`smpp://`, `http+json://`, `https+json://`, `kannel://`, `smtp://` or `smtps://`.

    Raises ValueError (naming the bad part, never echoing a password) for a URL it cannot use.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "smpp":
        from arrears.channels.smpp import SmppChannel, SmppSettings

        return SmppChannel(SmppSettings.from_url(url))
    if scheme in ("http+json", "https+json"):
        from arrears.channels.http_sms import JsonSmsGateway, JsonSmsSettings

        return JsonSmsGateway(JsonSmsSettings.from_url(url))
    if scheme == "kannel":
        from arrears.channels.http_sms import KannelGateway, KannelSettings

        return KannelGateway(KannelSettings.from_url(url))
    if scheme in ("smtp", "smtps"):
        # Imported here so that SMS-only deployments (and tests) never load the email stack.
        from arrears.channels.email import SmtpChannel, SmtpSettings

        return SmtpChannel(SmtpSettings.from_url(url))
    shown = f"{scheme}://" if scheme else "no scheme"
    raise ValueError(
        f"unknown channel URL scheme {shown} in {redact(url)}; known: {', '.join(s + '://' for s in KNOWN_SCHEMES)}"
    )


def redact(url: str) -> str:
    """The URL with its password and credential-like query values replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}:{_HIDDEN}@{hostport}" if colon else f"{userinfo}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, _HIDDEN if k.lower() in _SECRET_PARAMETERS and v else v) for k, v in pairs], safe="*/:"
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        # Unparseable: show only the scheme rather than risk printing a secret.
        scheme = url.partition("://")[0] if "://" in url else ""
        return f"{scheme}://{_HIDDEN}" if scheme else _HIDDEN
