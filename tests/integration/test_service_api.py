"""The service against its own OpenAPI document, property-based: for every operation,
hypothesis draws path and query parameters and bodies from the document (a model's body from
its properties, or any JSON, any text or any bytes where the document says so), and every
answer must be documented for its operation, never a 5xx, and, where it is JSON, valid
against the schema the document gives it (jsonschema).

schemathesis is not on the package index this project uses (and hypothesis-jsonschema does not
work with the hypothesis there); this is the same check, kept small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import simulator_scenario
from tests.fixtures.service import Service
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

EXAMPLES = 40  # per operation


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
VALUES = {"string": st.text(max_size=40), "boolean": st.booleans(), "integer": st.integers(), "number": st.floats()}


def _model(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A model's body: its required properties and some of the others, each of its type (or any JSON)."""
    if "$ref" in schema:
        schema = components["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))

    def value(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
        return VALUES.get(spec.get("type", ""), JSON) | JSON

    return st.fixed_dictionaries(
        {name: value(spec) for name, spec in properties.items() if name in required},
        optional={name: value(spec) for name, spec in properties.items() if name not in required},
    )


def _body(op: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[tuple[str | None, bytes | None]]:
    content = op.get("requestBody", {}).get("content", {})
    options: list[st.SearchStrategy[tuple[str | None, bytes | None]]] = []
    for media, spec in content.items():
        schema = spec["schema"]
        if media == "application/json":
            values = (_model(schema, components) if "$ref" in schema else st.dictionaries(st.text(), JSON)) | JSON
            options.append(values.map(lambda v, m=media: (m, json.dumps(v).encode())))
        elif schema.get("format") == "binary":
            options.append(st.binary(max_size=2000).map(lambda v, m=media: (m, v)))
        else:
            options.append(st.text(max_size=2000).map(lambda v, m=media: (m, v.encode())))
    return st.one_of(options) if options else st.just((None, None))


def _params(op: dict[str, Any], known: dict[str, list[str]]) -> st.SearchStrategy[dict[str, tuple[str, str | None]]]:
    """Each parameter drawn from its enum, or from the values that exist (``known``) and any text."""
    fields: dict[str, st.SearchStrategy[tuple[str, str | None]]] = {}
    for p in op.get("parameters", []):
        values: st.SearchStrategy[str] = (
            st.sampled_from(p["schema"]["enum"])
            if "enum" in p["schema"]
            else st.sampled_from(known.get(p["name"], ["-"])) | st.text(min_size=1, max_size=40)
        )
        fields[p["name"]] = st.tuples(st.just(p["in"]), values if p["required"] else st.none() | values)
    return st.fixed_dictionaries(fields)


def _check(service: Service, doc: dict[str, Any], path: str, method: str, params: Any, body: Any) -> None:
    op = doc["paths"][path][method]
    url, query = path, {}
    for name, (where, value) in params.items():
        if where == "path":
            url = url.replace("{" + name + "}", quote(value, safe=""))
        elif value is not None:
            query[name] = value
    media, data = body
    headers = {"Content-Type": media} if media else {}
    answer = service.call(method.upper(), url, params=query, data=data, headers=headers)
    assert answer.status_code < 500, (method, url, answer.status_code, answer.text)
    documented = op["responses"].get(str(answer.status_code))
    assert documented is not None, f"{method} {url}: {answer.status_code} is not documented ({answer.text[:200]})"
    content = documented.get("content", {})
    if "application/json" in content and answer.headers["Content-Type"].startswith("application/json"):
        schema = {**content["application/json"]["schema"], "components": doc["components"]}
        jsonschema.validate(answer.json(), schema)


def test_every_answer_is_documented_and_valid(service: Service, tmp_path: Path) -> None:
    doc = service.call("GET", "/openapi.json").json()
    scenario = simulator_scenario(tmp_path, [{"name": "steady", "users": 1, "duration": "2s"}], workers=1)
    seed = service.call("POST", "/runs", data=json.dumps(scenario)).json()["id"]  # a run and a baseline to find
    wait_for(lambda: service.ended(seed), timeout=90, what="the seed run's end")
    assert service.call("POST", "/baselines", json={"name": "seed", "run": seed}).status_code == 201
    known = {"id": [seed], "baseline": ["seed"], "name": ["seed"]}
    checked = 0
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            _fuzz(service, doc, path, method, op, known)
            checked += 1
    assert checked == sum(len(ops) for ops in doc["paths"].values()) >= 13
    assert [run["id"] for run in service.call("GET", "/runs").json()["runs"]] == [seed]  # nothing drawn was a run


def _fuzz(
    service: Service, doc: dict[str, Any], path: str, method: str, op: dict[str, Any], known: dict[str, list[str]]
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(params=_params(op, known), body=_body(op, doc["components"]))
    def operation(params: Any, body: Any) -> None:
        _check(service, doc, path, method, params, body)

    operation()
