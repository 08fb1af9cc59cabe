"""Webhook endpoints and deliveries over the API: registering, validation naming the field,
isolation between providers, and deliveries to a real receiver listed and retried."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from arrears.webhooks.dispatcher import WebhookDispatcher
from peers.event_receiver import EventReceiver, Reply

from .harness import Api, fields, problem

SECRET = "whsec_the-receivers-own-secret"


def overdue_account(client: httpx.Client, now: datetime, account: str = "A1") -> None:
    """An account 40 days overdue: the API's write suspends it at once."""
    r = client.put(f"/accounts/{account}", json={"services": [{"id": f"{account}-S1", "type": "nbn"}]})
    assert r.status_code == 200, r.text
    invoice = {
        "account": account,
        "amount": "80.00",
        "due": (now - timedelta(days=40)).date().isoformat(),
        "issued_at": (now - timedelta(days=60)).isoformat(),
    }
    r = client.put(f"/invoices/{account}-I1", json=invoice)
    assert r.status_code == 200, r.text


def register(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/webhook-endpoints", json={"url": "https://crm.example/arrears", **body})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def test_an_endpoint_is_registered_listed_changed_and_disabled(api: Api) -> None:
    _, client = api.provider("isp")
    created = register(client, events=["account.suspended", "account.restored"], description="CRM")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) >= 40  # generated, shown once
    assert (created["url"], created["events"], created["enabled"]) == (
        "https://crm.example/arrears",
        ["account.suspended", "account.restored"],
        True,
    )
    assert created["created_at"] == "2026-03-02T12:00:00+11:00"
    given = register(client, url="http://billing.example:8080/hooks", secret=SECRET)
    assert given["secret"] is None and given["events"] == []  # every event

    listed = client.get("/webhook-endpoints").json()["items"]
    assert [e["id"] for e in listed] == [created["id"], given["id"]]
    assert all("secret" not in e for e in listed)
    one = client.get(f"/webhook-endpoints/{created['id']}").json()
    assert "secret" not in one and one["description"] == "CRM"

    r = client.patch(
        f"/webhook-endpoints/{created['id']}", json={"events": [], "secret": SECRET + "-rotated"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["events"] == [] and "secret" not in r.json()

    r = client.delete(f"/webhook-endpoints/{created['id']}")
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert [e["enabled"] for e in client.get("/webhook-endpoints").json()["items"]] == [False, True]
    r = client.patch(f"/webhook-endpoints/{created['id']}", json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True


def test_bad_input_is_refused_naming_the_field(api: Api) -> None:
    _, client = api.provider("isp")
    post = client.post
    assert fields(post("/webhook-endpoints", json={"url": "ftp://crm.example/x"})) == {
        "endpoint.url": "must start with http:// or https://, not ftp://"
    }
    assert "endpoint.url" in fields(post("/webhook-endpoints", json={}))
    assert "endpoint.url" in fields(post("/webhook-endpoints", json={"url": "https://"}))
    short = fields(post("/webhook-endpoints", json={"url": "https://a.example", "secret": "short"}))
    assert short == {"endpoint.secret": "must be at least 16 characters (it has 5)"}
    env = fields(
        post("/webhook-endpoints", json={"url": "https://a.example", "secret": "env:ARREARS_PLATFORM_KEY"})
    )
    assert "operators" in env["endpoint.secret"]
    unknown = fields(
        post(
            "/webhook-endpoints",
            json={"url": "https://a.example", "events": ["account.suspended", "account.eaten"]},
        )
    )
    assert (
        list(unknown) == ["endpoint.events[1]"]
        and "'account.eaten' is not an event type" in unknown["endpoint.events[1]"]
    )
    assert fields(post("/webhook-endpoints", json={"url": "https://a.example", "colour": "red"})) == {
        "endpoint.colour": "unknown field"
    }
    endpoint = register(client)
    assert "endpoint.url" in fields(client.patch(f"/webhook-endpoints/{endpoint['id']}", json={"url": None}))
    assert "status" in fields(client.get("/webhook-deliveries", params={"status": "lost"}))
    assert "cursor" in fields(client.get("/webhook-deliveries", params={"cursor": "not-ours"}))
    assert client.get("/webhook-endpoints").json()["items"] == [
        {k: v for k, v in endpoint.items() if k != "secret"}
    ]  # nothing else was created


def test_another_providers_ids_answer_404(api: Api) -> None:
    _, isp = api.provider("isp")
    _, other = api.provider("other")
    endpoint = register(isp, secret=SECRET)
    overdue_account(isp, api.clock())
    [delivery] = isp.get("/webhook-deliveries").json()["items"][:1]
    eid = endpoint["id"]
    problem(other.get(f"/webhook-endpoints/{eid}"), 404)
    problem(other.patch(f"/webhook-endpoints/{eid}", json={"description": "mine now"}), 404)
    problem(other.delete(f"/webhook-endpoints/{eid}"), 404)
    problem(other.get("/webhook-deliveries", params={"endpoint": eid}), 404)
    problem(other.post(f"/webhook-deliveries/{delivery['id']}/retry"), 404)
    assert other.get("/webhook-endpoints").json()["items"] == []
    assert other.get("/webhook-deliveries").json()["items"] == []
    assert isp.get(f"/webhook-endpoints/{eid}").json()["enabled"] is True


def test_deliveries_are_listed_paged_and_a_failed_one_retried(api: Api) -> None:
    _, client = api.provider("isp")
    with EventReceiver(SECRET, clock=api.clock) as receiver:
        crm = register(client, url=receiver.url, secret=SECRET, events=["account.suspended"])
        audit = register(client, url=receiver.url, secret=SECRET)
        overdue_account(client, api.clock())

        items = client.get("/webhook-deliveries").json()["items"]
        assert len(items) == 1 + 3  # crm: account.suspended; audit: opened, restricted, suspended
        mine = client.get("/webhook-deliveries", params={"endpoint": crm["id"]}).json()["items"]
        [pending] = mine
        assert (pending["status"], pending["attempts"], pending["event_type"]) == (
            "pending",
            0,
            "account.suspended",
        )
        assert pending["next_attempt_at"] == "2026-03-02T12:00:00+11:00"
        assert (
            pending["payload"]["data"]["account"] == "A1" and pending["payload"]["id"] == pending["event_id"]
        )
        same_event = client.get("/webhook-deliveries", params={"event": pending["event_id"]}).json()["items"]
        assert {d["endpoint"] for d in same_event} == {crm["id"], audit["id"]}

        # Pages, oldest first, each delivery once.
        seen, cursor = [], None
        while True:
            page = client.get(
                "/webhook-deliveries", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            )
            seen += [d["id"] for d in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == [d["id"] for d in items] and seen == sorted(seen)

        # The receiver says the CRM hook is gone: that endpoint is disabled, its delivery failed.
        client.delete(f"/webhook-endpoints/{audit['id']}")
        receiver.reply_next(Reply(410, "no such hook"))
        dispatcher = WebhookDispatcher(api.db, worker="test", clock=api.clock)
        dispatcher.run()
        [failed] = client.get(
            "/webhook-deliveries", params={"status": "failed", "endpoint": crm["id"]}
        ).json()["items"]
        assert (failed["attempts"], failed["response_status"], failed["next_attempt_at"]) == (1, 410, None)
        assert "410" in failed["last_error"]
        assert client.get(f"/webhook-endpoints/{crm['id']}").json()["enabled"] is False
        disabled = client.get("/webhook-deliveries", params={"endpoint": audit["id"]}).json()["items"]
        assert {(d["status"], d["last_error"]) for d in disabled} == {("failed", "endpoint disabled")}

        r = client.post(f"/webhook-deliveries/{failed['id']}/retry")
        assert "disabled" in problem(r, 409)["detail"]
        client.patch(f"/webhook-endpoints/{crm['id']}", json={"enabled": True})
        api.clock.now += timedelta(minutes=5)
        r = client.post(f"/webhook-deliveries/{failed['id']}/retry")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["next_attempt_at"]) == ("pending", "2026-03-02T12:05:00+11:00")
        assert (
            "only a failed delivery"
            in problem(client.post(f"/webhook-deliveries/{failed['id']}/retry"), 409)["detail"]
        )

        dispatcher.run()
        dispatcher.close()
        [done] = client.get("/webhook-deliveries", params={"status": "delivered"}).json()["items"]
        assert (done["id"], done["attempts"], done["response_status"]) == (failed["id"], 2, 200)
        assert done["delivered_at"] == "2026-03-02T12:05:00+11:00"
        attempts = receiver.attempts
    assert [a.status for a in attempts] == [410, 200]
    assert {a.id for a in attempts} == {failed["event_id"]}
    assert receiver.rejected == []
