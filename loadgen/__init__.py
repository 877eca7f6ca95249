"""Load generation that runs inside Locust workers."""
