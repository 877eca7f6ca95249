"""The scenario's JSON Schema, for editors (``# yaml-language-server: $schema=...``) and docs."""

from __future__ import annotations

import json
from typing import Any

from coordinator.scenario.models import Scenario

SCHEMA_ID = "https://finishline.dev/scenario.schema.json"


def scenario_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_json() -> str:
    return json.dumps(scenario_schema(), indent=2, sort_keys=False) + "\n"
