"""Prometheus metrics: what an operator graphs and alerts on.

One registry per process. Counters and histograms are updated where the work
happens; queue depths are read from the database when /metrics is scraped, so
they are right whichever worker did the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from arrears.store.db import Database
from arrears.store.tables import NotificationRow, ProvisioningRequestRow, WebhookDeliveryRow

REGISTRY = CollectorRegistry(auto_describe=True)

SCAN_SECONDS = Histogram(
    "arrears_scan_duration_seconds",
    "Duration of an evaluation pass",
    ["pass"],
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
DECISIONS = Counter(
    "arrears_decisions_total", "Decisions carried out, by action", ["action"], registry=REGISTRY
)
DELIVERIES = Counter(
    "arrears_notifications_total",
    "Notification outcomes, by channel and outcome",
    ["channel", "outcome"],
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "arrears_notification_latency_seconds",
    "From a notice's due instant to the peer accepting it",
    ["channel"],
    registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400),
)
PROVISIONING = Counter(
    "arrears_provisioning_total",
    "Provisioning request outcomes, by adapter and outcome",
    ["adapter", "outcome"],
    registry=REGISTRY,
)
PROVISIONING_LATENCY = Histogram(
    "arrears_provisioning_latency_seconds",
    "From a decision to its provisioning request being confirmed",
    ["adapter"],
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 86400),
)
WEBHOOKS = Counter(
    "arrears_webhooks_total", "Webhook delivery attempts, by outcome", ["outcome"], registry=REGISTRY
)
WEBHOOK_LATENCY = Histogram(
    "arrears_webhook_latency_seconds",
    "From an event to its delivery being taken by the endpoint",
    registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 3 * 86400),
)
TICKS = Counter("arrears_worker_ticks_total", "Worker rounds, by result", ["result"], registry=REGISTRY)


def record_delivery(channel: str, outcome: str, latency: float | None) -> None:
    """The notification dispatcher's outcome hook."""
    DELIVERIES.labels(channel, outcome).inc()
    if latency is not None:
        DELIVERY_LATENCY.labels(channel).observe(latency)


def record_provisioning(adapter: str, outcome: str, latency: float | None) -> None:
    """The provisioning dispatcher's outcome hook."""
    PROVISIONING.labels(adapter, outcome).inc()
    if latency is not None:
        PROVISIONING_LATENCY.labels(adapter).observe(latency)


def record_webhook(outcome: str, latency: float | None) -> None:
    """The webhook dispatcher's outcome hook."""
    WEBHOOKS.labels(outcome).inc()
    if latency is not None:
        WEBHOOK_LATENCY.observe(latency)


class QueueDepths(Collector):
    """Notifications and provisioning requests by state, read at scrape time."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self) -> Iterable[GaugeMetricFamily]:
        notifications = GaugeMetricFamily(
            "arrears_notifications_queued", "Notifications by state", labels=["state", "channel"]
        )
        requests = GaugeMetricFamily(
            "arrears_provisioning_queued", "Provisioning requests by state", labels=["state", "adapter"]
        )
        webhooks = GaugeMetricFamily(
            "arrears_webhooks_queued", "Webhook deliveries pending or failed", labels=["status"]
        )
        try:
            with self.db.engine.connect() as conn:
                for state, channel, n in conn.execute(
                    select(NotificationRow.state, NotificationRow.channel, func.count())
                    .where(
                        NotificationRow.state.in_(("pending", "waiting", "sending", "uncertain", "failed"))
                    )
                    .group_by(NotificationRow.state, NotificationRow.channel)
                ):
                    notifications.add_metric([state, channel], n)
                for state, adapter, n in conn.execute(
                    select(ProvisioningRequestRow.state, ProvisioningRequestRow.adapter, func.count())
                    .where(ProvisioningRequestRow.state.in_(("pending", "sent", "failed")))
                    .group_by(ProvisioningRequestRow.state, ProvisioningRequestRow.adapter)
                ):
                    requests.add_metric([state, adapter], n)
                for status, n in conn.execute(
                    select(WebhookDeliveryRow.status, func.count())
                    .where(WebhookDeliveryRow.status.in_(("pending", "failed")))
                    .group_by(WebhookDeliveryRow.status)
                ):
                    webhooks.add_metric([status], n)
        except Exception:  # the database being away must not break the scrape
            return []
        return [notifications, requests, webhooks]


def exposition(extra: Callable[[], bytes] | None = None) -> bytes:
    """The text exposition of every metric of this process."""
    body = generate_latest(REGISTRY)
    return body + (extra() if extra else b"")


_queue_depths: QueueDepths | None = None


def register_queue_depths(db: Database) -> None:
    """Report this database's queues on /metrics (once per process)."""
    global _queue_depths
    unregister_queue_depths()
    _queue_depths = QueueDepths(db)
    REGISTRY.register(_queue_depths)


def unregister_queue_depths() -> None:
    global _queue_depths
    if _queue_depths is not None:
        REGISTRY.unregister(_queue_depths)
        _queue_depths = None
