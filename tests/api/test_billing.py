"""The billing feed over HTTP: upserts, replays, what an account shows, and tenant isolation."""

from __future__ import annotations

from typing import Any

import httpx

from .harness import Api, problem

ACCOUNTS: dict[str, dict[str, Any]] = {
    "A1": {
        "groups": ["retail"],
        "contacts": [
            {"role": "primary", "name": "Jo Citizen", "email": "jo@example.com", "phone": "+61 412 345 678"}
        ],
        "services": [{"id": "S1", "type": "mobile"}, {"id": "S2", "type": "broadband"}],
    },
    "A2": {"services": [{"id": "S3", "type": "mobile"}]},
    "A3": {"status": "inactive", "groups": ["VIP", "retail"]},
}
INVOICES: dict[str, dict[str, Any]] = {
    "I1": {"account": "A1", "amount": "120.00", "due": "2026-01-15", "issued_at": "2026-01-01T08:00"},
    "I2": {"account": "A1", "amount": "40.00", "due": "2026-03-20", "issued_at": "2026-03-01T08:00:00+11:00"},
    "I3": {"account": "A2", "amount": "75.50", "due": "2026-02-20"},
    "I4": {"account": "A3", "amount": "10.00", "due": "2026-02-01", "status": "void"},
}
PAYMENTS: dict[str, dict[str, Any]] = {
    "P1": {"account": "A1", "amount": "20.00", "received_at": "2026-02-01T10:00"},
    "P2": {"account": "A2", "amount": "5.50", "allocate": False},
    "P3": {"account": "A1", "amount": "30.00", "allocate_to": ["I2"]},
}


def feed(c: httpx.Client) -> None:
    for path, records in (("accounts", ACCOUNTS), ("invoices", INVOICES), ("payments", PAYMENTS)):
        for ext_id, body in records.items():
            r = c.put(f"/{path}/{ext_id}", json=body)
            assert r.status_code == 200, r.text
    assert c.put("/disputes/I3", json={"amount": "5.00"}).status_code == 200
    assert c.put("/plans/PL1", json={"account": "A2", "invoices": ["I3"]}).status_code == 200
    assert c.put("/cases/C1", json={"account": "A3", "status": "open"}).status_code == 200
    assert (
        c.put(
            "/accounts/A2/flag", json={"omit": True, "until": "2026-04-30", "reason": "hardship"}
        ).status_code
        == 200
    )
    assert c.put("/accounts/A1/services/S4", json={"type": "voip", "status": "preactive"}).status_code == 200


def everything(c: httpx.Client) -> dict[str, Any]:
    """Every record the provider can read, in full."""
    out: dict[str, Any] = {}
    for path in ("accounts", "invoices", "payments", "disputes", "plans", "cases"):
        listed = c.get(f"/{path}").json()["items"]
        out[path] = listed
        key = "invoice" if path == "disputes" else "id"
        out[f"{path}/*"] = [c.get(f"/{path}/{item[key]}").json() for item in listed]
    for account in ("A1", "A2", "A3"):
        out[f"history/{account}"] = c.get(f"/accounts/{account}/history").json()
        out[f"flag/{account}"] = c.get(f"/accounts/{account}/flag").json()
    return out


def test_a_feed_replayed_gives_the_same_state(api: Api) -> None:
    _, a = api.provider("acme")
    feed(a)
    first = everything(a)
    api.clock.now = api.clock.now.replace(minute=30)  # replayed a little later
    feed(a)
    # Compared as of the same instant: `as_of` says when an account was looked at.
    api.clock.now = api.clock.now.replace(minute=0)
    assert everything(a) == first

    a1 = a.get("/accounts/A1").json()
    assert a1["groups"] == ["retail"]
    assert a1["contacts"] == [
        {
            "role": "primary",
            "service": None,
            "name": "Jo Citizen",
            "email": "jo@example.com",
            "phone": "+61412345678",
        }
    ]
    # I1 is long overdue: the feed itself suspended A1.
    assert (a1["status"], a1["stage"]) == ("suspended", "suspend")
    assert [(s["id"], s["status"]) for s in a1["services"]] == [
        ("S1", "restricted"),
        ("S2", "restricted"),
        ("S4", "preactive"),
    ]
    # P1 went to the oldest invoice, P3 to I2 as asked; the replay allocated nothing twice.
    i1, i2 = a.get("/invoices/I1").json(), a.get("/invoices/I2").json()
    assert (i1["balance"], i2["balance"]) == ("100.00", "10.00")
    assert i1["issued_at"] == "2026-01-01T08:00:00+11:00"
    p2 = a.get("/payments/P2").json()
    assert (p2["unallocated"], p2["allocations"]) == ("5.50", [])
    assert a.get("/payments/P1").json()["allocations"] == [
        {"invoice": "I1", "amount": "20.00", "at": "2026-03-02T12:00:00+11:00"}
    ]
    assert a.get("/disputes/I3").json() == {"invoice": "I3", "amount": "5.00", "balance": "75.50"}
    assert a.get("/plans/PL1").json() == {
        "id": "PL1",
        "account": "A2",
        "status": "in_progress",
        "invoices": ["I3"],
    }
    assert a.get("/accounts/A2/flag").json() == {
        "account": "A2",
        "omit": True,
        "until": "2026-04-30",
        "reason": "hardship",
    }

    # The same payment id with another amount is refused, and changes nothing.
    r = a.put("/payments/P1", json={"account": "A1", "amount": "25.00"})
    assert problem(r, 422)["errors"][0]["field"] == "payment.id"
    # Filters.
    assert [x["id"] for x in a.get("/accounts?status=inactive").json()["items"]] == ["A3"]
    assert [x["id"] for x in a.get("/accounts?group=retail").json()["items"]] == ["A1", "A3"]
    assert [x["id"] for x in a.get("/invoices?account=A1").json()["items"]] == ["I1", "I2"]
    assert [x["id"] for x in a.get("/invoices?status=void").json()["items"]] == ["I4"]
    assert a.get("/invoices?account=NOPE").json()["items"] == []


def test_an_overdue_account_shows_its_figures_and_projected_suspension(api: Api) -> None:
    _, a = api.provider("acme")
    assert a.put("/accounts/A1", json={"services": [{"id": "S1", "type": "mobile"}]}).status_code == 200
    # Due 20 Feb: 10 days overdue on 2 March; suspension once more than 14 days overdue.
    r = a.put("/invoices/I1", json={"account": "A1", "amount": "100.00", "due": "2026-02-20"})
    assert r.status_code == 200, r.text
    assert (
        a.put("/invoices/I2", json={"account": "A1", "amount": "30.00", "due": "2026-03-30"}).status_code
        == 200
    )
    got = a.get("/accounts/A1").json()
    assert (got["status"], got["stage"], got["exclusions"]) == ("active", "none", [])
    assert got["figures"] == {
        "total_owing": "130.00",
        "overdue_balance": "100.00",
        "days_overdue": 10,
        "disputed": "0.00",
        "unallocated": "0.00",
    }
    assert got["rule_set"] == {"name": "default", "version": 1}
    assert got["projected_suspension"] == "2026-03-07T00:00:00+11:00"
    assert got["episode"] is None
    summary = a.get("/accounts").json()["items"][0]
    assert summary["projected_suspension"] == "2026-03-07T00:00:00+11:00"

    # A dispute covering all but k holds it back: no projection, the exclusion says why.
    assert a.put("/disputes/I1", json={"amount": "100.00"}).status_code == 200
    assert a.put("/disputes/I2", json={"amount": "25.00"}).status_code == 200
    got = a.get("/accounts/A1").json()
    assert (got["exclusions"], got["projected_suspension"]) == (["dispute"], None)
    assert got["figures"]["disputed"] == "125.00"


def test_a_payment_that_clears_the_balance_restores_a_suspended_account(api: Api) -> None:
    _, a = api.provider("acme")
    a.put("/accounts/A1", json={"services": [{"id": "S1", "type": "mobile"}, {"id": "S2", "type": "voip"}]})
    # 30 days overdue at once: the invoice's own PUT suspends the account.
    r = a.put("/invoices/I1", json={"account": "A1", "amount": "100.00", "due": "2026-01-31"})
    assert r.status_code == 200, r.text
    got = a.get("/accounts/A1").json()
    assert (got["status"], got["status_reason"], got["stage"]) == ("suspended", "auto", "suspend")
    assert [s["status"] for s in got["services"]] == ["restricted", "restricted"]
    assert got["episode"]["stage"] == "suspend" and got["projected_suspension"] is None
    # The log adapter confirms when the dispatcher runs; until then the request is pending.
    assert [p["action"] for p in got["services"][0]["pending_provisioning"]] == ["restricted"]

    api.clock.now = api.clock.now.replace(hour=3)
    r = a.put("/payments/P1", json={"account": "A1", "amount": "95.00"})
    assert r.status_code == 200, r.text
    got = a.get("/accounts/A1").json()
    assert (got["status"], got["stage"], got["episode"]) == ("active", "none", None)
    assert [s["status"] for s in got["services"]] == ["active", "active"]
    assert got["figures"]["overdue_balance"] == "5.00"

    history = a.get("/accounts/A1/history").json()
    [episode] = history["episodes"]
    assert episode["end_reason"] is not None and episode["rule_set"] == {"name": "default", "version": 1}
    kinds = [(line["kind"], line.get("to")) for line in history["items"]]
    assert ("account_status", "suspended") in kinds and ("account_status", "active") in kinds
    restore = [line for line in history["items"] if line["kind"] == "stage" and line.get("to") == "none"]
    assert restore and restore[0].get("reason") == "paid", history["items"]


def test_cursor_pagination_walks_every_item_once(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    ids = [f"A{i:02d}" for i in range(23)]
    for ext in ids:
        assert a.put(f"/accounts/{ext}", json={}).status_code == 200
        assert (
            a.put(
                f"/invoices/I-{ext}", json={"account": ext, "amount": "1.00", "due": "2026-04-01"}
            ).status_code
            == 200
        )
    for path, expected in (("accounts", ids), ("invoices", [f"I-{x}" for x in ids])):
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 5}
            if cursor:
                params["cursor"] = cursor
            body = a.get(f"/{path}", params=params).json()
            seen += [item["id"] for item in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == expected
        assert pages == 5


def test_a_provider_never_sees_or_changes_another_providers_records(api: Api) -> None:
    _, a = api.provider("acme")
    _, b = api.provider("bolt")
    feed(b)
    before = everything(b)

    # Every endpoint answers 404 for B's ids.
    for path in (
        "/accounts/A1",
        "/accounts/A1/history",
        "/accounts/A1/flag",
        "/accounts/A1/services/S1",
        "/invoices/I1",
        "/payments/P1",
        "/disputes/I3",
        "/plans/PL1",
        "/cases/C1",
    ):
        problem(a.get(path), 404)
    problem(a.put("/accounts/A1/services/S1", json={"type": "mobile"}), 404)
    problem(a.put("/accounts/A1/flag", json={"omit": True}), 404)
    problem(a.put("/disputes/I1", json={"amount": "1.00"}), 404)
    problem(a.post("/payments/P2/allocate"), 404)
    # B's accounts are unknown to A's feed too.
    assert problem(a.put("/invoices/X1", json={"account": "A1", "amount": "1.00", "due": "2026-03-10"}), 422)
    assert problem(a.put("/payments/X1", json={"account": "A1", "amount": "1.00"}), 422)
    assert problem(a.put("/plans/X1", json={"account": "A2"}), 422)
    assert problem(a.put("/cases/X1", json={"account": "A3"}), 422)
    for path in ("accounts", "invoices", "payments", "disputes", "plans", "cases"):
        assert a.get(f"/{path}").json()["items"] == [], path
    assert a.get("/provider/keys").json()["items"][0]["provider_id"] != b.get("/provider").json()["id"]

    # The same ids in A are A's own records: B's stay as they were.
    assert a.put("/accounts/A1", json={"status": "cancelled"}).status_code == 200
    assert (
        a.put("/invoices/I1", json={"account": "A1", "amount": "1.00", "due": "2026-03-10"}).status_code
        == 200
    )
    assert a.put("/payments/P1", json={"account": "A1", "amount": "1.00"}).status_code == 200
    assert [x["id"] for x in a.get("/accounts").json()["items"]] == ["A1"]
    assert a.get("/invoices/I1").json()["amount"] == "1.00"
    assert everything(b) == before


def test_concurrent_writes_all_land(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, a = api.provider("acme")

    def account(i: int) -> tuple[int, int]:
        ext = f"C{i}"
        r1 = a.put(f"/accounts/{ext}", json={"services": [{"id": f"S{i}", "type": "mobile"}]})
        r2 = a.put(f"/invoices/I{i}", json={"account": ext, "amount": "99.00", "due": "2026-01-10"})
        return r1.status_code, r2.status_code

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(account, range(24)))
    assert results == [(200, 200)] * 24
    listed = a.get("/accounts", params={"status": "suspended"}).json()["items"]
    assert len(listed) == 24
