"""Every endpoint, read from the OpenAPI schema, refuses another provider's ids.

Provider B has one of everything (accounts, services, invoices, payments,
disputes, plans, cases, a rule set, a provisioning request, a webhook endpoint
and its delivery, keys). Provider A's key then calls every operation whose path
names a record, with B's ids: each must answer 404 (403 for the platform's own
routes), list filters by B's account must find nothing, and B's records must
be as they were. A new route with an id in its path fails this test until it is
listed here, so no endpoint escapes the check.
"""

from __future__ import annotations

from typing import Any

import httpx

from .harness import Api, problem
from .test_billing import everything, feed

# Per path parameter: which of B's records it names (filled in from B's data below).
# `None`: the parameter is not an id of a provider's record (an event name, a channel):
# the same value addresses A's own configuration, which the other tests cover.
NOT_AN_ID = None

# Operations that create or replace a record under the caller's own ids: with B's ids,
# A simply makes A's own record (checked at the end: B's stay as they were).
UPSERTS = {
    ("put", "/api/v1/accounts/{account_id}"),
    ("put", "/api/v1/invoices/{invoice_id}"),
    ("put", "/api/v1/payments/{payment_id}"),
    ("put", "/api/v1/plans/{plan_id}"),
    ("put", "/api/v1/cases/{case_id}"),
    ("put", "/api/v1/rule-sets/{name}"),
    ("put", "/api/v1/event-mappings/{event}"),
    ("put", "/api/v1/templates/{event}/{channel}"),
    ("get", "/api/v1/templates/{event}/{channel}"),
}
# Operations a provider key may not call at all.
PLATFORM_ONLY = {("get", "/api/v1/providers/{provider}"), ("patch", "/api/v1/providers/{provider}")}

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("put", "/api/v1/accounts/{account_id}/services/{service_id}"): {"type": "mobile"},
    ("put", "/api/v1/accounts/{account_id}/flag"): {"omit": True, "reason": "not yours"},
    ("put", "/api/v1/disputes/{invoice_id}"): {"amount": "1.00"},
    ("post", "/api/v1/accounts/{account_id}/actions"): {"action": "suspend", "reason": "not yours"},
    ("post", "/api/v1/provisioning-requests/{request_id}/confirm"): {"state": "confirmed"},
    ("patch", "/api/v1/webhook-endpoints/{endpoint_id}"): {"enabled": False},
    ("post", "/api/v1/templates/{event}/{channel}/preview"): {"subject": "Hello", "text": "Hello"},
}
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    # The preview renders for a real account: B's is not there for A.
    ("post", "/api/v1/templates/{event}/{channel}/preview"): {"account": "A1"},
}
LISTS_BY_ACCOUNT = ("accounts", "invoices", "payments", "disputes", "plans", "cases", "notifications")


def b_world(api: Api, b: httpx.Client) -> dict[str, str]:
    """B's records, and the value of each path parameter that names one of them."""
    feed(b)
    assert b.put(
        "/rule-sets/bolt-only",
        json={
            "min_overdue_amount": "1.00",
            "min_overdue_days": 1,
            "restore_threshold": "0",
            "applies_to_groups": ["vip"],
        },
    ).is_success
    r = b.post("/webhook-endpoints", json={"url": "http://127.0.0.1:9/events", "events": []})
    assert r.status_code == 201, r.text
    endpoint = r.json()["id"]
    # A suspension by hand: a provisioning request, and an event for the endpoint.
    r = b.post("/accounts/A1/actions", json={"action": "suspend", "reason": "test"})
    assert r.status_code == 200, r.text
    [request] = b.get("/provisioning-requests", params={"account": "A1"}).json()["items"][:1]
    deliveries = b.get("/webhook-deliveries").json()["items"]
    assert deliveries, "the suspension should have queued a delivery"
    return {
        "account_id": "A1",
        "service_id": "S1",
        "invoice_id": "I3",  # disputed, so the dispute routes find it for B
        "payment_id": "P2",
        "plan_id": "PL1",
        "case_id": "C1",
        "name": "bolt-only",
        "request_id": str(request["id"]),
        "endpoint_id": str(endpoint),
        "delivery_id": str(deliveries[0]["id"]),
        "prefix": b.get("/provider/keys").json()["items"][0]["prefix"],
        "provider": str(b.get("/provider").json()["id"]),
    }


def operations(a: httpx.Client) -> list[tuple[str, str, list[str]]]:
    """(method, path, path parameters) of every operation with a parameter in its path."""
    spec = a.get("/openapi.json").json()
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            if names:
                out.append((method, path, names))
    return out


def test_every_endpoint_refuses_another_providers_ids(api: Api) -> None:
    _, a = api.provider("acme")
    _, b = api.provider("bolt")
    ids = b_world(api, b)
    params_of_b: dict[str, str | None] = {**ids, "event": NOT_AN_ID, "channel": NOT_AN_ID}
    before = everything(b)
    b_requests = b.get("/provisioning-requests").json()
    b_endpoints = b.get("/webhook-endpoints").json()
    b_deliveries = b.get("/webhook-deliveries").json()
    b_keys = b.get("/provider/keys").json()

    checked = 0
    for method, path, names in operations(a):
        unknown = [n for n in names if n not in params_of_b]
        assert not unknown, f"{method.upper()} {path}: add {unknown} to this test's ids of B"
        if (method, path) in UPSERTS:
            continue
        values = {n: params_of_b[n] or ("auto_suspend" if n == "event" else "email") for n in names}
        url = path.removeprefix("/api/v1").format(**values)
        kwargs: dict[str, Any] = {"params": QUERIES.get((method, path), {})}
        if method in ("put", "post", "patch"):
            kwargs["json"] = BODIES.get((method, path), {})
        r = a.request(method.upper(), url, **kwargs)
        expected = 403 if (method, path) in PLATFORM_ONLY else 404
        problem(r, expected)
        checked += 1
    assert checked >= 20, f"only {checked} operations were checked"

    # Lists filtered by B's account find nothing of B's.
    for name in LISTS_BY_ACCOUNT:
        r = a.get(f"/{name}", params={"account": "A1"})
        assert r.status_code == 200 and r.json()["items"] == [], (name, r.text)
    assert a.get("/provisioning-requests", params={"account": "A1"}).json()["items"] == []
    assert a.get("/webhook-deliveries").json()["items"] == []
    assert a.get("/webhook-endpoints").json()["items"] == []

    # And B's records are exactly as they were.
    assert everything(b) == before
    assert b.get("/provisioning-requests").json() == b_requests
    assert b.get("/webhook-endpoints").json() == b_endpoints
    assert b.get("/webhook-deliveries").json() == b_deliveries
    assert b.get("/provider/keys").json() == b_keys
