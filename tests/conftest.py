"""The suite's two lanes, and the one thing every test process must do first.

The loadgen tests run Locust users in this process, and Locust patches the standard library
with gevent when first imported. That must happen before anything imports ssl, or patched
ssl recurses forever (gevent issue 1016) — so it happens here, before any test module loads.

Lanes: ``tests/unit`` needs nothing but this process (whole lane: seconds);
``tests/integration`` starts real services (redis-server, the simulator, Locust workers,
prometheus, dockerd containers, Chromium). Every integration test is marked ``slow``, so
``-m "not slow"`` selects the unit lane too; a unit test that carries an integration marker
or asks for a service fixture is refused at collection (``tests/unit/conftest.py`` refuses
processes while it runs). When both lanes run (the README's command, CI), a failed unit test
stops the session before the first integration test: a broken change fails in seconds, not
after the half hour the integration lane takes. Shared fixtures live in tests/fixtures/, one module per service;
test data in tests/factories.py.
"""

from gevent import monkey

monkey.patch_all()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

pytest_plugins = [
    "tests.fixtures.simulator",
    "tests.fixtures.services",
    "tests.fixtures.browser",
    "tests.fixtures.service",
]

HERE = Path(__file__).parent
UNIT, INTEGRATION = HERE / "unit", HERE / "integration"
INTEGRATION_MARKERS = frozenset({"slow", "docker", "browser"})
SERVICE_FIXTURES = frozenset(
    {
        "redis_server",
        "service",
        "simulator",
        "prometheus_server",
        "docker_engine",
        "docker_clean",
        "worker_image",
        "chromium",
        "open_page",
    }
)


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `-m "not slow"` must see the lane's marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.slow)
        elif UNIT in item.path.parents:
            marked = INTEGRATION_MARKERS & {mark.name for mark in item.iter_markers()}
            services = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
            if marked or services:
                raise pytest.UsageError(
                    f"{item.nodeid} needs {', '.join(sorted(marked | services))}: it belongs in tests/integration"
                )
        else:
            raise pytest.UsageError(f"{item.nodeid}: a test module lives in tests/unit or tests/integration")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """After the unit lane's last test, stop if any test failed (see the module's docstring)."""
    outcome = yield
    lane_ends = nextitem is not None and UNIT in item.path.parents and INTEGRATION in nextitem.path.parents
    if lane_ends and item.session.testsfailed:
        item.session.shouldstop = f"{item.session.testsfailed} unit test(s) failed: the integration tests were not run"
    return outcome
