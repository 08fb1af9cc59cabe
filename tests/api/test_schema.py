"""The API against its own OpenAPI schema, with schemathesis.

Schemathesis reads /api/v1/openapi.json from a real server and sends each operation the
schema's examples, boundary values and generated requests, valid and invalid ones. Every
answer must be no server error, with a status the operation declares, in the content type
declared for it, and a body of the declared shape (problems included).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .harness import PLATFORM_KEY, Api, api_on, fields, problem

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Generated requests per operation and kind (valid, invalid): enough to reach odd values, few
# enough for the whole schema in well under a minute per database.
EXAMPLES = 15
# A bulk import file is text (JSON Lines): sent as generated, like any text body.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def seed(client: httpx.Client) -> None:
    """Records of every kind, so lists and lookups answer with items."""
    puts: list[tuple[str, dict[str, Any]]] = [
        ("/accounts/A1", {"groups": ["retail"], "services": [{"id": "S1", "type": "mobile"}]}),
        ("/accounts/A2", {"contacts": [{"role": "primary", "name": "Jo", "email": "jo@example.com"}]}),
        ("/accounts/A3", {"services": [{"id": "S3", "type": "nbn"}]}),
        # Long overdue: A1 is suspended at once, with a provisioning request and a notice.
        ("/invoices/I1", {"account": "A1", "amount": "120.00", "due": "2026-01-15"}),
        ("/invoices/I2", {"account": "A2", "amount": "40.00", "due": "2026-03-20"}),
        # Overdue for a week: A3 is heading for suspension (the forecast).
        ("/invoices/I3", {"account": "A3", "amount": "90.00", "due": "2026-02-23"}),
        ("/payments/P1", {"account": "A2", "amount": "10.00"}),
        ("/disputes/I2", {"amount": "5.00"}),
        ("/plans/PL1", {"account": "A2", "invoices": ["I2"]}),
        ("/cases/C1", {"account": "A2"}),
        ("/accounts/A2/flag", {"omit": True, "until": "2026-04-30", "reason": "hardship"}),
    ]
    for path, body in puts:
        r = client.put(path, json=body)
        assert r.status_code == 200, r.text
    for listing in ("/provisioning-requests", "/notifications"):
        assert client.get(listing).json()["items"], listing
    assert client.get("/forecast", params={"until": "2026-04-01T00:00"}).json()["items"]


def schema_of(api: Api, key: str, request: pytest.FixtureRequest) -> Any:
    """The running API's schema, with every request made with `key`."""
    # schemathesis 4.32 renames the test item through `_nodeid`, which pytest 9.2 no longer has.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    config = schemathesis.Config.from_dict(
        {"base-url": api.url, "headers": {"Authorization": f"Bearer {key}"}}
    )
    return schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json", config=config)


@pytest.fixture
def provider_schema(database_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The schema, as a provider with records sees it."""
    with api_on(database_url) as api:
        _, client = api.provider("acme")
        seed(client)
        yield schema_of(api, str(client.headers["Authorization"]).removeprefix("Bearer "), request)
        # Revoking its own key would have left every later operation a 401 to check.
        assert client.get("/provider").status_code == 200, "the run revoked the key it tested with"


@pytest.fixture
def platform_schema(database_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The schema, as the platform with a provider sees it."""
    with api_on(database_url) as api:
        api.provider("acme")
        yield schema_of(api, PLATFORM_KEY, request)


# Managing providers takes the platform key; everything else a provider's key.
provider_operations = schemathesis.pytest.from_fixture("provider_schema").exclude(tag="providers")
platform_operations = schemathesis.pytest.from_fixture("platform_schema").include(tag="providers")
conformance = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: CI fails only on a real change
    database=None,
    suppress_health_check=list(HealthCheck),
)


@provider_operations.parametrize()
@conformance
def test_what_a_provider_can_call_answers_as_the_schema_says(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@platform_operations.parametrize()
@conformance
def test_what_the_platform_can_call_answers_as_the_schema_says(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


def test_every_operation_documents_its_answer_and_its_problems(api: Api) -> None:
    schema = api.client().get("/openapi.json").json()
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    undocumented = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if status.startswith("2") and "schema" not in content.get("application/json", {}):
                    undocumented.append(f"{method.upper()} {path} {status}: no shape")
                if status[0] in "45" and content != {"application/problem+json": {"schema": problem_ref}}:
                    undocumented.append(f"{method.upper()} {path} {status}: not a problem")
    assert not undocumented, undocumented


def test_input_the_database_cannot_take_is_refused_naming_the_field(api: Api) -> None:
    """What schemathesis found answering 500, each answered as invalid input (or not found)."""
    _, client = api.provider("acme")
    as_json = {"Content-Type": "application/json"}
    # PostgreSQL refuses a NUL character even in a comparison; a lone surrogate is no UTF-8.
    assert fields(client.get("/accounts/A%00B")) == {"account_id": "must not contain the NUL character"}
    assert fields(client.get("/accounts", params={"group": "a\x00"})) == {
        "group": "must not contain the NUL character"
    }
    nul = client.put("/accounts/A1", json={"contacts": [{"name": "Jo\x00"}]})
    assert fields(nul) == {"account.contacts[0].name": "must not contain the NUL character"}
    surrogate = client.put("/accounts/A1", content=b'{"groups": ["ok", "\\ud800"]}', headers=as_json)
    assert fields(surrogate) == {"account.groups": "is not valid Unicode text"}
    assert fields(client.put("/accounts/A1", content=b"\xc3(", headers=as_json)) == {
        "account": "is not valid JSON"
    }
    # Ids beyond what an id column holds name no record.
    huge = "9" * 30
    problem(api.platform.get(f"/providers/{huge}"), 404)
    problem(api.platform.get("/providers/\u00b2"), 404)  # "²" is a digit to str.isdigit only
    assert set(fields(client.post(f"/provisioning-requests/{huge}/confirm", json={}))) == {"request_id"}
    callback = {"request_id": int(huge), "key": "k", "state": "confirmed"}
    problem(api.client().post("/callbacks/provisioning", json=callback), 404)
    cursor = base64.urlsafe_b64encode(b'{"after": %s}' % huge.encode()).decode()
    assert fields(client.get("/accounts", params={"cursor": cursor})) == {
        "cursor": "is not a cursor this API gave out"
    }
    assert client.get("/accounts").json()["items"] == []  # nothing above was stored
