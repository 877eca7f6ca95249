"""The service's OpenAPI document, made from its route table and the pydantic models it answers
with: one table registers the aiohttp routes and describes them, so the two cannot differ.
``docs/openapi.json`` is this document, checked current by a unit test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from coordinator.service.models import Error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" or "query"
    description: str
    required: bool = True
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """One operation: what aiohttp routes and what the document says of it."""

    method: str
    path: str
    handler: Handler
    summary: str
    status: int = 200
    answer: type[BaseModel] | str | None = None  # a model (JSON), or a media type (a file)
    body: dict[str, dict[str, Any]] = field(default_factory=dict)  # media type -> schema
    body_model: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    public: bool = False  # no token needed
    errors: tuple[int, ...] = ()


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _param(p: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if p.enum:
        schema["enum"] = list(p.enum)
    return {"name": p.name, "in": p.where, "required": p.required, "description": p.description, "schema": schema}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary, "operationId": route.handler.__name__}
    if route.params:
        op["parameters"] = [_param(p) for p in route.params]
    if route.body_model is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_of(route.body_model)}},
        }
    elif route.body:
        op["requestBody"] = {"required": True, "content": route.body}
    responses: dict[str, Any] = {}
    if isinstance(route.answer, str):
        binary = {"type": "string"} if route.answer == "text/html" else {"type": "string", "format": "binary"}
        answer = {"description": "the file", "content": {route.answer: {"schema": binary}}}
    elif route.answer is not None:
        answer = {"description": "OK", "content": {"application/json": {"schema": _schema_of(route.answer)}}}
    else:
        answer = {"description": "OK"}
    responses[str(route.status)] = answer
    errors = route.errors + (() if route.public else (401,))
    for code in sorted(set(errors)):
        responses[str(code)] = {
            "description": ERROR_TEXT.get(code, "error"),
            "content": {"application/json": {"schema": _schema_of(Error)}},
        }
    op["responses"] = responses
    op["security"] = [] if route.public else [{"bearer": []}]
    return op


ERROR_TEXT = {
    400: "a bad request (the field is named)",
    401: "missing or wrong bearer token",
    403: "off the service's allow-lists (the image or URL is named)",
    404: "no such run or baseline",
    409: "not possible in the run's present state",
    422: "an invalid scenario or body (the field is named)",
}


def document(routes: list[Route], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    models: set[type[BaseModel]] = {Error}
    for route in routes:
        if isinstance(route.answer, type):
            models.add(route.answer)
        if route.body_model is not None:
            models.add(route.body_model)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schemas = models_json_schema(
        [(m, "serialization" if m is not route_body_model(routes, m) else "validation") for m in ordered],
        ref_template=REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "finishline service", "version": version, "description": "docs/service.md"},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def route_body_model(routes: list[Route], model: type[BaseModel]) -> type[BaseModel] | None:
    """``model`` when some route takes it as a body (validated), else None (answers are serialised)."""
    return model if any(r.body_model is model for r in routes) else None
