"""Baselines: a run (or another tool's published result) kept to compare later runs with."""
