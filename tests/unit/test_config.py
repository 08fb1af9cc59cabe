"""Operator configuration into domain objects; every error names its field (config.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from arrears.config import (
    ConfigError,
    check_timezone,
    mapping_body,
    mapping_from_body,
    parse_mappings,
    parse_rule_set,
)
from arrears.domain.events import EventKind
from arrears.domain.model import ContactRole, ServiceStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE = {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}


def rules(currency: str = "AUD", **kw: Any) -> Any:
    return parse_rule_set({**BASE, **kw}, currency=currency, effective_at=T0)


def rules_error(currency: str = "AUD", **kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        rules(currency, **kw)
    return info.value


def events_error(raw: Any, *, sms: bool = True) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_mappings(raw, sms=sms, since=T0)
    return info.value


# --------------------------------------------------------------------------- rule sets


def test_a_full_rule_set() -> None:
    r = rules(
        name="retail",
        priority=3,
        applies_to_groups=["retail"],
        amount_basis="overdue_balance",
        resuspend_days=7,
        windows=[
            {"days": ["mon", "fri"], "start": "09:00", "end": "17:30"},
            {"days": ["sat"], "start": "22:00", "end": "00:00"},
        ],
        holidays={"country": "AU", "subdivision": "NSW", "closure_dates": ["2026-12-24"]},
        excluded_groups=["VIP", {"group": "staff", "reason": "our own"}],
        stages=[
            {
                "name": "suspend",
                "min_overdue_days": 30,
                "status": "suspended",
                "min_overdue_amount": "100.00",
            },
            {"name": "restrict", "min_overdue_days": 14, "action": "bar_outgoing"},
        ],
        restore_when_excluded=False,
    )
    assert (r.name, r.priority, r.applies_to_groups, r.amount_basis, r.resuspend_days) == (
        "retail",
        3,
        frozenset({"retail"}),
        "overdue_balance",
        7,
    )
    assert (r.min_overdue_amount, r.restore_threshold, r.min_overdue_days) == (
        Decimal("50.00"),
        Decimal("10.00"),
        14,
    )
    assert [(sorted(w.days), w.start, w.end) for w in r.windows] == [
        ([0, 4], time(9), time(17, 30)),
        ([5], time(22), time(0)),
    ]
    assert (r.holiday_country, r.holiday_subdivision, r.closure_dates) == (
        "AU",
        "NSW",
        frozenset({date(2026, 12, 24)}),
    )
    assert r.excluded_groups == {"VIP": "", "staff": "our own"}
    assert [(s.name, s.status, s.provisioning_action, r.stage_amount(s)) for s in r.ladder] == [
        ("restrict", ServiceStatus.RESTRICTED, "bar_outgoing", Decimal("50.00")),
        ("suspend", ServiceStatus.SUSPENDED, "suspended", Decimal("100.00")),
    ]
    assert r.restore_when_excluded is False and r.effective_at == T0


def test_defaults() -> None:
    r = rules()
    assert (r.name, r.amount_basis, r.resuspend_days, r.windows, r.stages, r.restore_when_excluded) == (
        "default",
        "total_owing",
        0,
        (),
        (),
        True,
    )
    assert [(s.name, s.min_overdue_days, s.status) for s in r.ladder] == [
        ("suspend", 14, ServiceStatus.RESTRICTED)
    ]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        (
            {
                "stages": [
                    {"name": "a", "min_overdue_days": 1},
                    {"name": "b", "min_overdue_days": 2, "status": "barred"},
                ]
            },
            "rules.stages[1].status",
        ),
        (
            {"stages": [{"name": "a", "min_overdue_days": 1}, {"name": "a", "min_overdue_days": 2}]},
            "rules.stages[1].name",
        ),
        (
            {"stages": [{"name": "a", "min_overdue_days": 5}, {"name": "b", "min_overdue_days": 5}]},
            "rules.stages",
        ),
        (
            {"stages": [{"name": "a", "min_overdue_days": 1, "min_overdue_amount": "5.001"}]},
            "rules.stages[0].min_overdue_amount",
        ),
        ({"stages": [{"name": "a", "min_overdue_days": -1}]}, "rules.stages[0].min_overdue_days"),
        ({"stages": [{"min_overdue_days": 1}]}, "rules.stages[0].name"),
        ({"windows": [{"days": ["mon"], "start": "25:00", "end": "10:00"}]}, "rules.windows[0].start"),
        ({"windows": [{"days": ["mon"], "start": "10:00", "end": "09:00"}]}, "rules.windows[0].end"),
        (
            {"windows": [{"days": ["mon", "funday"], "start": "09:00", "end": "17:00"}]},
            "rules.windows[0].days[1]",
        ),
        ({"windows": [{"days": [], "start": "09:00", "end": "17:00"}]}, "rules.windows[0].days"),
        ({"holidays": {"country": "XX"}}, "rules.holidays.country"),
        ({"holidays": {"country": "AU", "subdivision": "XX"}}, "rules.holidays.subdivision"),
        ({"holidays": {"subdivision": "NSW"}}, "rules.holidays.country"),
        ({"holidays": {"closure_dates": ["2026-02-30"]}}, "rules.holidays.closure_dates[0]"),
        ({"min_overdue_days": -1}, "rules.min_overdue_days"),
        ({"resuspend_days": -1}, "rules.resuspend_days"),
        ({"amount_basis": "balance"}, "rules.amount_basis"),
        ({"restore_threshold": "1.005"}, "rules.restore_threshold"),
        ({"min_overdue_amount": "-5"}, "rules.min_overdue_amount"),
        ({"min_overdue_amount": 50.0}, "rules.min_overdue_amount"),
        ({"restore_threshold": 10.5}, "rules.restore_threshold"),
        ({"bogus": 1}, "rules.bogus"),
    ],
)
def test_rule_set_errors_name_the_field(kw: dict[str, Any], field: str) -> None:
    err = rules_error(**kw)
    assert err.field == field, str(err)
    assert str(err).startswith(f"{field}: ")
    assert err.message


def test_a_missing_required_field_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        parse_rule_set(
            {"min_overdue_days": 14, "restore_threshold": "10.00"}, currency="AUD", effective_at=T0
        )
    assert info.value.field == "rules.min_overdue_amount"
    with pytest.raises(ConfigError) as info:
        parse_rule_set([], currency="AUD", effective_at=T0)
    assert info.value.field == "rules"
    with pytest.raises(ConfigError) as info:
        parse_rule_set({**BASE, "stages": [{}]}, currency="AUD", effective_at=T0, prefix="rule_sets[2]")
    assert info.value.field.startswith("rule_sets[2].stages[0].")


def test_decimals_too_many_for_the_currency() -> None:
    assert rules("JPY", min_overdue_amount="5000", restore_threshold="0").min_overdue_amount == Decimal(
        "5000"
    )
    assert rules_error("JPY", min_overdue_amount="50.5").field == "rules.min_overdue_amount"
    assert rules_error("AUD", restore_threshold="0.001").field == "rules.restore_threshold"


@pytest.mark.parametrize("value", [None, ["50.00"], {"amount": "50.00"}])
def test_an_amount_of_the_wrong_type_names_the_amount_field(value: object) -> None:
    """The error for `min_overdue_amount: null` (or a list) comes from pydantic's union
    `str | int` and reads `rules.min_overdue_amount.str`: the union member's name is added to
    the path (config.raise_validation dropped only members whose name holds "[" and ",";
    fixed in 2e249b6)."""
    assert rules_error(min_overdue_amount=value).field == "rules.min_overdue_amount"


def test_an_excluded_group_of_the_wrong_shape_names_the_entry() -> None:
    """Same cause for `excluded_groups: [str | {group, reason}]`: `rules.excluded_groups[0].str`."""
    field = rules_error(excluded_groups=[{"grp": "VIP"}]).field
    assert field in ("rules.excluded_groups[0]", "rules.excluded_groups[0].group"), field


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_amount_is_refused(value: bool) -> None:
    """`min_overdue_amount: yes` in YAML is True; pydantic's lax `str | int` turns it into 1
    before parse_amount (which refuses booleans) saw it, so the rule set silently got 1.00
    (fixed in 2e249b6: StrictStr | StrictInt)."""
    assert rules_error(min_overdue_amount=value).field == "rules.min_overdue_amount"


def test_an_absurd_amount_is_a_config_error() -> None:
    """`restore_threshold: "1e30"` raises decimal.InvalidOperation out of parse_rule_set
    (money.parse_amount's quantize), not a ConfigError naming the field (fixed in 2e249b6)."""
    assert rules_error(restore_threshold="1e30").field == "rules.restore_threshold"


# --------------------------------------------------------------------------- event mappings


def test_mappings_parse_with_keys_defaults_and_since() -> None:
    got = parse_mappings(
        {
            "auto_suspend": {
                "channels": ["email", "sms"],
                "recipients": ["service"],
                "after_provisioning": True,
            },
            "auto_unsuspend": {"enabled": False},
            "invoice_due": [{"days_before": 3, "channels": ["email"]}, {"channels": ["note"]}],
            "suspension_warning": [{"hours_before": 24, "channels": ["sms"], "enforce": True}],
            "invoice_overdue": None,
        },
        sms=True,
        since=T0,
    )
    [suspend] = got[EventKind.AUTO_SUSPEND]
    assert (
        suspend.key,
        suspend.enabled,
        suspend.channels,
        suspend.recipients,
        suspend.after_provisioning,
    ) == (
        "auto_suspend",
        True,
        ("email", "sms"),
        (ContactRole.SERVICE,),
        True,
    )
    assert suspend.since == T0
    assert got[EventKind.AUTO_UNSUSPEND][0].enabled is False
    assert [(m.key, m.days_before, m.roles) for m in got[EventKind.INVOICE_DUE]] == [
        ("invoice_due#0", 3, (ContactRole.PRIMARY,)),
        ("invoice_due#1", 0, (ContactRole.PRIMARY,)),
    ]
    [warning] = got[EventKind.SUSPENSION_WARNING]
    assert (warning.key, warning.hours_before, warning.enforce) == ("suspension_warning#0", 24, True)
    # A multi-event given as one mapping (here empty) is its first, enabled one.
    [overdue] = got[EventKind.INVOICE_OVERDUE]
    assert (overdue.key, overdue.enabled, overdue.days_after) == ("invoice_overdue#0", True, 0)
    assert parse_mappings(None, sms=False, since=T0) == {}
    # The stored body reads back as the same mapping.
    assert mapping_from_body(warning.key, "suspension_warning", mapping_body(warning), T0) == warning


def test_sms_without_the_subscription_is_refused_naming_the_channels() -> None:
    err = events_error({"auto_suspend": {"channels": ["email", "sms"]}}, sms=False)
    assert err.field == "events.auto_suspend.channels"
    assert "SMS" in err.message and "subscription" in err.message
    err = events_error({"suspension_warning": [{"hours_before": 1, "channels": ["sms"]}]}, sms=False)
    assert err.field == "events.suspension_warning[0].channels"
    # Email alone is fine without it.
    assert parse_mappings({"auto_suspend": {"channels": ["email"]}}, sms=False, since=T0)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"auto_sunspend": {}}, "events.auto_sunspend"),
        ({"auto_suspend": [{}]}, "events.auto_suspend"),
        ({"auto_suspend": {"channels": ["fax"]}}, "events.auto_suspend.channels[0]"),
        ({"auto_suspend": {"channels": ["email", "email"]}}, "events.auto_suspend.channels"),
        ({"auto_suspend": {"hours_before": 2}}, "events.auto_suspend.hours_before"),
        ({"invoice_due": [{"days_after": 2}]}, "events.invoice_due[0].days_after"),
        ({"invoice_overdue": [{"days_after": -1}]}, "events.invoice_overdue[0].days_after"),
        (
            {"suspension_warning": [{"hours_before": 24}, {"hours_before": "soon"}]},
            "events.suspension_warning[1].hours_before",
        ),
        ({"auto_unsuspend": {"enforce": True}}, "events.auto_unsuspend.enforce"),
        ({"invoice_due": [{"after_provisioning": True}]}, "events.invoice_due[0].after_provisioning"),
        ({"invoice_due": [{"recipients": ["service"]}]}, "events.invoice_due[0].recipients"),
        ({"auto_suspend": {"recipients": ["owner"]}}, "events.auto_suspend.recipients[0]"),
        ({"auto_suspend": "yes"}, "events.auto_suspend"),
        ({"auto_suspend": {"colour": "red"}}, "events.auto_suspend.colour"),
    ],
)
def test_mapping_errors_name_the_field(raw: dict[str, Any], field: str) -> None:
    err = events_error(raw)
    assert err.field == field, str(err)


def test_events_must_be_a_mapping() -> None:
    assert events_error(["auto_suspend"]).field == "events"


def test_timezones() -> None:
    assert check_timezone("Australia/Sydney", "provider.timezone").key == "Australia/Sydney"
    with pytest.raises(ConfigError) as info:
        check_timezone("Mars/Olympus", "provider.timezone")
    assert info.value.field == "provider.timezone"
