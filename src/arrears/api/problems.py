"""Errors as RFC 9457 problem details (`application/problem+json`), naming the field at fault."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from arrears.config import ConfigError, loc_to_path

log = logging.getLogger("arrears.api")

MEDIA_TYPE = "application/problem+json"
# Problem types beyond the plain HTTP status (RFC 9457 §4.2: "about:blank" means just the status).
INVALID = "urn:arrears:problem:invalid-input"
CONFLICT = "urn:arrears:problem:conflict"


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; `errors` names each field at fault."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] = []


class ApiProblem(Exception):
    """Raise to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: list[tuple[str, str]] | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.type = type_
        self.headers = headers


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    errors: list[tuple[str, str]] | None = None,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": [{"field": f, "message": m} for f, m in errors or []],
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def not_found(what: str, ext_id: str) -> ApiProblem:
    # The same answer whether the id is unknown or another provider's: nothing leaks.
    return ApiProblem(404, f"no {what} {ext_id!r}")


def body_prefix(request: Request) -> str:
    """What a route calls its request body in field paths (`invoice` in `invoice.amount`)."""
    route = request.scope.get("route")
    field = getattr(route, "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    return str(getattr(model, "resource", "") or "body")


def error_message(err: Mapping[str, Any]) -> str:
    """A pydantic error as the API's problems word it (the bulk import's report too)."""
    value = err.get("input")
    if err.get("type") == "string_type" and isinstance(value, float | int) and not isinstance(value, bool):
        # Money: a float cannot say 0.10 exactly, so amounts are strings.
        return f'{value!r} must be a string such as "12.50", not a number'
    if err.get("type") == "missing":
        return "is required"
    if err.get("type") == "value_error" and "error" in err.get("ctx", {}):
        return str(err["ctx"]["error"])  # a validator's own words, without "Value error, "
    if err.get("type") == "extra_forbidden":
        return "unknown field"
    return str(err.get("msg", "is invalid"))


def _validation_errors(request: Request, exc: RequestValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        where, rest = (loc[0], loc[1:]) if loc else ("body", ())
        if where == "body":
            if err.get("type") == "json_invalid":
                out.append((body_prefix(request), f"is not valid JSON: {err.get('msg')}"))
                continue
            path = loc_to_path(body_prefix(request), tuple(p for p in rest if isinstance(p, str | int)))
        else:
            path = loc_to_path("", tuple(p for p in rest if isinstance(p, str | int))) or str(where)
        message = error_message(err)
        out.append((path, message))
    return out


def install(app: FastAPI) -> None:
    """Every error the API answers becomes a problem, and its schema says so."""
    _document(app)

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            exc.status, exc.detail, errors=exc.errors, type_=exc.type, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(request, exc)
        detail = "; ".join(f"{f}: {m}" for f, m in errors) or "invalid request"
        return problem_response(422, detail, errors=errors, type_=INVALID)

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return problem_response(422, str(exc), errors=[(exc.field, exc.message)], type_=INVALID)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI could not read the body (bytes that are not UTF-8 text): invalid input as any.
            where = body_prefix(request)
            return problem_response(
                422, f"{where}: is not valid JSON", errors=[(where, "is not valid JSON")], type_=INVALID
            )
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(exc.status_code, detail, headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(IntegrityError)
    async def _race(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two writes creating the same record at once: one wins, the other may simply retry.
        log.info("conflicting write on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(409, "a concurrent write changed the same record; retry", type_=CONFLICT)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error; it has been logged")


def _document(app: FastAPI) -> None:
    """Error responses in the OpenAPI schema as they are answered: `application/problem+json`
    (a route's `responses={404: {"model": Problem}}` alone would say `application/json`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI builds it once and keeps it; this rewrite is idempotent
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status[:1] in "45" and "application/json" in content:
                        content[MEDIA_TYPE] = content.pop("application/json")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
