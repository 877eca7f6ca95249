"""The pre-flight check: is the target an OpenAI-compatible endpoint that streams, before any load?

Three questions, each answered in one line with the likely fix when the answer is no:

1. ``GET {base_url}/models`` answers JSON (``connection refused at ...``; ``base_url should end
   in /v1``; ``got text/html from ...``; ``answered 401: check the API key``);
2. the scenario's model is among those served (else the served ones are listed);
3. one short streamed request (sent by the workers' measuring client, so it is a record of
   phase ``preflight``, left out of the totals) answers server-sent events; a server that is
   still loading or briefly failing (429, 5xx, a reset) is asked again for up to a minute.

What the server said about itself (its models, ``owned_by``, its ``Server`` header) is kept as
the target's identity (``target.json`` in the run directory). A target without ``/v1/models``
sets ``preflight: false``. Runs in the coordinator (not gevent-patched): plain ``http.client``.
"""

from __future__ import annotations

import http.client
import json
import random
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from coordinator.results.identity import TargetIdentity
from loadgen.client import EndpointClient
from loadgen.config import TargetConfig
from loadgen.errors import UserError
from loadgen.records import ErrorClass, RequestRecord
from loadgen.retry import run_attempts
from loadgen.spec import RetryPolicy, SamplingParams
from loadgen.telemetry import worker_id

PREFLIGHT = "preflight"  # the phase and workload of the pre-flight request's record
# A server still loading (503) or briefly failing gets a few seconds before the check gives up.
RETRY = RetryPolicy(max_attempts=5, backoff_initial=0.5, backoff_max=2.0, attempt_timeout=30.0, deadline=60.0)

CONNECT_FIXES = "start the server or fix target.base_url"


class PreflightError(UserError):
    """The target is not usable as configured: one line with the likely fix (exit 2)."""


def _headers(config: TargetConfig) -> dict[str, str]:
    headers = {"Accept": "application/json, text/event-stream", **config.headers}
    key = config.api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _connection(config: TargetConfig, timeout: float) -> http.client.HTTPConnection:
    url = urlsplit(config.base_url)
    host = url.hostname or "127.0.0.1"
    if url.scheme == "https":
        return http.client.HTTPSConnection(host, url.port, timeout=timeout)
    return http.client.HTTPConnection(host, url.port, timeout=timeout)


def _request(
    config: TargetConfig, method: str, path: str, body: bytes | None, timeout: float
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    """Send one request; a network failure becomes one line naming the address."""
    url = urlsplit(config.base_url)
    where = f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}"
    conn = _connection(config, timeout)
    headers = _headers(config)
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, url.path.rstrip("/") + path, body=body, headers=headers)
        return conn.getresponse(), conn
    except ConnectionRefusedError:
        conn.close()
        raise PreflightError(
            f"target: connection refused at {where} (nothing listens there); {CONNECT_FIXES}"
        ) from None
    except TimeoutError:
        conn.close()
        raise PreflightError(f"target: no answer from {where} within {timeout:g} s; {CONNECT_FIXES}") from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise PreflightError(f"target: cannot reach {where} ({type(exc).__name__}: {exc}); {CONNECT_FIXES}") from None


def _status_problem(config: TargetConfig, what: str, status: int, content_type: str) -> str | None:
    if status in (401, 403):
        return f"{what} answered {status}: check the API key (target.api_key_env) or target.headers"
    if status == 404:
        if not config.base_url.rstrip("/").endswith("/v1"):
            return f"{what} answered 404: target.base_url should end in /v1 (it is {config.base_url})"
        return f"{what} answered 404: the endpoint has no such route; set target.preflight: false if it has no /models"
    if not 200 <= status < 300:
        return f"{what} answered HTTP {status}"
    if "html" in content_type:
        return f"got {content_type} from {what}, not JSON: target.base_url points at a web page; it should end in /v1"
    return None


def _models(config: TargetConfig, timeout: float) -> tuple[dict[str, Any], Mapping[str, str]]:
    what = f"GET {config.base_url.rstrip('/')}/models"
    response, conn = _request(config, "GET", "/models", None, timeout)
    try:
        content_type = response.getheader("Content-Type", "") or ""
        raw = response.read(1 << 20)
        problem = _status_problem(config, what, response.status, content_type)
        if problem is not None:
            raise PreflightError(f"target: {problem}")
        try:
            data = json.loads(raw)
        except ValueError:
            raise PreflightError(
                f"target: {what} did not answer JSON ({content_type or 'no content type'}); "
                "is target.base_url an OpenAI-compatible API ending in /v1?"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise PreflightError(f"target: {what} is not an OpenAI-compatible model list (no 'data' list)")
        return data, dict(response.getheaders())
    finally:
        conn.close()


def _streams(config: TargetConfig, api: str, run_id: str, timeout: float) -> RequestRecord:
    """One short streamed request through the workers' own measuring client; it must answer
    server-sent events. Its record (phase ``preflight``, left out of the totals) joins the run's,
    so every request finishline sent is a record."""
    path = "/chat/completions" if api == "chat" else "/completions"
    what = f"POST {config.base_url.rstrip('/')}{path}"
    client = EndpointClient(config, max_connections=1)
    try:
        prompt: list[dict[str, str]] | str = [{"role": "user", "content": "Say OK."}] if api == "chat" else "Say OK."
        body = client.body(api, True, prompt, 2, SamplingParams())
        results = run_attempts(
            RETRY,
            lambda number, waited, left: client.send(
                api, body, True, number=number, retry_wait=waited, timeout=left, headers={"Connection": "close"}
            ),
            random.Random(0),
        )
    finally:
        client.close()
    attempts = [r.attempt for r in results]
    attempt = attempts[-1]
    record = RequestRecord.of_attempts(
        attempts, run_id=run_id, worker=worker_id(), phase=PREFLIGHT, workload=PREFLIGHT, api=api, target=config.label
    )
    if attempt.status is not None:
        problem = _status_problem(config, what, attempt.status, "")
        if problem is not None:
            raise PreflightError(f"target: {problem} ({attempt.error_detail})")
    if attempt.error is not None and attempt.error != ErrorClass.EMPTY:
        raise PreflightError(
            f"target: {what} with stream=true did not answer server-sent events "
            f"({attempt.error}: {attempt.error_detail}); the endpoint does not stream"
        )
    return record


def preflight(
    config: TargetConfig, run_id: str, api: str = "chat", check_model: bool = True, timeout: float = 10.0
) -> tuple[TargetIdentity, RequestRecord]:
    """Check the endpoint; raise :class:`PreflightError` (one line, the likely fix) when it is not usable.
    Returns what the server said about itself and the record of the streamed request."""
    data, headers = _models(config, timeout)
    served = [str(m.get("id")) for m in data["data"] if isinstance(m, dict) and m.get("id") is not None]
    if check_model and config.model not in served:
        listed = ", ".join(served[:10]) or "none"
        raise PreflightError(f"target.model: {config.model} is not served at {config.base_url}; it serves: {listed}")
    used = next((m for m in data["data"] if isinstance(m, dict) and m.get("id") == config.model), None)
    record = _streams(config, api, run_id, timeout)
    server = next((v for k, v in headers.items() if k.lower() == "server"), None)
    owned_by = used.get("owned_by") if isinstance(used, dict) else None
    identity = TargetIdentity(
        base_url=config.base_url,
        models=served,
        owned_by=str(owned_by) if owned_by is not None else None,
        server=server,
        streams=True,
    )
    return identity, record
