"""How a worker process joins a run: it says who it is, the master answers with the run's
configuration or refuses it, and the worker builds its runtime and says it is ready.

The messages are ``loadgen.config``'s: ``finishline_hello`` out, ``finishline_config`` or
``finishline_refused`` back, ``finishline_configured`` out. The worker listens for the
phase messages before it says hello (``loadgen.worker.listen``), so none is lost while the
configuration is on its way. A worker that is refused, or cannot run the configuration (a
prompt file missing on its host), prints one line to stderr and exits non-zero: Locust's own
shutdown, which tells the master it quit.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pydantic import ValidationError

from loadgen.config import (
    CONFIG_MESSAGE,
    CONFIGURED_MESSAGE,
    HELLO_MESSAGE,
    REDIS_URL_ENV,
    REFUSED_MESSAGE,
    WorkerConfig,
    WorkerConfigured,
    WorkerHello,
    WorkerRefused,
    worker_redis_url,
)
from loadgen.errors import FinishlineError, describe_validation_error
from loadgen.telemetry import worker_id
from loadgen.worker import WorkerRuntime, install, listen, runtime_of

LEFT_EXIT_CODE = 3  # a worker that could not join: refused, or its configuration cannot run here


def join(environment: Any) -> None:
    """Ask the master for the run's configuration; the runtime is installed when it comes."""
    runner = environment.runner
    name = worker_id()
    master_host = str(getattr(runner, "master_host", "127.0.0.1"))
    listen(environment)

    def on_config(msg: Any, **_: Any) -> None:
        if runtime_of(environment) is not None:  # answered twice (a reconnect): the first one stands
            return
        try:
            config = WorkerConfig.model_validate(msg.data)
            url = worker_redis_url(config.redis_url, master_host, os.environ.get(REDIS_URL_ENV))
            install(environment, WorkerRuntime(config.model_copy(update={"redis_url": url}), environment))
        except ValidationError as exc:
            reason = f"{describe_validation_error(exc)} (files a workload names are read from the same path here)"
            runner.send_message(CONFIGURED_MESSAGE, WorkerConfigured(worker=name, error=reason).model_dump())
            leave(environment, f"finishline worker: cannot run the master's configuration: {reason}")
            return
        except FinishlineError as exc:
            runner.send_message(CONFIGURED_MESSAGE, WorkerConfigured(worker=name, error=str(exc)).model_dump())
            leave(environment, f"finishline worker: cannot run the master's configuration: {exc}")
            return
        runner.send_message(CONFIGURED_MESSAGE, WorkerConfigured(worker=name).model_dump())

    def on_refused(msg: Any, **_: Any) -> None:
        leave(environment, f"finishline worker: refused by the master: {WorkerRefused.model_validate(msg.data).reason}")

    runner.register_message(CONFIG_MESSAGE, on_config)
    runner.register_message(REFUSED_MESSAGE, on_refused)
    runner.send_message(HELLO_MESSAGE, WorkerHello.here(name).model_dump())


def leave(environment: Any, line: str) -> None:
    """Print ``line`` and end the worker through Locust's shutdown (it tells the master it quit)."""
    print(line, file=sys.stderr, flush=True)
    environment.process_exit_code = LEFT_EXIT_CODE
    environment.runner.quit()
