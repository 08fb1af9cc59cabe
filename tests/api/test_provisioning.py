"""Provisioning over the API: a webhook peer that answers 202 and calls back with a signed
confirmation, confirmation by a provider's key, and the queue as a provider sees it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from arrears.bootstrap import provisioning_dispatcher
from arrears.engine.service import run_provisioning
from arrears.provisioning.service import set_route
from arrears.provisioning.webhook import SIGNATURE_HEADER, sign
from arrears.store.tables import ProviderRow, ProvisioningRequestRow
from peers.webhook_peer import Reply, WebhookPeer

from .harness import Api, problem

SECRET = "a-webhook-secret-of-some-length"


def overdue_account(client: object, now: datetime) -> None:
    due = (now - timedelta(days=40)).date()
    put = client.put  # type: ignore[attr-defined]
    assert put("/accounts/A1", json={"services": [{"id": "S1", "type": "nbn"}]}).status_code == 200
    invoice = {
        "account": "A1",
        "amount": "80.00",
        "due": due.isoformat(),
        "issued_at": (now - timedelta(days=60)).isoformat(),
    }
    r = put("/invoices/I1", json=invoice)
    assert r.status_code == 200, r.text


def the_request(api: Api) -> ProvisioningRequestRow:
    with api.db.transaction() as s:
        return s.scalars(select(ProvisioningRequestRow)).one()


def test_a_webhook_peer_accepts_then_confirms_by_signed_callback(api: Api) -> None:
    api.clock.now = datetime.now(UTC).replace(microsecond=0)  # the peer signs with the real clock
    pid, client = api.provider("isp")
    callback = f"{api.url}/api/v1/callbacks/provisioning"
    with WebhookPeer(SECRET, Reply(202, "queued"), callback_url=callback) as peer:
        with api.db.transaction() as s:
            config = {"url": f"http://{peer.netloc}/provision", "secret": SECRET}
            set_route(s, s.get_one(ProviderRow, pid), "*", "webhook", config, actor="test", now=api.clock())
        overdue_account(client, api.clock())
        assert the_request(api).state == "pending"
        run_provisioning(api.db, provisioning_dispatcher(), api.clock())
        deadline = time.monotonic() + 10
        while the_request(api).state != "confirmed":
            assert time.monotonic() < deadline, f"not confirmed: {the_request(api).state}, {peer.callbacks}"
            time.sleep(0.05)
    # Read once the peer has closed: the request is confirmed while the peer's
    # callback thread may still be recording the answer it got.
    [sent] = peer.callbacks
    assert sent.status == 200
    [listed] = client.get("/provisioning-requests").json()["items"]
    assert (listed["state"], listed["action"], listed["adapter"]) == ("confirmed", "restricted", "webhook")


def test_callbacks_with_a_bad_signature_or_an_unknown_request_are_refused(api: Api) -> None:
    api.clock.now = datetime.now(UTC).replace(microsecond=0)
    pid, client = api.provider("isp")
    with api.db.transaction() as s:
        config = {"url": "http://127.0.0.1:9/provision", "secret": SECRET}
        set_route(s, s.get_one(ProviderRow, pid), "*", "webhook", config, actor="test", now=api.clock())
    overdue_account(client, api.clock())
    req = the_request(api)
    anon = api.client()
    body = json.dumps({"request_id": req.id, "key": req.key, "state": "confirmed"}).encode()
    forged = sign(body, "not-the-secret-at-all-0000", api.clock())
    r = anon.post("/callbacks/provisioning", content=body, headers={SIGNATURE_HEADER: forged})
    problem(r, 401)
    wrong_key = json.dumps({"request_id": req.id, "key": "something-else", "state": "confirmed"}).encode()
    r = anon.post(
        "/callbacks/provisioning",
        content=wrong_key,
        headers={SIGNATURE_HEADER: sign(wrong_key, SECRET, api.clock())},
    )
    problem(r, 404)
    assert the_request(api).state == "pending"


def test_a_provider_confirms_its_own_requests_only(api: Api) -> None:
    _, client = api.provider("isp")
    _, other = api.provider("other")
    overdue_account(client, api.clock())
    req = the_request(api)
    with api.db.transaction() as s:
        s.execute(update(ProvisioningRequestRow).values(state="sent"))
    problem(other.post(f"/provisioning-requests/{req.id}/confirm", json={}), 404)
    assert other.get("/provisioning-requests").json()["items"] == []
    r = client.post(f"/provisioning-requests/{req.id}/confirm", json={"state": "confirmed"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "confirmed"
    problem(client.post(f"/provisioning-requests/{req.id}/confirm", json={}), 409)  # already confirmed
    problem(client.post(f"/provisioning-requests/{req.id}/confirm", json={"state": "maybe"}), 422)
