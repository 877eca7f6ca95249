"""The JSON Schema of ``summary.json`` (``docs/summary.schema.json``), for whoever reads summaries."""

from __future__ import annotations

import json
from typing import Any

from coordinator.results.summary import Summary

SCHEMA_ID = "https://finishline.dev/summary.schema.json"


def summary_schema() -> dict[str, Any]:
    schema = Summary.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_json() -> str:
    return json.dumps(summary_schema(), indent=2) + "\n"
