"""Retrying a logical request by its ``RetryPolicy``, with tenacity driving the loop.

Every attempt is kept (the record shows all of them). Waits are exponential with jitter; a
server's ``Retry-After`` wins when it asks for longer; the overall deadline stops retrying
early and also shortens the last attempt's timeout. Sleeping is ``gevent.sleep``, so a
waiting request costs its user nothing but time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import gevent
import tenacity

from loadgen.client import AttemptResult
from loadgen.spec import RetryPolicy

# send(number, retry_wait, timeout) -> the attempt's result
SendAttempt = Callable[[int, float, float | None], AttemptResult]


def should_retry(policy: RetryPolicy, result: AttemptResult) -> bool:
    attempt = result.attempt
    if attempt.error is None or result.cancelled:
        return False
    if attempt.status is not None and attempt.status >= 400:
        return attempt.status in policy.retry_on_status
    return attempt.error in policy.retry_on_errors


def backoff(policy: RetryPolicy, failed_attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait after ``failed_attempts`` failures."""
    base = policy.backoff_initial * policy.backoff_multiplier ** (failed_attempts - 1)
    wait = min(policy.backoff_max, base)
    wait += rng.uniform(0.0, policy.jitter * wait)
    if policy.honour_retry_after and retry_after is not None:
        wait = max(wait, min(retry_after, policy.max_retry_after))
    return wait


def run_attempts(policy: RetryPolicy, send: SendAttempt, rng: random.Random) -> list[AttemptResult]:
    """Send until success, a non-retryable failure, ``max_attempts`` or the deadline."""
    start = time.monotonic()
    results: list[AttemptResult] = []

    def attempt_once() -> AttemptResult:
        number = len(results) + 1
        waited = time.monotonic() - results[-1].attempt.end if results else 0.0
        timeout = policy.attempt_timeout
        if policy.deadline is not None:
            left = max(0.001, policy.deadline - (time.monotonic() - start))
            timeout = left if timeout is None else min(timeout, left)
        result = send(number, waited, timeout)
        results.append(result)
        return result

    if policy.max_attempts == 1:  # nothing to retry: skip building a tenacity loop per request
        attempt_once()
        return results

    def wait(state: tenacity.RetryCallState) -> float:
        last = results[-1]
        return backoff(policy, state.attempt_number, last.retry_after, rng)

    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(policy.max_attempts)
    if policy.deadline is not None:
        stop = stop | tenacity.stop_before_delay(policy.deadline)
    retrying = tenacity.Retrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_result(lambda r: should_retry(policy, r)),
        sleep=gevent.sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        reraise=True,
    )
    retrying(attempt_once)
    return results
