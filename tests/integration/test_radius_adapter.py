"""The radius adapter against FreeRADIUS's radusergroup table on PostgreSQL and a real (small) NAS over UDP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from arrears.provisioning.base import ConfigError, ProvisioningCall, State
from arrears.provisioning.radius import RadiusAdapter, RadiusSettings
from peers.nas import SILENT, Nak, Nas

# FreeRADIUS mods-config/sql/main/postgresql/schema.sql
RADUSERGROUP = """
CREATE TABLE radusergroup (
    id serial PRIMARY KEY,
    username varchar(64) NOT NULL DEFAULT '',
    groupname varchar(64) NOT NULL DEFAULT '',
    priority integer NOT NULL DEFAULT 0
)
"""

SECRET = "nas-secret"


@pytest.fixture(autouse=True)
def _no_leftover_threads(no_leftover_threads: None) -> None:
    """Every test here leaves no thread of its peers behind (tests/conftest.py)."""


@pytest.fixture
def nas() -> Iterator[Nas]:
    with Nas(secret=SECRET.encode()) as server:
        yield server


@pytest.fixture
def radius_db(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(RADUSERGROUP))
    yield engine
    engine.dispose()


@pytest.fixture
def make_adapter(nas: Nas, postgres_url: str) -> Iterator[Callable[..., RadiusAdapter]]:
    adapters: list[RadiusAdapter] = []

    def make(**overrides: Any) -> RadiusAdapter:
        cfg: dict[str, Any] = {
            "nas_host": nas.host,
            "nas_port": nas.port,
            "secret": SECRET,
            "timeout": 0.2,
            "retries": 2,
            "sql_url": postgres_url,
            "walled_garden_group": "walled-garden",
            "suspended_group": "suspended",
        }
        cfg.update(overrides)
        adapter = RadiusAdapter(RadiusSettings.from_config(cfg))
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


@pytest.fixture
def adapter(make_adapter: Callable[..., RadiusAdapter], radius_db: Engine) -> RadiusAdapter:
    return make_adapter()


def call(action: str, service: str = "alice", **attributes: Any) -> ProvisioningCall:
    return ProvisioningCall(
        request_id=1,
        key=f"k-{action}",
        action=action,
        provider="isp",
        account="A-100",
        service=service,
        service_type="broadband",
        attempt=1,
        created_at=datetime(2025, 3, 1, tzinfo=UTC),
        attributes=attributes,
    )


def add_groups(engine: Engine, username: str, *groups: tuple[str, int]) -> None:
    with engine.begin() as conn:
        for name, priority in groups:
            conn.execute(
                text("INSERT INTO radusergroup (username, groupname, priority) VALUES (:u, :g, :p)"),
                {"u": username, "g": name, "p": priority},
            )


def groups_of(engine: Engine, username: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT groupname, priority FROM radusergroup WHERE username = :u ORDER BY priority, groupname"
            ),
            {"u": username},
        )
        return [(r.groupname, r.priority) for r in rows]


def saved_of(engine: Engine, username: str) -> list[tuple[str | None, int | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT groupname, priority FROM arrears_radius_saved_groups WHERE username = :u ORDER BY id"
            ),
            {"u": username},
        )
        return [(r.groupname, r.priority) for r in rows]


ORIGINAL = [("gold", 1), ("static-ip", 5)]


# -- the happy paths ------------------------------------------------------------------------


@pytest.mark.postgres
def test_restrict_moves_to_walled_garden_and_sends_coa(
    adapter: RadiusAdapter, radius_db: Engine, nas: Nas
) -> None:
    add_groups(radius_db, "alice", ("gold", 1))
    add_groups(radius_db, "bob", ("gold", 1))

    result = adapter.execute(call("restricted"))

    assert result.state is State.CONFIRMED, result.detail
    assert "walled-garden" in result.detail and "CoA-ACK" in result.detail
    assert groups_of(radius_db, "alice") == [("walled-garden", 0)]
    assert saved_of(radius_db, "alice") == [("gold", 1)]
    assert groups_of(radius_db, "bob") == [("gold", 1)]  # nobody else is touched
    [request] = nas.requests
    assert request.kind == "CoA-Request"
    assert request.get("User-Name") == "alice"
    assert request.get("Filter-Id") == "walled-garden"
    assert "Acct-Session-Id" not in request.attributes
    assert abs(request.get("Event-Timestamp") - time.time()) < 60
    assert request.message_authenticator


@pytest.mark.postgres
def test_suspend_sends_disconnect_and_moves_to_suspended(
    adapter: RadiusAdapter, radius_db: Engine, nas: Nas
) -> None:
    add_groups(radius_db, "alice", ("gold", 1))

    result = adapter.execute(call("suspended"))

    assert result.state is State.CONFIRMED, result.detail
    assert "Disconnect-ACK" in result.detail
    assert groups_of(radius_db, "alice") == [("suspended", 0)]
    [request] = nas.requests
    assert request.kind == "Disconnect-Request"
    assert request.get("User-Name") == "alice"
    assert "Filter-Id" not in request.attributes


@pytest.mark.postgres
def test_deactivate_is_a_suspension(adapter: RadiusAdapter, radius_db: Engine, nas: Nas) -> None:
    add_groups(radius_db, "alice", ("gold", 1))

    assert adapter.execute(call("deactivated")).state is State.CONFIRMED
    assert groups_of(radius_db, "alice") == [("suspended", 0)]
    assert [r.kind for r in nas.requests] == ["Disconnect-Request"]


@pytest.mark.postgres
def test_restore_puts_back_exactly_the_original_groups(
    adapter: RadiusAdapter, radius_db: Engine, nas: Nas
) -> None:
    add_groups(radius_db, "alice", *ORIGINAL)

    assert adapter.execute(call("restricted")).state is State.CONFIRMED
    result = adapter.execute(call("restore"))

    assert result.state is State.CONFIRMED, result.detail
    assert groups_of(radius_db, "alice") == ORIGINAL
    assert saved_of(radius_db, "alice") == []
    restore = nas.requests[-1]
    assert restore.kind == "CoA-Request"
    # the normal policy: the group FreeRADIUS reads first (lowest priority)
    assert restore.get("Filter-Id") == "gold"


@pytest.mark.postgres
def test_repeated_and_escalating_actions_keep_the_originals(
    adapter: RadiusAdapter, radius_db: Engine, nas: Nas
) -> None:
    add_groups(radius_db, "alice", *ORIGINAL)

    for action in ("restricted", "restricted", "suspended", "suspended"):
        assert adapter.execute(call(action)).state is State.CONFIRMED
    assert saved_of(radius_db, "alice") == ORIGINAL
    assert adapter.execute(call("restore")).state is State.CONFIRMED
    assert groups_of(radius_db, "alice") == ORIGINAL

    # a repeated restore leaves the user's own groups alone
    again = adapter.execute(call("restore"))
    assert again.state is State.CONFIRMED
    assert "not held" in again.detail
    assert groups_of(radius_db, "alice") == ORIGINAL
    assert [r.kind for r in nas.requests] == [
        "CoA-Request",
        "CoA-Request",
        "Disconnect-Request",
        "Disconnect-Request",
        "CoA-Request",
        "CoA-Request",
    ]


@pytest.mark.postgres
def test_user_without_groups_is_restored_to_none(adapter: RadiusAdapter, radius_db: Engine, nas: Nas) -> None:
    assert adapter.execute(call("restricted")).state is State.CONFIRMED
    assert adapter.execute(call("restricted")).state is State.CONFIRMED
    assert groups_of(radius_db, "alice") == [("walled-garden", 0)]

    result = adapter.execute(call("restore"))

    assert result.state is State.CONFIRMED, result.detail
    assert groups_of(radius_db, "alice") == []
    # no group to name as the normal policy: the user logs in again to FreeRADIUS's defaults
    assert nas.requests[-1].kind == "Disconnect-Request"
    assert "disconnecting instead" in result.detail


@pytest.mark.postgres
def test_restore_by_disconnect_when_configured(
    make_adapter: Callable[..., RadiusAdapter], radius_db: Engine, nas: Nas
) -> None:
    adapter = make_adapter(restore="disconnect")
    add_groups(radius_db, "alice", *ORIGINAL)

    adapter.execute(call("restricted"))
    result = adapter.execute(call("restore"))

    assert result.state is State.CONFIRMED, result.detail
    assert groups_of(radius_db, "alice") == ORIGINAL
    assert [r.kind for r in nas.requests] == ["CoA-Request", "Disconnect-Request"]


@pytest.mark.postgres
def test_session_and_username_from_attributes_and_settings(
    make_adapter: Callable[..., RadiusAdapter], radius_db: Engine, nas: Nas
) -> None:
    adapter = make_adapter(
        username="{account}-{service}@isp",
        coa_attribute="Reply-Message",
        restore_policy="standard",
        nas_ip_address="10.0.0.1",
        message_authenticator=False,
    )

    # placeholders inside a value stay literal
    adapter.execute(call("restricted", service="{account}"))
    adapter.execute(call("restore", radius_username="carol@isp", acct_session_id="sess-42"))

    first, second = nas.requests
    assert first.get("User-Name") == "A-100-{account}@isp"
    assert first.get("Reply-Message") == "walled-garden"
    assert first.get("NAS-IP-Address") == "10.0.0.1"
    assert not first.message_authenticator
    assert groups_of(radius_db, "A-100-{account}@isp") == [("walled-garden", 0)]
    assert second.get("User-Name") == "carol@isp"
    assert second.get("Acct-Session-Id") == "sess-42"
    assert second.get("Reply-Message") == "standard"


# -- what the NAS says ----------------------------------------------------------------------


@pytest.mark.postgres
def test_nak_session_not_found_means_not_online(adapter: RadiusAdapter, radius_db: Engine, nas: Nas) -> None:
    add_groups(radius_db, "alice", ("gold", 1))
    nas.answer_next(Nak(503))

    result = adapter.execute(call("suspended"))

    assert result.state is State.CONFIRMED
    assert "Disconnect-NAK 503" in result.detail
    assert "not online" in result.detail and "next login" in result.detail
    assert groups_of(radius_db, "alice") == [("suspended", 0)]


@pytest.mark.postgres
def test_nak_with_another_cause_fails(adapter: RadiusAdapter, radius_db: Engine, nas: Nas) -> None:
    add_groups(radius_db, "alice", ("gold", 1))
    nas.answer_next(Nak(401, reply_message="Filter-Id not supported"))

    result = adapter.execute(call("restricted"))

    assert result.state is State.FAILED
    assert "CoA-NAK 401 Unsupported Attribute" in result.detail
    assert "Filter-Id not supported" in result.detail


@pytest.mark.postgres
def test_nak_resources_unavailable_is_retried(adapter: RadiusAdapter, radius_db: Engine, nas: Nas) -> None:
    nas.answer_next(Nak(506))

    result = adapter.execute(call("restricted"))

    assert result.state is State.RETRY
    assert "506 Resources Unavailable" in result.detail


@pytest.mark.postgres
def test_nak_without_cause_fails(adapter: RadiusAdapter, radius_db: Engine, nas: Nas) -> None:
    nas.answer_next(Nak())

    result = adapter.execute(call("restricted"))

    assert result.state is State.FAILED
    assert "without Error-Cause" in result.detail


@pytest.mark.postgres
def test_silent_nas_is_retried_and_the_retry_is_harmless(
    adapter: RadiusAdapter, radius_db: Engine, nas: Nas
) -> None:
    add_groups(radius_db, "alice", *ORIGINAL)
    nas.answer_next(SILENT)

    started = time.monotonic()
    result = adapter.execute(call("restricted"))

    assert time.monotonic() - started < 1.0
    assert result.state is State.RETRY
    assert "no answer" in result.detail and "2 tries" in result.detail
    [request] = nas.requests
    assert request.sends == 2  # the same packet again, so the NAS sees a duplicate

    again = adapter.execute(call("restricted"))

    assert again.state is State.CONFIRMED, again.detail
    assert groups_of(radius_db, "alice") == [("walled-garden", 0)]
    assert saved_of(radius_db, "alice") == ORIGINAL


@pytest.mark.postgres
def test_wrong_shared_secret_is_dropped_by_the_nas(
    make_adapter: Callable[..., RadiusAdapter], radius_db: Engine, nas: Nas
) -> None:
    adapter = make_adapter(secret="not-the-secret")

    result = adapter.execute(call("restricted"))

    assert result.state is State.RETRY
    assert nas.requests == []
    assert nas.dropped == 2


# -- the database ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_database_unreachable_is_retried_and_the_nas_hears_nothing(
    make_adapter: Callable[..., RadiusAdapter], nas: Nas, postgres_url: str
) -> None:
    adapter = make_adapter(sql_url="postgresql+psycopg://postgres@127.0.0.1:1/radius")

    result = adapter.execute(call("restricted"))

    assert result.state is State.RETRY
    assert result.detail.startswith("RADIUS database:")
    assert nas.requests == [] and nas.dropped == 0


@pytest.mark.postgres
def test_missing_radusergroup_table_is_retried(
    make_adapter: Callable[..., RadiusAdapter], nas: Nas, postgres_url: str
) -> None:
    adapter = make_adapter()  # the schema has no radusergroup table

    result = adapter.execute(call("suspended"))

    assert result.state is State.RETRY
    assert "radusergroup" in result.detail
    assert nas.requests == []


# -- settings and inputs --------------------------------------------------------------------


def test_unknown_action_and_bad_username_fail_without_side_effects() -> None:
    adapter = RadiusAdapter(
        RadiusSettings.from_config(
            {
                "nas_host": "127.0.0.1",
                "secret": SECRET,
                "sql_url": "postgresql+psycopg://postgres@127.0.0.1:1/radius",
                "walled_garden_group": "wg",
                "suspended_group": "sus",
            }
        )
    )
    try:
        assert adapter.execute(call("frozen")).state is State.FAILED
        long = adapter.execute(call("restricted", service="x" * 65))
        assert long.state is State.FAILED and "longer than 64" in long.detail
        assert adapter.execute(call("restricted", radius_username=42)).state is State.FAILED
        # the database (unreachable here) is never reached: that would be RETRY
        assert adapter.execute(call("restricted", acct_session_id="")).state is State.FAILED
    finally:
        adapter.close()


BASE = {
    "nas_host": "nas1.example.net",
    "secret": "s",
    "sql_url": "postgresql+psycopg://radius@db/radius",
    "walled_garden_group": "walled-garden",
    "suspended_group": "suspended",
}


def test_settings_defaults() -> None:
    settings = RadiusSettings.from_config(BASE)

    assert settings.nas_port == 3799
    assert settings.secret == b"s"
    assert settings.table == "radusergroup"
    assert settings.username == "{service}"
    assert settings.coa_attribute == "Filter-Id"
    assert settings.restore == "coa"
    assert "radius@db" not in repr(settings) and "secret=" not in repr(settings)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"secret": None}, "secret"),
        ({"nas_host": ""}, "nas_host"),
        ({"nas_port": 70000}, "nas_port"),
        ({"retries": 0}, "retries"),
        ({"retries": True}, "retries"),
        ({"timeout": "soon"}, "timeout"),
        ({"sql_url": "not a url"}, "sql_url"),
        ({"table": "radusergroup; drop"}, "table"),
        ({"walled_garden_group": "g" * 65}, "walled_garden_group"),
        ({"suspended_group": None}, "suspended_group"),
        ({"username": "{service.__class__}"}, "username"),
        ({"username": "fixed"}, "username"),
        ({"coa_attribute": "Cisco-AVPair"}, "coa_attribute"),
        ({"coa_attribute": "Error-Cause"}, "coa_attribute"),
        ({"restore": "reboot"}, "restore"),
        ({"nas_ip_address": "nas1"}, "nas_ip_address"),
        ({"dictionaries": ["/nonexistent/dictionary"]}, "dictionaries"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_settings_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    cfg = {**BASE, **changes}
    cfg = {k: v for k, v in cfg.items() if v is not None}

    with pytest.raises(ConfigError) as caught:
        RadiusSettings.from_config(cfg)

    assert caught.value.field == field


def test_extra_dictionary_for_a_vendor_attribute(tmp_path: Any) -> None:
    extra = tmp_path / "dictionary.cisco"
    extra.write_text(
        "VENDOR Cisco 9\nBEGIN-VENDOR Cisco\nATTRIBUTE Cisco-AVPair 1 string\nEND-VENDOR Cisco\n"
    )

    settings = RadiusSettings.from_config(
        {**BASE, "dictionaries": [str(extra)], "coa_attribute": "Cisco-AVPair"}
    )

    assert settings.coa_attribute == "Cisco-AVPair"
