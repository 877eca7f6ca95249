"""Comparison: a run against a baseline, per step, workload and metric, with a verdict and an exit code."""
