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
from dataclasses import dataclass

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


@dataclass(slots=True)
class FailureBackoff:
    """A closed-loop user whose units fail fast backs off, so a dead target is not hammered.

    A unit *fails fast* when a request of it failed within ``fast_s`` seconds of the unit's start
    (connection refused, an error page). After ``after`` such units in a row the user waits
    ``start`` seconds before its next unit, doubling with each further fast failure up to ``cap``;
    a unit that succeeds (or fails slowly: the server is there, it is just struggling) resets it.
    The wait adds to the phase's think time. The run itself ends early when every request keeps
    failing (``checks.abort_when_down_s``).
    """

    fast_s: float = 0.5
    after: int = 2
    start: float = 0.05
    cap: float = 2.0
    streak: int = 0

    def observe(self, ok: bool, seconds: float) -> None:
        self.streak = self.streak + 1 if not ok and seconds < self.fast_s else 0

    def wait(self) -> float:
        if self.streak < self.after:
            return 0.0
        return float(min(self.cap, self.start * 2 ** (self.streak - self.after)))
