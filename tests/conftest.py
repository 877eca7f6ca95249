"""Shared fixtures live in tests/fixtures/, one module per real service.

The loadgen tests run Locust users in this process, and Locust patches the standard library
with gevent when first imported. That must happen before anything imports ssl, or patched
ssl recurses forever (gevent issue 1016) — so it happens here, before any test module loads.
"""

from gevent import monkey

monkey.patch_all()

pytest_plugins = [
    "tests.fixtures.simulator",
    "tests.fixtures.services",
    "tests.fixtures.browser",
]
