"""The forecast (who will be suspended when) and the notifications, over HTTP."""

from __future__ import annotations

from .harness import Api, fields, problem


def test_the_forecast_lists_accounts_heading_for_suspension_soonest_first(api: Api) -> None:
    _, client = api.provider("isp")
    for account, due in (("SOON", "2026-02-20"), ("LATER", "2026-02-27"), ("PAID", "2026-02-20")):
        assert (
            client.put(
                f"/accounts/{account}", json={"services": [{"id": f"{account}-S", "type": "nbn"}]}
            ).status_code
            == 200
        )
        invoice = {
            "account": account,
            "amount": "90.00",
            "due": due,
            "issued_at": "2026-02-01T00:00:00+11:00",
        }
        assert client.put(f"/invoices/{account}-I", json=invoice).status_code == 200
    assert client.put("/payments/P1", json={"account": "PAID", "amount": "90.00"}).status_code == 200

    later = client.get("/forecast", params={"until": "2026-04-01T00:00"}).json()
    assert [i["account"] for i in later["items"]] == ["SOON", "LATER"]
    soon = later["items"][0]
    assert soon["projected_suspension"] == client.get("/accounts/SOON").json()["projected_suspension"]
    assert soon["projected_suspension"].endswith("+11:00")  # shown in the provider's time
    first = soon["projected_suspension"]
    just_before = client.get("/forecast", params={"until": first[:16]}).json()["items"]
    assert [i["account"] for i in just_before] == ["SOON"]
    assert fields(client.get("/forecast", params={"until": "next week"})) == {
        "until": "'next week' is not an instant"
    }


def test_notifications_are_listed_filtered_and_kept_to_their_provider(api: Api) -> None:
    _, client = api.provider("isp")
    _, other = api.provider("other")
    assert client.put("/accounts/A1", json={"services": [{"id": "S1", "type": "nbn"}]}).status_code == 200
    invoice = {
        "account": "A1",
        "amount": "90.00",
        "due": "2026-01-10",
        "issued_at": "2026-01-01T00:00:00+11:00",
    }
    assert client.put("/invoices/I1", json=invoice).status_code == 200  # suspended at once: a note

    [notice] = client.get("/notifications").json()["items"]
    assert (notice["account"], notice["event"], notice["channel"], notice["service"]) == (
        "A1",
        "auto_suspend",
        "note",
        "S1",
    )
    assert "provider" not in notice
    assert client.get("/notifications", params={"event": "invoice_due"}).json()["items"] == []
    assert len(client.get("/notifications", params={"state": notice["state"]}).json()["items"]) == 1
    problem(client.get("/notifications", params={"state": "lost"}), 422)
    assert other.get("/notifications").json()["items"] == []
    assert other.get("/forecast", params={"until": "2027-01-01"}).json()["items"] == []
