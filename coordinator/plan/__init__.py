"""The plan: a scenario's phases as the ordered steps the run executes."""
