"""Settings and wiring: the one place that decides which adapters and channels run."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from arrears.channels.base import Channel
from arrears.engine.provisioning import OutcomeHook, ProvisioningDispatcher
from arrears.notify.dispatcher import DeliveryPolicy, NotificationDispatcher, Senders
from arrears.ops.metrics import record_delivery, record_webhook
from arrears.provisioning.routing import ProvisioningPolicy, Routes
from arrears.store.db import Database, database_url
from arrears.webhooks.dispatcher import WebhookDispatcher, WebhookPolicy


@dataclass(frozen=True)
class Settings:
    database_url: str
    scan_interval_s: float = 60.0
    # Transports, as URLs (docs/notifications.md): smtp:// or smtps:// for email;
    # smpp://, http+json://, https+json:// or kannel:// for SMS. Unset: that
    # channel's notifications wait (pending) until one is configured.
    smtp_url: str | None = None
    sms_url: str | None = None
    email_from: str = "arrears@localhost"
    sms_from: str = "arrears"
    max_delivery_attempts: int = 8
    # How long a dispatcher's claim on a notification lasts before another may reconcile it.
    delivery_claim_s: float = 600.0
    # Provisioning: attempts before a transient failure is final, and the first retry's delay.
    provisioning_attempts: int = 8
    provisioning_first_retry_s: float = 60.0
    # Seconds a webhook endpoint has to answer (each of connect/read/write).
    webhook_timeout_s: float = 10.0
    # The worker's /healthz and /metrics; a negative port turns them off.
    ops_host: str = "127.0.0.1"
    ops_port: int | None = 9464

    @classmethod
    def from_env(cls, database_url_override: str | None = None) -> Settings:
        env = os.environ
        return cls(
            database_url=database_url(database_url_override),
            scan_interval_s=float(env.get("ARREARS_SCAN_INTERVAL", "60")),
            smtp_url=env.get("ARREARS_SMTP_URL") or None,
            sms_url=env.get("ARREARS_SMS_URL") or None,
            email_from=env.get("ARREARS_EMAIL_FROM", "arrears@localhost"),
            sms_from=env.get("ARREARS_SMS_FROM", "arrears"),
            max_delivery_attempts=int(env.get("ARREARS_DELIVERY_ATTEMPTS", "8")),
            delivery_claim_s=float(env.get("ARREARS_DELIVERY_CLAIM", "600")),
            provisioning_attempts=int(env.get("ARREARS_PROVISIONING_ATTEMPTS", "8")),
            provisioning_first_retry_s=float(env.get("ARREARS_PROVISIONING_FIRST_RETRY", "60")),
            webhook_timeout_s=float(env.get("ARREARS_WEBHOOK_TIMEOUT", "10")),
            ops_host=env.get("ARREARS_OPS_HOST", "127.0.0.1"),
            ops_port=int(env.get("ARREARS_OPS_PORT", "9464")),
        )


def database(settings: Settings) -> Database:
    return Database(settings.database_url)


def provisioning_dispatcher(
    settings: Settings | None = None, on_outcome: OutcomeHook | None = None
) -> ProvisioningDispatcher:
    """Requests through each provider's routes (the log adapter where there is none)."""
    s = settings or Settings(database_url="")
    policy = ProvisioningPolicy(
        max_attempts=s.provisioning_attempts,
        first_retry=timedelta(seconds=s.provisioning_first_retry_s),
    )
    return ProvisioningDispatcher(Routes(), policy, on_outcome=on_outcome)


def channels(settings: Settings) -> dict[str, Channel]:
    from arrears.channels.registry import channel_from_url

    out: dict[str, Channel] = {}
    if settings.smtp_url:
        out["email"] = channel_from_url(settings.smtp_url)
    if settings.sms_url:
        out["sms"] = channel_from_url(settings.sms_url)
    return out


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def notification_dispatcher(
    settings: Settings, db: Database, clock: Callable[[], datetime]
) -> NotificationDispatcher:
    return NotificationDispatcher(
        db,
        channels(settings),
        worker=worker_name(),
        policy=DeliveryPolicy(
            max_attempts=settings.max_delivery_attempts,
            claim_for=timedelta(seconds=settings.delivery_claim_s),
        ),
        senders=Senders(email=settings.email_from, sms=settings.sms_from),
        clock=clock,
        on_outcome=record_delivery,
    )


def webhook_dispatcher(settings: Settings, db: Database, clock: Callable[[], datetime]) -> WebhookDispatcher:
    return WebhookDispatcher(
        db,
        worker=worker_name(),
        policy=WebhookPolicy(timeout=settings.webhook_timeout_s),
        clock=clock,
        on_outcome=record_webhook,
    )
