"""Scenario files: strict models, YAML loading with line numbers, and the exported JSON Schema."""
