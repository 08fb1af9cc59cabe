"""Configuration over HTTP: rule set versions, event mappings, templates, and operator actions."""

from __future__ import annotations

from typing import Any

from .harness import Api, fields, problem

RULES: dict[str, Any] = {
    "min_overdue_amount": "50.00",
    "min_overdue_days": 14,
    "restore_threshold": "10.00",
    "applies_to_groups": ["retail"],
    "priority": 5,
    "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
    "stages": [{"name": "restrict", "min_overdue_days": 14, "status": "restricted"}],
}


def test_a_rule_set_put_twice_has_two_versions(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    r1 = a.put("/rule-sets/retail", json=RULES)
    assert r1.status_code == 200, r1.text
    v1 = r1.json()
    assert (v1["name"], v1["version"], v1["effective_at"]) == ("retail", 1, "2026-03-02T12:00:00+11:00")
    assert v1["body"]["stages"] == RULES["stages"]
    later = {**RULES, "min_overdue_amount": "80.00", "effective_at": "2026-04-01T00:00"}
    r2 = a.put("/rule-sets/retail", json=later)
    assert r2.status_code == 200, r2.text
    assert (r2.json()["version"], r2.json()["effective_at"]) == (2, "2026-04-01T00:00:00+11:00")
    assert a.put("/rule-sets/default", json={**RULES, "applies_to_groups": []}).status_code == 200

    listed = a.get("/rule-sets").json()["items"]
    assert [(i["name"], i["version"]) for i in listed] == [("default", 1), ("retail", 2)]
    versions = a.get("/rule-sets/retail").json()
    assert versions["name"] == "retail"
    assert [(v["version"], v["body"]["min_overdue_amount"]) for v in versions["versions"]] == [
        (1, "50.00"),
        (2, "80.00"),
    ]
    problem(a.get("/rule-sets/nothing"), 404)
    # Another provider sees none of them.
    _, b = api.provider("globex", rules=False)
    assert b.get("/rule-sets").json()["items"] == []
    problem(b.get("/rule-sets/retail"), 404)


def test_a_bad_rule_set_names_the_field(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    bad_stage = {**RULES, "stages": [{"name": "s", "min_overdue_days": 3, "status": "paused"}]}
    assert "rule_set.stages[0].status" in fields(a.put("/rule-sets/retail", json=bad_stage))
    float_amount = {**RULES, "min_overdue_amount": 50.0}
    assert "rule_set.min_overdue_amount" in fields(a.put("/rule-sets/retail", json=float_amount))
    assert "rule_set.min_overdue_days" in fields(
        a.put("/rule-sets/retail", json={k: v for k, v in RULES.items() if k != "min_overdue_days"})
    )
    assert "rule_set.name" in fields(a.put("/rule-sets/retail", json={**RULES, "name": "other"}))
    assert "rule_set.effective_at" in fields(
        a.put("/rule-sets/retail", json={**RULES, "effective_at": "next tuesday"})
    )
    # Nothing refused was stored.
    assert a.get("/rule-sets").json()["items"] == []


def test_event_mappings_round_trip(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    due = [
        {"channels": ["email"], "recipients": ["billing"], "days_before": 3},
        {"channels": ["note"], "days_before": 0},
    ]
    r = a.put("/event-mappings/invoice_due", json=due)
    assert r.status_code == 200, r.text
    assert r.json()["event"] == "invoice_due" and r.json()["enabled"] is True
    assert [(m["key"], m["channels"], m["days_before"]) for m in r.json()["mappings"]] == [
        ("invoice_due#0", ["email"], 3),
        ("invoice_due#1", ["note"], 0),
    ]
    assert a.put("/event-mappings/auto_suspend", json={"channels": ["note"]}).status_code == 200
    listed = {e["event"]: e for e in a.get("/event-mappings").json()["items"]}
    assert set(listed) == {
        "invoice_due",
        "invoice_overdue",
        "suspension_warning",
        "auto_suspend",
        "auto_unsuspend",
    }
    assert listed["invoice_due"]["mappings"] == r.json()["mappings"]
    assert listed["auto_suspend"]["enabled"] is True
    assert listed["auto_unsuspend"] == {"event": "auto_unsuspend", "enabled": False, "mappings": []}
    # Fewer mappings than before: the one no longer given is disabled.
    r = a.put("/event-mappings/invoice_due", json=[{"channels": ["email"], "days_before": 5}])
    assert [(m["key"], m["enabled"]) for m in r.json()["mappings"]] == [
        ("invoice_due#0", True),
        ("invoice_due#1", False),
    ]
    assert a.put("/event-mappings/auto_suspend", json={"enabled": False}).json()["enabled"] is False


def test_bad_event_mappings_name_the_field(api: Api) -> None:
    _, a = api.provider("acme", rules=False)
    r = a.put("/event-mappings/auto_suspend", json={"channels": ["sms"]})
    assert "SMS" in fields(r)["events.auto_suspend.channels"]
    assert "events.auto_suspend" in fields(a.put("/event-mappings/auto_suspend", json=[{}, {}]))
    assert "events.invoice_due[1].days_after" in fields(
        a.put("/event-mappings/invoice_due", json=[{"days_before": 1}, {"days_after": 2}])
    )
    assert "events.holiday" in fields(a.put("/event-mappings/holiday", json={}))
    assert a.get("/event-mappings").json()["items"][3]["mappings"] == []
    # With an SMS subscription the same channel is taken.
    _, b = api.provider("globex", rules=False, sms=True)
    r = b.put("/event-mappings/auto_suspend", json={"channels": ["sms"]})
    assert r.status_code == 200, r.text
    assert r.json()["mappings"][0]["channels"] == ["sms"]


def _overdue_account(c: Any) -> None:
    body = {"contacts": [{"name": "Jo Citizen", "phone": "+61 412 345 678"}], "services": [{"id": "S1"}]}
    assert c.put("/accounts/A1", json=body).status_code == 200
    invoice = {"account": "A1", "amount": "120.00", "due": "2026-02-20"}
    assert c.put("/invoices/I1", json=invoice).status_code == 200


def test_templates(api: Api) -> None:
    _, a = api.provider("acme", sms=True)
    default = a.get("/templates/auto_suspend/email").json()
    assert default["own"] is False and default["subject"] and "{{" in default["text"]

    sms = {"text": "Hi {{ contact.name }}, account {{ account.id }} owes {{ account.overdue_balance }}."}
    r = a.put("/templates/invoice_overdue/sms", json=sms)
    assert r.status_code == 200, r.text
    saved = r.json()
    assert (saved["own"], saved["text"], saved["subject"]) == (True, sms["text"], None)
    assert saved["sample"]["text"].startswith("Hi ") and "{{" not in saved["sample"]["text"]
    assert saved["sample"]["sms"]["segments"] == 1 and saved["sample"]["sms"]["encoding"] == "GSM-7"
    got = a.get("/templates/invoice_overdue/sms").json()
    assert got["own"] is True and got["text"] == sms["text"]
    assert a.get("/templates/invoice_overdue/email").json()["own"] is False

    # A template that does not render is refused with its field and line, and not stored.
    broken = {"subject": "Overdue", "text": "Dear {{ contact.name }},\nyou owe {{ account.overdue_balance"}
    errors = fields(a.put("/templates/invoice_overdue/email", json=broken))
    assert "line 2" in errors["template.text"], errors
    assert a.get("/templates/invoice_overdue/email").json()["own"] is False
    assert "template.subject" in fields(a.put("/templates/invoice_overdue/email", json={"text": "x"}))
    assert "template.subject" in fields(
        a.put("/templates/invoice_overdue/sms", json={"subject": "no", "text": "x"})
    )
    assert "template.text" in fields(a.put("/templates/invoice_overdue/email", json={"subject": "s"}))
    assert "channel" in fields(a.get("/templates/invoice_overdue/fax"))
    assert "event" in fields(a.get("/templates/birthday/email"))

    # Preview: the saved template for a real account, and an unsaved one.
    _overdue_account(a)
    r = a.post("/templates/invoice_overdue/sms/preview", params={"account": "A1"})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "Hi Jo Citizen, account A1 owes A$120.00."
    unsaved = {"subject": "{{ account.id }}", "text": "Owing {{ account.total_owing }}"}
    r = a.post("/templates/invoice_overdue/email/preview", params={"account": "A1"}, json=unsaved)
    assert (r.json()["subject"], r.json()["text"]) == ("A1", "Owing A$120.00")
    assert r.json()["sms"] is None
    assert a.post("/templates/auto_suspend/email/preview").json()["subject"]  # the default, a sample
    assert "template.text" in fields(
        a.post("/templates/invoice_overdue/sms/preview", json={"text": "{% if %}"})
    )
    problem(a.post("/templates/invoice_overdue/sms/preview", params={"account": "NOPE"}), 404)
    # Another provider's account is not there for it; its templates are the defaults.
    _, b = api.provider("globex")
    problem(b.post("/templates/invoice_overdue/sms/preview", params={"account": "A1"}), 404)
    assert b.get("/templates/invoice_overdue/sms").json()["own"] is False


def test_manual_suspend_and_restore(api: Api) -> None:
    _, a = api.provider("acme")
    assert a.put("/accounts/A1", json={"services": [{"id": "S1"}]}).status_code == 200
    r = a.post("/accounts/A1/actions", json={"action": "suspend", "reason": "fraud check"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["status_reason"]) == ("suspended", "manual")
    assert [s["status"] for s in r.json()["services"]] == ["suspended"]
    assert a.get("/accounts/A1").json()["status"] == "suspended"

    r = a.post("/accounts/A1/actions", json={"action": "restore", "reason": "cleared"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert [s["status"] for s in r.json()["services"]] == ["active"]

    history = a.get("/accounts/A1/history").json()["items"]
    actions = [(h["action"], h["reason"]) for h in history if h["kind"] == "operator_action"]
    assert actions == [("manual_suspend", "fraud check"), ("manual_restore", "cleared")]
    assert all(h["actor"].startswith("api:") for h in history if h["kind"] == "operator_action")

    assert "action.reason" in fields(a.post("/accounts/A1/actions", json={"action": "suspend"}))
    assert "action.reason" in fields(
        a.post("/accounts/A1/actions", json={"action": "suspend", "reason": " "})
    )
    assert "action.action" in fields(a.post("/accounts/A1/actions", json={"action": "delete", "reason": "x"}))
    assert a.get("/accounts/A1").json()["status"] == "active"


def test_another_provider_gets_404_on_an_account_action(api: Api) -> None:
    _, a = api.provider("acme")
    _, b = api.provider("globex")
    assert a.put("/accounts/A1", json={}).status_code == 200
    problem(b.post("/accounts/A1/actions", json={"action": "suspend", "reason": "mine?"}), 404)
    problem(a.post("/accounts/NOPE/actions", json={"action": "suspend", "reason": "x"}), 404)
    assert a.get("/accounts/A1").json()["status"] == "active"
    history = a.get("/accounts/A1/history").json()["items"]
    assert [h for h in history if h["kind"] == "operator_action"] == []
