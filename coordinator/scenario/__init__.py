"""Scenario files: strict models, YAML loading with line numbers, and the exported JSON Schema."""

from coordinator.scenario.loader import Problem, load_scenario, validate_file
from coordinator.scenario.models import Scenario

__all__ = ["Problem", "Scenario", "load_scenario", "validate_file"]
