"""Delivery channels: how a rendered notice reaches a person (SPEC §7).

Each transport (SMTP, SMPP, an HTTP SMS gateway) sits behind the small
`Channel` interface of `base`; the notification dispatcher knows nothing else
about them. `registry.channel_from_url` builds one from its configuration URL.
"""
