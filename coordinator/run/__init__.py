"""A run: plan the phases, start what the scenario needs, drive Locust, collect, tear down."""
