"""One error body for the whole API, the answers each route declares, and the handlers that produce them.

Every refusal is ``{"detail": ...}``: a sentence for most, a list of
:class:`FieldError` when the request did not validate (each names its field).
Unknown query parameters are refused too (:func:`refuse_unknown_query`).
A route declares every status it can answer through :func:`declared`, so the
OpenAPI document (and the clients generated from it, and Swagger UI) knows them;
``tests/integration/api/test_fuzzing.py`` runs Schemathesis to hold the two together.

Failures of the servers behind the API are the server's problem, not the
caller's, and are never a bare 500: an unreachable or failing Prefect, graph
or broker is a 503 that says which and why; a Prefect refusal of what we asked
(an object it does not know) is a 404.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import httpx
from fastapi import FastAPI, Request, params, status
from fastapi.dependencies.utils import get_flat_params
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from neo4j.exceptions import DatabaseError, ServiceUnavailable, SessionExpired, TransientError
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One reason a request did not validate."""

    loc: list[str | int] = Field(description='Where, as a path: `["query", "limit"]`, `["body", "capabilities", 0]`.')
    field: str = Field(
        description="Where, dotted: `query.limit`, `path.agent_id`, `body.governance_rules.transitions`, "
        "or for a webhook's run inputs `inputs.NAME`."
    )
    msg: str = Field(description="What is wrong and what is expected.")
    type: str = Field(description="A machine-readable kind (pydantic's error type).")


class ApiError(BaseModel):
    """Every error the API answers."""

    detail: str | list[FieldError] = Field(
        description="Why the request was refused: a sentence, or each invalid field."
    )


_DESCRIPTIONS: dict[int, str] = {
    400: "The body is not JSON (or not UTF-8); for a webhook also an idempotency key that is too long.",
    401: "No API key, or an unknown one (webhooks: a missing, stale or bad signature).",
    403: "The key's role lacks the permission this route needs.",
    404: "No such object.",
    409: "Conflicts with the current state.",
    413: "The body is larger than allowed.",
    422: "The request does not validate; each problem names its field.",
    429: "Rate limit exceeded: retry after the Retry-After header's seconds.",
    503: "A server behind the API (Prefect, the graph database) is unreachable or failing; retry later.",
}
GUARDED = (401, 403, 422, 429)
"""What every route behind an API key can answer: no key, no permission, an invalid request, the rate limit."""


def declared(*codes: int, **described: str | tuple[str, type[BaseModel]]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these status codes, each with the error body; ``described`` overrides a
    code's description (``_409="…"``) or its model too (``_409=("…", Model)``)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in sorted(set(codes) | {int(name.lstrip("_")) for name in described}):
        override = described.get(f"_{code}")
        description, model = override if isinstance(override, tuple) else (override, ApiError)
        entry: dict[str, Any] = {"model": model, "description": description or _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
        if code == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"description": "How to authenticate.", "schema": {"type": "string"}}
            }
        responses[code] = entry
    return responses


_QUERY_NAMES: dict[int, frozenset[str]] = {}


async def refuse_unknown_query(request: Request) -> None:
    """A dependency of every router: a query parameter the route does not take is refused (422), not ignored,
    so ``?limt=5`` is a clear error instead of a silent default."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _QUERY_NAMES.get(id(route))
    if known is None:
        known = _QUERY_NAMES[id(route)] = frozenset(
            f.alias for f in get_flat_params(route.dependant) if isinstance(f.field_info, params.Query)
        )
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"unknown query parameter (this route takes: {takes})",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


def field_errors(errors: Iterable[dict[str, Any]]) -> list[FieldError]:
    return [
        FieldError(
            loc=list(error.get("loc", ())),
            field=".".join(str(part) for part in error.get("loc", ())),
            msg=str(error.get("msg", "")),
            type=str(error.get("type", "")),
        )
        for error in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Validation errors in the one error body; failures of Prefect and the graph as 503 (or 404), never 500."""

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        body = ApiError(detail=field_errors(exc.errors()))
        return JSONResponse(jsonable_encoder(body), status.HTTP_422_UNPROCESSABLE_CONTENT)

    def unavailable(what: str) -> Any:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            logger.warning("%s %s: %s unavailable: %s", request.method, request.url.path, what, exc)
            return JSONResponse({"detail": f"{what} is unreachable or failing: {type(exc).__name__}: {exc}"[:500]}, 503)

        return handler

    async def prefect_refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PrefectHTTPStatusError)
        code = exc.response.status_code
        if code == 404:
            return JSONResponse({"detail": f"not found in Prefect: {exc.response.text[:300]}"}, 404)
        logger.warning(
            "%s %s: Prefect answered %d: %s", request.method, request.url.path, code, exc.response.text[:300]
        )
        return JSONResponse({"detail": f"Prefect answered {code}: {exc.response.text[:300]}"}, 503)

    async def prefect_not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"not found in Prefect: {exc}"}, 404)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        """Starlette's 405 names the methods of the first route that matched the path only; a path served by
        several routes (``GET`` and ``POST /templates``) must list all of them in ``Allow``."""
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        allowed = sorted(
            {
                method
                for route in iter_route_contexts(app.routes)
                if route.methods
                if route.matches(request.scope)[0] is not Match.NONE
                for method in route.methods
            }
            - {"HEAD"}
        )
        return JSONResponse({"detail": "Method Not Allowed"}, 405, headers={"Allow": ", ".join(allowed)})

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug: still the one error body (and the traceback in the log, not in the answer)."""
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the API's log has the details"}, 500)

    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(StarletteHTTPException, method_not_allowed)
    app.add_exception_handler(RequestValidationError, invalid)
    for graph_error in (ServiceUnavailable, SessionExpired, TransientError, DatabaseError):
        app.add_exception_handler(graph_error, unavailable("the graph database"))
    app.add_exception_handler(PrefectHTTPStatusError, prefect_refused)
    app.add_exception_handler(ObjectNotFound, prefect_not_found)
    app.add_exception_handler(httpx.TransportError, unavailable("the Prefect API"))
