"""Operator-written configuration (rule sets, event mappings) into domain objects.

The same shapes arrive from a scenario file, the API and the demo. Every error
names the field it is about, e.g. `rules.stages[1].status`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from email.utils import parseaddr
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from arrears.domain.calendars import UnknownCalendar, check_calendar
from arrears.domain.events import CHANNELS, MULTI_EVENTS, EventKind, EventMapping
from arrears.domain.model import STAGE_STATUSES, ContactRole, ServiceStatus
from arrears.domain.money import MoneyError, parse_amount
from arrears.domain.rules import AMOUNT_BASES, WEEKDAYS, RuleSet, Stage, Window


class ConfigError(ValueError):
    """Invalid input, with the dotted path of the field it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def loc_to_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def raise_validation(prefix: str, exc: ValidationError) -> None:
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
    raise ConfigError(loc_to_path(prefix, loc), err["msg"]) from exc


# Pydantic names the union member that failed in the error location
# (`min_overdue_amount.str`, `excluded_groups[0].ExcludedGroupSpec`); the
# operator's field path has no such part.
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "date", "datetime"}


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and (
        "[" in part or part in _TYPE_TAGS or (part[:1].isupper() and part.endswith("Spec"))
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hhmm(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError('must be a time of day as "HH:MM"')
    try:
        time.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f'{value!r} is not a time of day as "HH:MM"') from exc
    return value


class WindowSpec(_Strict):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: str
    end: str

    _t = field_validator("start", "end", mode="before")(_hhmm)


class HolidaySpec(_Strict):
    country: str | None = None
    subdivision: str | None = None
    closure_dates: list[date] = []


class StageSpec(_Strict):
    name: str = Field(min_length=1, max_length=64)
    min_overdue_days: int = Field(ge=0)
    status: Literal["restricted", "suspended", "deactivated"] = "restricted"
    min_overdue_amount: str | None = None
    action: str | None = None


class ExcludedGroupSpec(_Strict):
    group: str
    reason: str = ""


AmountText = StrictStr | StrictInt  # bool is an int to Python: refused


class RuleSetSpec(_Strict):
    name: str = Field(default="default", min_length=1, max_length=100)
    priority: int = 0
    applies_to_groups: list[str] = []
    effective_at: str | None = None
    min_overdue_amount: AmountText
    amount_basis: Literal["total_owing", "overdue_balance"] = "total_owing"
    min_overdue_days: int = Field(ge=0)
    restore_threshold: AmountText
    resuspend_days: int = Field(default=0, ge=0)
    windows: list[WindowSpec] = []
    holidays: HolidaySpec | None = None
    excluded_groups: list[str | ExcludedGroupSpec] = []
    stages: list[StageSpec] = []
    restore_when_excluded: bool = True


def parse_rule_set(
    raw: Any, *, currency: str, effective_at: datetime, version: int = 1, prefix: str = "rules"
) -> RuleSet:
    if not isinstance(raw, dict):
        raise ConfigError(prefix, "must be a mapping")
    if isinstance(raw.get("min_overdue_amount"), float) or isinstance(raw.get("restore_threshold"), float):
        field = (
            "min_overdue_amount" if isinstance(raw.get("min_overdue_amount"), float) else "restore_threshold"
        )
        raise ConfigError(f"{prefix}.{field}", 'amounts are strings such as "50.00", not floats')
    try:
        spec = RuleSetSpec.model_validate(raw)
    except ValidationError as exc:
        raise_validation(prefix, exc)
        raise  # unreachable
    return rule_set_from_spec(
        spec, currency=currency, effective_at=effective_at, version=version, prefix=prefix
    )


def _amount(value: Any, currency: str, field: str) -> Decimal:
    try:
        return parse_amount(value, currency)
    except MoneyError as exc:
        raise ConfigError(field, str(exc)) from exc


def rule_set_from_spec(
    spec: RuleSetSpec, *, currency: str, effective_at: datetime, version: int, prefix: str
) -> RuleSet:
    windows = []
    for i, w in enumerate(spec.windows):
        start, end = time.fromisoformat(w.start), time.fromisoformat(w.end)
        if end != time(0, 0) and end <= start:
            raise ConfigError(f"{prefix}.windows[{i}].end", "must be later than start (00:00 means midnight)")
        windows.append(Window(frozenset(WEEKDAYS.index(d) for d in w.days), start, end))
    stages = []
    seen: set[str] = set()
    for i, s in enumerate(spec.stages):
        if s.name in seen:
            raise ConfigError(f"{prefix}.stages[{i}].name", f"stage {s.name!r} appears twice")
        seen.add(s.name)
        amount = (
            _amount(s.min_overdue_amount, currency, f"{prefix}.stages[{i}].min_overdue_amount")
            if s.min_overdue_amount is not None
            else None
        )
        stages.append(Stage(s.name, s.min_overdue_days, ServiceStatus(s.status), amount, s.action))
    days = [s.min_overdue_days for s in stages]
    if len(set(days)) != len(days):
        raise ConfigError(f"{prefix}.stages", "two stages have the same min_overdue_days")
    country = subdivision = None
    closures: frozenset[date] = frozenset()
    if spec.holidays is not None:
        country, subdivision = spec.holidays.country, spec.holidays.subdivision
        closures = frozenset(spec.holidays.closure_dates)
        if country:
            # Name the field at fault: the country, or the subdivision of a known country.
            try:
                check_calendar(country, None)
            except UnknownCalendar as exc:
                raise ConfigError(f"{prefix}.holidays.country", str(exc)) from exc
            try:
                check_calendar(country, subdivision)
            except UnknownCalendar as exc:
                raise ConfigError(f"{prefix}.holidays.subdivision", str(exc)) from exc
        elif subdivision:
            raise ConfigError(f"{prefix}.holidays.country", "a subdivision needs its country")
    excluded: dict[str, str] = {}
    for g in spec.excluded_groups:
        if isinstance(g, str):
            excluded[g] = ""
        else:
            excluded[g.group] = g.reason
    assert all(s in STAGE_STATUSES for s in (st.status for st in stages))
    assert spec.amount_basis in AMOUNT_BASES
    return RuleSet(
        name=spec.name,
        min_overdue_amount=_amount(spec.min_overdue_amount, currency, f"{prefix}.min_overdue_amount"),
        min_overdue_days=spec.min_overdue_days,
        restore_threshold=_amount(spec.restore_threshold, currency, f"{prefix}.restore_threshold"),
        effective_at=effective_at,
        version=version,
        amount_basis=spec.amount_basis,
        resuspend_days=spec.resuspend_days,
        windows=tuple(windows),
        holiday_country=country,
        holiday_subdivision=subdivision,
        closure_dates=closures,
        excluded_groups=excluded,
        applies_to_groups=frozenset(spec.applies_to_groups),
        priority=spec.priority,
        stages=tuple(stages),
        restore_when_excluded=spec.restore_when_excluded,
    )


class MappingSpec(_Strict):
    enabled: bool = True
    channels: list[Literal["email", "sms", "note"]] = []
    recipients: list[Literal["primary", "billing", "service"]] = []
    days_before: int | None = Field(default=None, ge=0)
    days_after: int | None = Field(default=None, ge=0)
    hours_before: int | None = Field(default=None, ge=0)
    enforce: bool = False
    after_provisioning: bool = False
    quiet_hours: bool = True


_OFFSET_FIELD = {
    EventKind.INVOICE_DUE: "days_before",
    EventKind.INVOICE_OVERDUE: "days_after",
    EventKind.SUSPENSION_WARNING: "hours_before",
}


def parse_mappings(
    raw: Any, *, sms: bool, since: datetime, prefix: str = "events"
) -> dict[EventKind, list[EventMapping]]:
    """Parse `events:`; each listed event's mappings replace that event's old ones."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(prefix, "must be a mapping of event names")
    out: dict[EventKind, list[EventMapping]] = {}
    for name, value in raw.items():
        try:
            event = EventKind(name)
        except ValueError:
            known = ", ".join(e.value for e in EventKind)
            raise ConfigError(f"{prefix}.{name}", f"unknown event (known: {known})") from None
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and event not in MULTI_EVENTS:
            raise ConfigError(f"{prefix}.{name}", "takes one mapping, not a list")
        mappings = []
        for i, item in enumerate(items):
            path = f"{prefix}.{name}[{i}]" if isinstance(value, list) else f"{prefix}.{name}"
            mappings.append(parse_mapping(item, event, i, sms=sms, since=since, path=path))
        out[event] = mappings
    return out


def parse_mapping(
    raw: Any, event: EventKind, position: int, *, sms: bool, since: datetime, path: str
) -> EventMapping:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(path, "must be a mapping")
    try:
        spec = MappingSpec.model_validate(raw)
    except ValidationError as exc:
        raise_validation(path, exc)
        raise
    if "sms" in spec.channels and not sms:
        raise ConfigError(
            f"{path}.channels", "the provider has no SMS subscription, so an SMS channel cannot be configured"
        )
    for field in ("days_before", "days_after", "hours_before"):
        if getattr(spec, field) is not None and _OFFSET_FIELD.get(event) != field:
            raise ConfigError(f"{path}.{field}", f"does not apply to {event.value}")
    if spec.enforce and event is not EventKind.SUSPENSION_WARNING:
        raise ConfigError(f"{path}.enforce", "only a suspension_warning can be enforced")
    if spec.after_provisioning and event not in (EventKind.AUTO_SUSPEND, EventKind.AUTO_UNSUSPEND):
        raise ConfigError(f"{path}.after_provisioning", "only applies to auto_suspend and auto_unsuspend")
    if "service" in spec.recipients and event not in (EventKind.AUTO_SUSPEND, EventKind.AUTO_UNSUSPEND):
        raise ConfigError(f"{path}.recipients", "the service role only applies to service events")
    if len(set(spec.channels)) != len(spec.channels):
        raise ConfigError(f"{path}.channels", "a channel is listed twice")
    assert all(c in CHANNELS for c in spec.channels)
    key = event.value if event not in MULTI_EVENTS else f"{event.value}#{position}"
    return EventMapping(
        key=key,
        event=event,
        enabled=spec.enabled,
        channels=tuple(spec.channels),
        recipients=tuple(ContactRole(r) for r in spec.recipients),
        days_before=spec.days_before or 0,
        days_after=spec.days_after or 0,
        hours_before=spec.hours_before or 0,
        enforce=spec.enforce,
        after_provisioning=spec.after_provisioning,
        quiet_hours=spec.quiet_hours,
        since=since,
    )


def mapping_body(m: EventMapping) -> dict[str, Any]:
    """The stored form of a mapping (the same shape as its input)."""
    return {
        "enabled": m.enabled,
        "channels": list(m.channels),
        "recipients": [r.value for r in m.recipients],
        "days_before": m.days_before,
        "days_after": m.days_after,
        "hours_before": m.hours_before,
        "enforce": m.enforce,
        "after_provisioning": m.after_provisioning,
        "quiet_hours": m.quiet_hours,
    }


def mapping_from_body(key: str, event: str, body: dict[str, Any], since: datetime) -> EventMapping:
    return EventMapping(
        key=key,
        event=EventKind(event),
        enabled=bool(body.get("enabled", False)),
        channels=tuple(body.get("channels", [])),
        recipients=tuple(ContactRole(r) for r in body.get("recipients", [])),
        days_before=int(body.get("days_before", 0)),
        days_after=int(body.get("days_after", 0)),
        hours_before=int(body.get("hours_before", 0)),
        enforce=bool(body.get("enforce", False)),
        after_provisioning=bool(body.get("after_provisioning", False)),
        quiet_hours=bool(body.get("quiet_hours", True)),
        since=since,
    )


class QuietHoursSpec(_Strict):
    start: str
    end: str

    _t = field_validator("start", "end", mode="before")(_hhmm)


_SMS_SENDER = re.compile(r"^(\+?[0-9]{3,15}|[A-Za-z0-9 ]{1,11})$")


class NoticeSettingsSpec(_Strict):
    """A provider's settings for how its notices look and go out (docs/notifications.md)."""

    locale: str = "en"
    quiet_hours: QuietHoursSpec | None = QuietHoursSpec(start="21:00", end="08:00")
    email_from: str | None = None
    sms_from: str | None = None
    payment_link: str | None = None
    operations_email: str | None = None

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        try:
            Locale.parse(value)
        except (ValueError, UnknownLocaleError):
            raise ValueError(f"{value!r} is not a known locale (e.g. en_AU, de_DE)") from None
        return value

    @field_validator("email_from", "operations_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and "@" not in parseaddr(value)[1]:
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("sms_from")
    @classmethod
    def _sms_sender(cls, value: str | None) -> str | None:
        if value is not None and not _SMS_SENDER.match(value):
            raise ValueError("an SMS sender is a phone number or at most 11 letters and digits")
        return value

    @field_validator("payment_link")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value is not None:
            from arrears.notify.context import check_payment_link

            check_payment_link(value)  # a ValueError naming the placeholder or the scheme
        return value


NOTICE_SETTINGS = tuple(NoticeSettingsSpec.model_fields)


def parse_notice_settings(raw: dict[str, Any], prefix: str = "provider") -> NoticeSettingsSpec:
    """The notice settings among a provider's fields (other fields are ignored here)."""
    try:
        return NoticeSettingsSpec.model_validate({k: v for k, v in raw.items() if k in NOTICE_SETTINGS})
    except ValidationError as exc:
        raise_validation(prefix, exc)
        raise


def check_timezone(name: Any, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (KeyError, ValueError):
        raise ConfigError(field, f"unknown IANA timezone {name!r}") from None
