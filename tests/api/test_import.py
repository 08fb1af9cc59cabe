"""Bulk import over HTTP: JSON Lines and CSV, the report of refused lines, replays, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from arrears.store.tables import ApiWriteRow

from .harness import Api, api_on, problem

JSONL = {"Content-Type": "application/x-ndjson"}
CSV = {"Content-Type": "text/csv"}


def jsonl(*lines: dict[str, Any] | str) -> str:
    """A JSON Lines body; a str is taken as the raw line."""
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"


def import_lines(c: httpx.Client, body: str, **params: str) -> dict[str, Any]:
    r = c.post("/import", content=body.encode(), headers=JSONL, params=params)
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    return report


def import_csv(c: httpx.Client, kind: str, body: str) -> dict[str, Any]:
    r = c.post("/import", content=body.encode(), headers=CSV, params={"type": kind})
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    return report


def refused(report: dict[str, Any]) -> list[tuple[int, str | None, str | None]]:
    return [(e["line"], e["id"], e["field"]) for e in report["errors"]]


def state(c: httpx.Client) -> dict[str, Any]:
    """Every record the provider can read, in full."""
    out: dict[str, Any] = {}
    for path in ("accounts", "invoices", "payments", "disputes", "plans", "cases"):
        listed = c.get(f"/{path}").json()["items"]
        key = "invoice" if path == "disputes" else "id"
        out[path] = [c.get(f"/{path}/{item[key]}").json() for item in listed]
    for account in out["accounts"]:
        out[f"history/{account['id']}"] = c.get(f"/accounts/{account['id']}/history").json()
    return out


# Line numbers matter: the report names them.
FEED = jsonl(
    {
        "type": "account",
        "id": "A1",
        "groups": ["retail"],
        "contacts": [{"name": "Jo Citizen", "email": "jo@example.com"}],
        "services": [{"id": "S1", "type": "mobile"}],
    },
    {"type": "account", "id": "A2"},
    {"type": "invoice", "id": "I1", "account": "A1", "amount": "40.00", "due": "2026-03-20"},
    {"type": "invoice", "id": "I2", "account": "A1", "amount": "10.00"},  # 4: no due date
    {"type": "invoice", "id": "I3", "account": "A1", "amount": 12.5, "due": "2026-03-20"},  # 5: a float
    {"type": "payment", "id": "P1", "account": "A1", "amount": "-5.00"},  # 6: negative
    {"type": "refund", "id": "R1", "account": "A1", "amount": "5.00"},  # 7: no such kind
    '{"type": "invoice", "id": "I4", ',  # 8: cut short
    {"type": "invoice", "id": "I5", "account": "B1", "amount": "1.00", "due": "2026-03-20"},  # 9: bolt's
    {"type": "invoice", "id": "I6", "account": "NOPE", "amount": "1.00", "due": "2026-03-20"},  # 10
    "",  # 11: blank, skipped
    {"type": "payment", "id": "P2", "account": "A1", "amount": "15.00", "received_at": "2026-03-02T10:00"},
    {"type": "service", "account": "A2", "id": "S2", "service_type": "broadband"},
    {"type": "dispute", "invoice": "I1", "amount": "5.00"},
    {"type": "plan", "id": "PL1", "account": "A2", "invoices": []},
    {"type": "case", "id": "C1", "account": "A2"},
    {"type": "flag", "account": "A2", "omit": True, "until": "2026-04-30", "reason": "hardship"},
    {"type": "flag", "account": "B1", "omit": True},  # 18: bolt's account
    {"type": "account", "id": 42},  # 19: not a string
    "[1, 2]",  # 20: not an object
    # 21: half good, half bad: the first contact is fine, the second is not; A1 keeps its contacts.
    {
        "type": "account",
        "id": "A1",
        "contacts": [{"email": "new@example.com"}, {"email": "not-an-address"}],
    },
    {"type": "invoice", "id": "I7", "account": "A2", "amount": "1.00", "due": "2026-03-20", "extra": 1},
)


def test_an_import_with_bad_lines_reports_them_and_keeps_the_good_ones(api: Api) -> None:
    _, a = api.provider("acme")
    _, b = api.provider("bolt")
    assert b.put("/accounts/B1", json={}).status_code == 200

    report = import_lines(a, FEED)
    assert (report["received"], report["applied"], report["refused"]) == (21, 9, 12)
    assert report["errors_omitted"] == 0
    assert refused(report) == [
        (4, "I2", "due"),
        (5, "I3", "amount"),
        (6, "P1", "amount"),
        (7, "R1", "type"),
        (8, None, None),
        (9, "I5", "account"),
        (10, "I6", "account"),
        (18, "B1", "account"),
        (19, None, "id"),
        (20, None, None),
        (21, "A1", "contacts[1].email"),
        (22, "I7", "extra"),
    ]
    messages = {e["line"]: e["message"] for e in report["errors"]}
    assert messages[4] == "is required"
    assert messages[5] == '12.5 must be a string such as "12.50", not a number'
    assert "must not be negative" in messages[6]
    assert "'refund' is not one of: account, service, invoice" in messages[7]
    assert messages[8].startswith("is not valid JSON")
    assert messages[9] == "unknown account 'B1'" and messages[10] == "unknown account 'NOPE'"
    assert messages[18] == "unknown account 'B1'"
    assert messages[19] == "must be a string"
    assert messages[20] == "must be a JSON object"
    assert "not-an-address" in messages[21]
    assert messages[22] == "unknown field"

    # The good lines are stored, as their PUTs would have stored them.
    a1 = a.get("/accounts/A1").json()
    assert (a1["groups"], [s["id"] for s in a1["services"]]) == (["retail"], ["S1"])
    # Line 21 was refused whole: the contacts it would have replaced are still there.
    assert [c["email"] for c in a1["contacts"]] == ["jo@example.com"]
    assert a1["figures"]["total_owing"] == "25.00"
    i1 = a.get("/invoices/I1").json()
    assert (i1["amount"], i1["balance"], i1["disputed"]) == ("40.00", "25.00", "5.00")
    assert i1["issued_at"] == "2026-03-02T12:00:00+11:00"  # when it was received
    p2 = a.get("/payments/P2").json()
    assert (p2["received_at"], p2["allocations"]) == (
        "2026-03-02T10:00:00+11:00",
        [{"invoice": "I1", "amount": "15.00", "at": "2026-03-02T12:00:00+11:00"}],
    )
    assert a.get("/accounts/A2/services/S2").json()["type"] == "broadband"
    assert a.get("/plans/PL1").json()["account"] == "A2"
    assert a.get("/cases/C1").json()["status"] == "open"
    assert a.get("/accounts/A2/flag").json() == {
        "account": "A2",
        "omit": True,
        "until": "2026-04-30",
        "reason": "hardship",
    }
    for path in ("/invoices/I2", "/invoices/I3", "/invoices/I5", "/invoices/I7", "/payments/P1"):
        problem(a.get(path), 404)
    assert b.get("/accounts/B1/flag").json()["omit"] is False  # bolt's account was not flagged

    # The same file again: the same report, the same state, no payment twice.
    before = state(a)
    api.clock.now += timedelta(minutes=30)
    again = import_lines(a, FEED)
    assert {k: again[k] for k in ("received", "applied", "refused")} == {
        "received": 21,
        "applied": 9,
        "refused": 12,
    }
    assert refused(again) == refused(report)
    api.clock.now -= timedelta(minutes=30)  # `as_of` says when an account was looked at
    assert state(a) == before
    assert [p["id"] for p in a.get("/payments").json()["items"]] == ["P2"]
    assert a.get("/invoices/I1").json()["balance"] == "25.00"

    # Each import is one write in the record of writes, made with the importing key.
    with api.db.transaction() as s:
        writes = s.scalars(select(ApiWriteRow).where(ApiWriteRow.path == "/api/v1/import")).all()
        assert [(w.method, w.status) for w in writes] == [("POST", 200), ("POST", 200)]


def test_csv_invoices_import(api: Api) -> None:
    _, a = api.provider("acme")
    assert (
        import_lines(a, jsonl({"type": "account", "id": "A1"}, {"type": "account", "id": "A2"}))["applied"]
        == 2
    )
    body = (
        "id,account,amount,due,issued_at,status\r\n"
        "I1,A1,120.00,2026-03-20,2026-03-01T08:00,\r\n"  # an empty cell leaves the field out
        'I2,A2,"1,000.00",2026-03-20,,open\r\n'  # 3: not an amount
        "I3,A2, 75.50 ,2026-03-25,2026-03-01T08:00:00+00:00,draft\r\n"
        "I4,A1,10.00\r\n"  # 5: cells missing
        "\r\n"
        ",A1,5.00,2026-03-20,,\r\n"  # 7: no id
        "I6,A1,5.00,20/03/2026,,\r\n"  # 8: not a date
    )
    report = import_csv(a, "invoice", body)
    assert (report["received"], report["applied"], report["refused"]) == (6, 2, 4)
    assert refused(report) == [(3, "I2", "amount"), (5, "I4", None), (7, None, "id"), (8, "I6", "due")]
    assert report["errors"][1]["message"] == "has 3 cells; the header has 6"

    assert a.get("/invoices/I1").json() == {
        "id": "I1",
        "account": "A1",
        "amount": "120.00",
        "balance": "120.00",
        "disputed": "0.00",
        "due": "2026-03-20",
        "issued_at": "2026-03-01T08:00:00+11:00",
        "status": "open",
    }
    i3 = a.get("/invoices/I3").json()
    assert (i3["amount"], i3["issued_at"], i3["status"]) == ("75.50", "2026-03-01T19:00:00+11:00", "draft")
    assert [x["id"] for x in a.get("/invoices").json()["items"]] == ["I1", "I3"]
    # Again: nothing changes.
    assert refused(import_csv(a, "invoice", body)) == refused(report)
    assert [x["id"] for x in a.get("/invoices").json()["items"]] == ["I1", "I3"]

    # A list field takes JSON in its cell (and a byte order mark before the header is fine).
    plans = '\ufeffid,account,invoices\nPL1,A1,"[""I1""]"\nPL2,A1,[I1]\n'
    report = import_csv(a, "plan", plans)
    assert refused(report) == [(3, "PL2", "invoices")]
    assert report["errors"][0]["message"].startswith("is not valid JSON")
    assert a.get("/plans/PL1").json()["invoices"] == ["I1"]

    # The kind is required, and the header must name its fields.
    r = a.post("/import", content=body.encode(), headers=CSV)
    assert problem(r, 422)["errors"][0]["field"] == "type"
    r = a.post(
        "/import",
        content=b"id,account,amount,colour\nI9,A1,1.00,red\n",
        headers=CSV,
        params={"type": "invoice"},
    )
    assert [e["field"] for e in problem(r, 422)["errors"]] == ["colour"]
    problem(a.get("/invoices/I9"), 404)
    r = a.post("/import", content=b"account,amount\nA1,1.00\n", headers=CSV, params={"type": "payment"})
    assert [e["field"] for e in problem(r, 422)["errors"]] == ["id"]


def test_an_import_that_makes_an_account_overdue_then_a_payment_line_restores_it(api: Api) -> None:
    _, a = api.provider("acme")
    # Due 31 January: 30 days overdue on 2 March, so the import itself suspends the account.
    report = import_lines(
        a,
        jsonl(
            {"type": "account", "id": "A1", "services": [{"id": "S1", "type": "mobile"}]},
            {"type": "invoice", "id": "I1", "account": "A1", "amount": "100.00", "due": "2026-01-31"},
        ),
    )
    assert report["applied"] == 2
    got = a.get("/accounts/A1").json()
    assert (got["status"], got["stage"], [s["status"] for s in got["services"]]) == (
        "suspended",
        "suspend",
        ["restricted"],
    )

    api.clock.now += timedelta(hours=2)
    report = import_lines(a, jsonl({"type": "payment", "id": "P1", "account": "A1", "amount": "95.00"}))
    assert (report["applied"], report["refused"]) == (1, 0)
    got = a.get("/accounts/A1").json()
    assert (got["status"], got["stage"], got["episode"]) == ("active", "none", None)
    assert [s["status"] for s in got["services"]] == ["active"]
    assert got["figures"]["overdue_balance"] == "5.00"
    restore = [
        line
        for line in a.get("/accounts/A1/history").json()["items"]
        if line["kind"] == "stage" and line.get("to") == "none"
    ]
    assert restore and restore[0]["reason"] == "paid" and restore[0]["actor"].startswith("api:")

    # An account is evaluated once its lines in the batch are in: an overdue invoice with the payment
    # that clears it, in one file, never suspends the account.
    report = import_lines(
        a,
        jsonl(
            {"type": "account", "id": "A2", "services": [{"id": "S2", "type": "mobile"}]},
            {"type": "invoice", "id": "I2", "account": "A2", "amount": "100.00", "due": "2026-01-31"},
            {"type": "payment", "id": "P2", "account": "A2", "amount": "100.00"},
        ),
    )
    assert report["applied"] == 3
    got = a.get("/accounts/A2").json()
    assert (got["status"], got["stage"], got["figures"]["total_owing"]) == ("active", "none", "0.00")
    assert a.get("/accounts/A2/history").json()["episodes"] == []


def test_many_lines_go_in_batches_and_the_report_lists_the_first_thousand_refusals(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    good = [{"type": "account", "id": f"A{i:03d}"} for i in range(520)]
    bad = [{"type": "account"} for _ in range(1010)]
    report = import_lines(a, jsonl(*good[:260], *bad, *good[260:]))
    assert (report["received"], report["applied"], report["refused"]) == (1530, 520, 1010)
    assert len(report["errors"]) == 1000 and report["errors_omitted"] == 10
    assert report["errors"][0] == {"line": 261, "id": None, "field": "id", "message": "is required"}
    ids = [x["id"] for x in a.get("/accounts", params={"limit": 500}).json()["items"]]
    cursor = a.get("/accounts", params={"limit": 500}).json()["next_cursor"]
    ids += [x["id"] for x in a.get("/accounts", params={"limit": 500, "cursor": cursor}).json()["items"]]
    assert ids == [g["id"] for g in good]


def test_another_provider_cannot_see_imported_records(api: Api) -> None:
    _, a = api.provider("acme")
    _, b = api.provider("bolt")
    report = import_lines(a, FEED)
    assert report["applied"] == 9
    for path in ("/accounts/A1", "/invoices/I1", "/payments/P2", "/disputes/I1", "/plans/PL1", "/cases/C1"):
        problem(b.get(path), 404)
    for path in ("accounts", "invoices", "payments", "disputes", "plans", "cases"):
        assert b.get(f"/{path}").json()["items"] == [], path
    # Nor address them in its own import.
    report = import_lines(
        b,
        jsonl(
            {"type": "invoice", "id": "X1", "account": "A1", "amount": "1.00", "due": "2026-03-20"},
            {"type": "dispute", "invoice": "I1", "amount": "1.00"},
            {"type": "service", "account": "A1", "id": "S9"},
        ),
    )
    assert refused(report) == [(1, "X1", "account"), (2, "I1", "invoice"), (3, "S9", "account")]
    assert a.get("/disputes/I1").json()["amount"] == "5.00"


def _chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_an_import_may_be_larger_than_other_bodies_up_to_its_own_limit(database_url: str) -> None:
    with api_on(database_url, max_body=2_000, max_import_body=20_000) as api:
        _, a = api.provider("acme", rules=False)
        lines = jsonl(*({"type": "account", "id": f"A{i:03d}", "groups": ["retail"]} for i in range(150)))
        assert 2_000 < len(lines) < 20_000
        assert import_lines(a, lines)["applied"] == 150
        # Other routes keep theirs.
        problem(a.put("/accounts/B1", json={"groups": ["x" * 2_000]}), 413)

        too_big = jsonl(*({"type": "account", "id": f"B{i:04d}", "groups": ["retail"]} for i in range(400)))
        assert len(too_big) > 20_000
        assert (
            "larger than 20000 bytes"
            in problem(a.post("/import", content=too_big, headers=JSONL), 413)["detail"]
        )
        # Without a Content-Length (chunked), refused as it streams in, with nothing applied.
        r = a.post("/import", content=_chunks(too_big.encode()), headers=JSONL)
        problem(r, 413)
        problem(a.get("/accounts/B0000"), 404)

        # Only JSON Lines and CSV, in UTF-8; the problem names the header.
        for headers in (
            {"Content-Type": "application/json"},
            {"Content-Type": "application/x-ndjson; charset=latin-1"},
            {},
        ):
            r = a.post("/import", content=b'{"type": "account", "id": "Z1"}\n', headers=headers)
            body = problem(r, 415)
            assert body["errors"][0]["field"] == "Content-Type" and "Content-Type" in body["detail"]
        problem(a.get("/accounts/Z1"), 404)
        # Any of the JSON Lines media types will do.
        r = a.post(
            "/import",
            content=b'{"type": "account", "id": "Z1"}\n',
            headers={"Content-Type": "application/jsonl"},
        )
        assert r.json()["applied"] == 1
        # ?type= is for CSV; a JSON line names its own.
        r = a.post(
            "/import", content=b'{"type": "account", "id": "Z2"}\n', headers=JSONL, params={"type": "account"}
        )
        assert problem(r, 422)["errors"][0]["field"] == "type"
        # The platform key manages providers, not their records.
        problem(api.platform.post("/import", content=b"", headers=JSONL), 403)
