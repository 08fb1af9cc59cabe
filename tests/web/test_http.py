"""The console over plain HTTP (no browser): sign-in, sessions, CSRF, roles, and the forms
working without JavaScript. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from arrears.store.tables import (
    AccountRow,
    ConsoleSessionRow,
    ConsoleUserRow,
    NotificationRow,
    ProvisioningRequestRow,
)
from arrears.web.users import disable_user

from .harness import OVERDUE, PASSWORD, SUSPENDED, Console, hidden


def _status(console: Console, ext_id: str) -> tuple[str, str | None]:
    with console.db.transaction() as s:
        row = s.scalar(select(AccountRow).where(AccountRow.ext_id == ext_id))
        assert row is not None
        return row.status, row.status_reason


def test_pages_ask_for_a_sign_in_and_come_back_after_it(console: Console) -> None:
    c = console.client()
    r = c.get("/accounts?status=active")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/accounts%3Fstatus%3Dactive"
    form = c.get(r.headers["location"])
    assert 'name="next" value="/accounts?status=active"' in form.text
    r = c.post(
        "/login",
        data={
            "username": "olivia",
            "password": PASSWORD,
            "csrf_token": hidden(form.text, "csrf_token"),
            "next": "/accounts?status=active",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/accounts?status=active"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert c.get("/accounts?status=active").status_code == 200


def test_a_wrong_password_or_unknown_user_gets_the_same_answer(console: Console) -> None:
    c = console.client()
    for username, password in (("olivia", "not the password"), ("nobody", PASSWORD)):
        form = c.get("/login")
        r = c.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": hidden(form.text, "csrf_token")},
        )
        assert r.status_code == 401
        assert "Wrong username or password." in r.text
        assert "arrears_session" not in r.headers.get("set-cookie", "")
    assert c.get("/").status_code == 303  # still signed out


def test_guessing_a_password_is_slowed_down(console: Console) -> None:
    c = console.client()

    def sign_in(username: str, password: str) -> httpx.Response:
        form = c.get("/login")
        data = {"username": username, "password": password, "csrf_token": hidden(form.text, "csrf_token")}
        return c.post("/login", data=data)

    for _ in range(10):
        assert sign_in("olivia", "a guess").status_code == 401
    # The eleventh try is refused before the password is looked at, even the right one.
    r = sign_in("Olivia", PASSWORD)
    assert r.status_code == 429 and "Too many sign-in attempts: try again in 1 min." in r.text
    assert "arrears_session" not in r.headers.get("set-cookie", "")
    # Another person is not held up by it: the tight limit is per username (per address it is looser).
    _, csrf = console.signed_in("vera")
    assert csrf


def test_sign_in_without_its_form_token_is_refused(console: Console) -> None:
    c = console.client()
    r = c.post("/login", data={"username": "olivia", "password": PASSWORD})
    assert r.status_code == 403
    assert c.get("/").status_code == 303


def test_a_change_without_the_csrf_token_is_refused(console: Console) -> None:
    c, _ = console.signed_in("olivia")
    r = c.post(f"/accounts/{OVERDUE}/manual", data={"action": "suspend", "reason": "no token"})
    assert r.status_code == 403
    r = c.post(
        f"/accounts/{OVERDUE}/manual",
        data={"action": "suspend", "reason": "wrong token", "csrf_token": "forged"},
    )
    assert r.status_code == 403
    assert _status(console, OVERDUE) == ("active", None)


def test_a_viewer_reads_but_cannot_act(console: Console) -> None:
    c, csrf = console.signed_in("vera")
    page = c.get(f"/accounts/{OVERDUE}")
    assert page.status_code == 200
    assert "Suspend account" not in page.text and "Set omit flag" not in page.text
    activity = c.get("/activity")
    assert "Retry" not in activity.text and "Confirm" not in activity.text
    # A crafted POST with the viewer's own valid token.
    r = c.post(
        f"/accounts/{OVERDUE}/manual", data={"action": "suspend", "reason": "crafted", "csrf_token": csrf}
    )
    assert r.status_code == 403
    assert "only an operator" in r.text
    assert _status(console, OVERDUE) == ("active", None)
    with console.db.transaction() as s:
        failed = s.scalar(select(NotificationRow.id).where(NotificationRow.state == "failed"))
    r = c.post(f"/activity/notifications/{failed}/retry", data={"csrf_token": csrf})
    assert r.status_code == 403


def test_an_operator_suspends_and_restores_with_plain_forms(console: Console) -> None:
    c, csrf = console.signed_in("olivia")
    r = c.post(
        f"/accounts/{OVERDUE}/manual",
        data={"action": "suspend", "reason": "customer asked to pause", "csrf_token": csrf},
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/accounts/{OVERDUE}?done=suspend"
    assert _status(console, OVERDUE) == ("suspended", "manual")
    page = c.get(r.headers["location"]).text
    assert "Account suspended by hand." in page
    assert "Manual suspend: “customer asked to pause”" in page
    assert "console:olivia" in page

    r = c.post(
        f"/accounts/{OVERDUE}/manual",
        data={"action": "restore", "reason": "paused by mistake", "csrf_token": csrf},
    )
    assert r.status_code == 303
    assert _status(console, OVERDUE) == ("active", None)


def test_an_action_without_a_reason_is_refused_naming_the_field(console: Console) -> None:
    c, csrf = console.signed_in("olivia")
    r = c.post(f"/accounts/{OVERDUE}/manual", data={"action": "suspend", "reason": "  ", "csrf_token": csrf})
    assert r.status_code == 422
    assert "reason: is required" in r.text
    assert _status(console, OVERDUE) == ("active", None)


def test_htmx_gets_the_account_panel_back(console: Console) -> None:
    c, csrf = console.signed_in("olivia")
    r = c.post(
        f"/accounts/{OVERDUE}/manual",
        data={"action": "suspend", "reason": "by htmx"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<div id="account"')
    assert "suspended (manual)" in r.text and "<html" not in r.text


def test_omit_flag_and_groups(console: Console) -> None:
    c, csrf = console.signed_in("olivia")
    r = c.post(
        f"/accounts/{OVERDUE}/flag",
        data={"omit": "set", "until": "2026-03-31", "reason": "hardship review", "csrf_token": csrf},
    )
    assert r.status_code == 303
    page = c.get(f"/accounts/{OVERDUE}").text
    assert "set until 2026-03-31: hardship review" in page
    assert "omit flag" in page.lower() and "Clear omit flag" in page
    # What holds the account back, in words rather than the code `omit_flag`.
    assert "<dt>Held back by</dt><dd>the omit flag</dd>" in page
    r = c.post(
        f"/accounts/{OVERDUE}/flag", data={"omit": "set", "until": "31/03", "reason": "x", "csrf_token": csrf}
    )
    assert r.status_code == 422 and "until: &#39;31/03&#39; is not a date" in r.text

    r = c.post(
        f"/accounts/{OVERDUE}/groups",
        data={
            "change": "add",
            "group": "Hardship",
            "reason": "on the hardship programme",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 303
    assert "Hardship" in c.get("/accounts?group=Hardship").text
    r = c.post(
        f"/accounts/{OVERDUE}/groups",
        data={"change": "remove", "group": "Gold", "reason": "tidy", "csrf_token": csrf},
    )
    assert r.status_code == 422 and "the account is not in group" in r.text


def test_search_and_filters(console: Console) -> None:
    c, _ = console.signed_in("vera")
    by_name = c.get("/accounts", params={"q": "ALICE"}).text
    assert OVERDUE in by_name and SUSPENDED not in by_name
    by_email = c.get("/accounts", params={"q": "dan@example"}).text
    assert SUSPENDED in by_email and OVERDUE not in by_email
    suspended = c.get("/accounts", params={"status": "suspended"}).text
    assert SUSPENDED in suspended and OVERDUE not in suspended
    assert "A-1002" in c.get("/accounts", params={"group": "VIP"}).text
    assert c.get("/accounts", params={"status": "asleep"}).status_code == 422


def test_operators_retry_notices_and_settle_provisioning(console: Console) -> None:
    c, csrf = console.signed_in("olivia")
    with console.db.transaction() as s:
        failed = s.scalar(select(NotificationRow.id).where(NotificationRow.state == "failed"))
        sent = s.scalar(select(ProvisioningRequestRow.id).where(ProvisioningRequestRow.state == "sent"))
    page = c.get("/activity", params={"notice_state": "failed"}).text
    assert "550 5.1.1 mailbox unavailable" in page and f"Retry notification {failed}" in page
    assert '<input type="hidden" name="notice_state" value="failed">' in page  # the filter stays
    r = c.post(f"/activity/notifications/{failed}/retry", data={"csrf_token": csrf, "notice_state": "failed"})
    assert r.status_code == 303 and "done=retry" in r.headers["location"]
    r = c.post("/activity/notifications/987654/cancel", data={"csrf_token": csrf})
    assert r.status_code == 404 and "There is no notification 987654." in r.text
    r = c.post("/activity/provisioning/987654/confirm", data={"csrf_token": csrf})
    assert r.status_code == 404 and "There is no provisioning request 987654." in r.text
    r = c.post(f"/activity/provisioning/{sent}/fail", data={"csrf_token": csrf, "reason": ""})
    assert r.status_code == 409 and "reason: is required" in r.text
    r = c.post(f"/activity/provisioning/{sent}/confirm", data={"csrf_token": csrf})
    assert r.status_code == 303
    with console.db.transaction() as s:
        assert s.get_one(NotificationRow, failed).state == "pending"
        assert s.get_one(ProvisioningRequestRow, sent).state == "confirmed"
    # A second retry is refused with the reason.
    r = c.post(f"/activity/notifications/{failed}/retry", data={"csrf_token": csrf})
    assert r.status_code == 409 and "only failed, uncertain can be retried" in r.text


def test_sign_out_and_disabling_end_sessions(console: Console) -> None:
    c, csrf = console.signed_in("olivia")
    r = c.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.get("/").status_code == 303

    c2, _ = console.signed_in("ada")
    with console.db.transaction() as s:
        disable_user(s, "ada", console.clock())
    assert c2.get("/").status_code == 303
    form = c2.get("/login")
    r = c2.post(
        "/login",
        data={"username": "ada", "password": PASSWORD, "csrf_token": hidden(form.text, "csrf_token")},
    )
    assert r.status_code == 401


def test_sessions_expire_when_idle(console: Console) -> None:
    c, _ = console.signed_in("olivia")
    console.clock.now += timedelta(hours=11)
    assert c.get("/").status_code == 200  # and the idle expiry moves on
    console.clock.now += timedelta(hours=11)
    assert c.get("/").status_code == 200
    console.clock.now += timedelta(hours=13)
    assert c.get("/").status_code == 303
    # A day after it ended, the next sign-in (of anyone) deletes the row.
    console.clock.now += timedelta(days=1, minutes=1)
    console.signed_in("vera")
    with console.db.transaction() as s:
        users = s.scalars(
            select(ConsoleUserRow.username).join(
                ConsoleSessionRow, ConsoleSessionRow.user_id == ConsoleUserRow.id
            )
        ).all()
    assert users == ["vera"]


def test_a_platform_user_picks_a_provider(console: Console) -> None:
    c = console.client()
    form = c.get("/login")
    c.post(
        "/login",
        data={"username": "paula", "password": PASSWORD, "csrf_token": hidden(form.text, "csrf_token")},
    )
    r = c.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/provider"
    choose = c.get("/provider")
    assert "Acme Mobile (acme)" in choose.text
    r = c.post(
        "/provider",
        data={"provider": str(console.provider_id), "csrf_token": hidden(choose.text, "csrf_token")},
    )
    assert r.status_code == 303
    assert "Acme Mobile" in c.get("/").text


def test_another_providers_account_is_not_found(console: Console) -> None:
    r = httpx.post(
        f"{console.url}/api/v1/providers",
        json={"key": "other", "timezone": "Europe/London", "currency": "GBP"},
        headers={"Authorization": "Bearer arr_platform-test-key-from-the-environment"},
    )
    key = r.json()["api_key"]
    r = httpx.put(
        f"{console.url}/api/v1/accounts/THEIRS",
        json={"contacts": [{"name": "Theirs"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    c, _ = console.signed_in("olivia")
    assert c.get("/accounts/THEIRS").status_code == 404
    assert "No account matches." in c.get("/accounts", params={"q": "THEIRS"}).text


def test_the_api_is_unaffected(console: Console) -> None:
    r = httpx.get(f"{console.url}/api/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    paths = httpx.get(f"{console.url}/api/v1/openapi.json").json()["paths"]
    assert all(p.startswith("/api/v1/") for p in paths)
    page = httpx.get(f"{console.url}/nothing-here")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    css = httpx.get(f"{console.url}/static/console.css")
    assert css.status_code == 200 and "focus-visible" in css.text
    # Malformed input: a page for the console, a problem for the API.
    c, csrf = console.signed_in("ada")
    bad = c.post("/events/invoice_due/first/switch", data={"csrf_token": csrf})
    assert bad.status_code == 404 and "There is no such page." in bad.text
    assert bad.headers["content-type"].startswith("text/html")
    api = httpx.get(f"{console.url}/api/v1/accounts", params={"limit": "many"})
    assert api.status_code in (401, 422) and api.headers["content-type"].startswith(
        "application/problem+json"
    )
