"""Keys, providers, problems, limits and the record of writes, over HTTP."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from arrears.api.auth import RateLimit
from arrears.store.tables import ApiKeyRow, ApiWriteRow

from .harness import PLATFORM_KEY, Api, api_on, problem


def test_the_platform_creates_providers_and_each_gets_its_own_key(api: Api) -> None:
    pa, a = api.provider("acme", rules=False, locale="en_AU", quiet_hours=None, sms=True)
    pb, b = api.provider("bolt", rules=False, currency="GBP", timezone="Europe/London")
    assert pa != pb
    mine = a.get("/provider").json()
    assert (mine["id"], mine["key"], mine["currency"], mine["sms"]) == (pa, "acme", "AUD", True)
    assert (mine["locale"], mine["quiet_hours"]) == ("en_AU", None)
    assert b.get("/provider").json()["key"] == "bolt"

    # The platform reads and changes them, by id or key.
    assert api.platform.get(f"/providers/{pb}").json()["timezone"] == "Europe/London"
    r = api.platform.patch("/providers/bolt", json={"name": "Bolt Broadband", "send_time": "10:00"})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["send_time"]) == ("Bolt Broadband", "10:00")
    assert [p["key"] for p in api.platform.get("/providers").json()["items"]] == ["acme", "bolt"]
    problem(api.platform.get("/providers/nope"), 404)

    # A key is taken once; a bad timezone is named.
    r = api.platform.post("/providers", json={"key": "acme", "timezone": "UTC", "currency": "AUD"})
    assert problem(r, 409)["errors"][0]["field"] == "provider.key"
    r = api.platform.post("/providers", json={"key": "x", "timezone": "Mars/Base", "currency": "AUD"})
    assert problem(r, 422)["errors"][0]["field"] == "provider.timezone"


def test_keys_are_required_valid_and_of_the_right_kind(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    problem(api.client().get("/accounts"), 401)
    assert api.client().get("/accounts").headers["www-authenticate"].startswith("Bearer")
    problem(api.client("arr_12345678_not-a-real-secret").get("/accounts"), 401)
    problem(api.client("Basic something").get("/provider"), 401)
    problem(httpx.get(f"{api.url}/api/v1/provider", headers={"Authorization": "Basic eDp5"}), 401)
    # A provider key is not a platform key, and the platform key is not a provider's.
    problem(a.post("/providers", json={"key": "mine", "timezone": "UTC", "currency": "AUD"}), 403)
    problem(a.get("/providers"), 403)
    problem(api.platform.get("/accounts"), 403)
    problem(api.platform.put("/accounts/A1", json={}), 403)


def test_a_provider_creates_lists_and_revokes_its_keys(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    _, b = api.provider("bolt", rules=False)
    r = a.post("/provider/keys", json={"name": "billing system"})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["api_key"].startswith(f"arr_{second['prefix']}_")
    c = api.client(second["api_key"])
    assert c.get("/provider").json()["key"] == "acme"
    listed = a.get("/provider/keys").json()["items"]
    assert [k["name"] for k in listed] == ["first key", "billing system"]
    assert all("api_key" not in k and "hash" not in k for k in listed)

    # Another provider cannot see or revoke it.
    problem(b.delete(f"/provider/keys/{second['prefix']}"), 404)
    assert c.get("/provider").status_code == 200

    r = a.delete(f"/provider/keys/{second['prefix']}")
    assert r.status_code == 200 and r.json()["revoked_at"], r.text
    problem(c.get("/provider"), 401)
    assert a.get("/provider").status_code == 200  # the other key still works
    # Only a hash is stored.
    with api.db.transaction() as s:
        hashes = s.scalars(select(ApiKeyRow.hash)).all()
    assert second["api_key"] not in hashes


def test_errors_are_problem_details_naming_the_field(api: Api) -> None:
    _, a = api.provider("acme")
    assert a.put("/accounts/A1", json={}).status_code == 200
    invoice = {"account": "A1", "amount": "10.00", "due": "2026-03-10"}

    def errors(path: str, body: object) -> dict[str, str]:
        return {e["field"]: e["message"] for e in problem(a.put(path, json=body), 422)["errors"]}

    assert "not a number" in errors("/invoices/I1", {**invoice, "amount": 10.5})["invoice.amount"]
    assert "invoice.account" in errors("/invoices/I1", {"amount": "1.00", "due": "2026-03-10"})
    assert "invoice.status" in errors("/invoices/I1", {**invoice, "status": "overdue"})
    assert "unknown account" in errors("/invoices/I1", {**invoice, "account": "NOPE"})["invoice.account"]
    assert "decimal places" in errors("/invoices/I1", {**invoice, "amount": "1.234"})["invoice.amount"]
    assert "invoice.due" in errors("/invoices/I1", {**invoice, "due": "soon"})
    assert "invoice.colour" in errors("/invoices/I1", {**invoice, "colour": "red"})
    assert "invoice.id" in errors("/invoices/I1", {**invoice, "id": "I2"})
    assert "payment.amount" in errors("/payments/P1", {"account": "A1", "amount": 5})
    bad_contact = {"contacts": [{"role": "primary", "email": "nobody"}]}
    assert "account.contacts[0].email" in errors("/accounts/A1", bad_contact)
    assert "account.services[0].status" in errors(
        "/accounts/A1", {"services": [{"id": "S1", "status": "on"}]}
    )
    body = problem(
        a.put("/invoices/I1", content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    assert body["errors"][0]["field"] == "invoice"
    assert "cursor" in {e["field"] for e in problem(a.get("/accounts?cursor=zzz"), 422)["errors"]}
    assert "limit" in {e["field"] for e in problem(a.get("/accounts?limit=0"), 422)["errors"]}
    problem(a.get("/no/such/thing"), 404)


def test_a_body_over_the_limit_is_refused(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    big = {"groups": ["g" * 1000] * 1100}  # over 1 MiB
    problem(a.put("/accounts/A1", json=big), 413)

    def chunks() -> object:
        for _ in range(1100):
            yield b" " * 1024

    # Without a Content-Length (chunked), the limit holds while reading.
    r = a.put("/accounts/A1", content=chunks(), headers={"content-type": "application/json"})  # type: ignore[arg-type]
    problem(r, 413)
    problem(a.get("/accounts/A1"), 404)


def test_each_key_is_rate_limited(sqlite_url: str) -> None:
    with api_on(sqlite_url, rate_limit=RateLimit(per_second=0.5, burst=3)) as api:
        _, a = api.provider("acme", rules=False)  # the platform key spent one request
        for _ in range(3):
            assert a.get("/provider").status_code == 200
        r = a.get("/provider")
        problem(r, 429)
        assert 1 <= int(r.headers["retry-after"]) <= 2
        # Another key has its own bucket.
        assert api.platform.get("/providers").status_code == 200


def test_every_write_is_recorded_with_its_key(api: Api) -> None:
    pa, a = api.provider("acme")
    assert a.put("/accounts/A1", json={}).status_code == 200
    assert (
        a.put("/invoices/I1", json={"account": "A1", "amount": "1.5", "due": "2026-03-10"}).status_code == 200
    )
    problem(a.put("/invoices/I2", json={"account": "NOPE", "amount": "1.00", "due": "2026-03-10"}), 422)
    problem(a.put("/accounts/NOPE/flag", json={"omit": True}), 404)
    assert a.get("/accounts/A1").status_code == 200  # reads are not recorded
    problem(api.client().put("/accounts/A2", json={}), 401)  # no key: nothing to record it with
    with api.db.transaction() as s:
        writes = s.scalars(select(ApiWriteRow).order_by(ApiWriteRow.id)).all()
        keys = {k.id: k for k in s.scalars(select(ApiKeyRow))}
        seen = [(w.method, w.path, w.status, w.provider_id, keys[w.key_id].provider_id) for w in writes]
        platform_keys = {keys[w.key_id].prefix for w in writes if w.provider_id is None}
    assert seen == [
        ("POST", "/api/v1/providers", 201, None, None),
        ("PUT", "/api/v1/accounts/A1", 200, pa, pa),
        ("PUT", "/api/v1/invoices/I1", 200, pa, pa),
        ("PUT", "/api/v1/invoices/I2", 422, pa, pa),
        ("PUT", "/api/v1/accounts/NOPE/flag", 404, pa, pa),
    ]
    assert platform_keys == {"env"}  # $ARREARS_PLATFORM_KEY stands as a key row of its own
    assert PLATFORM_KEY not in str(seen)


def test_the_schema_and_docs_are_served(api: Api) -> None:
    r = httpx.get(f"{api.url}/api/v1/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    for path in ("/api/v1/accounts/{account_id}", "/api/v1/invoices/{invoice_id}", "/api/v1/providers"):
        assert path in schema["paths"], path
    assert schema["components"]["securitySchemes"]
    assert httpx.get(f"{api.url}/api/v1/docs").status_code == 200
