"""One HTTP attempt against an OpenAI-compatible endpoint, measured as the bytes arrive.

Built on geventhttpclient (the client under Locust's FastHttpUser): its pooled connections
and C response parser de-chunk the body, and after the headers this module reads the socket
itself, so each ``recv`` is timestamped and handed to the SSE parser — nothing is buffered until
the end. The time stamp is the kernel's receive time of the bytes (``SO_TIMESTAMPNS``), so a
busy event loop that reads them late does not add its own delay to TTFT and ITL; where the
kernel gives none, it is the loop's wake-up time (``loadgen.wakeclock``). Every failure becomes an error class on the attempt;
nothing raised here escapes to kill a user.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, cast

import gevent
import gevent.monkey
import orjson
from geventhttpclient import HTTPClient
from geventhttpclient.connectionpool import ConnectionPool
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.url import URL

from loadgen.config import TargetConfig
from loadgen.corpus import count_tokens
from loadgen.records import Attempt, ErrorClass
from loadgen.spec import SamplingParams
from loadgen.sse import StreamParser
from loadgen.tokenizer import TokenCounter, load_counter
from loadgen.wakeclock import wake_clock

_original_select = gevent.monkey.get_original("select", "select")
_CONNECT_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}
_RECV = 65536
# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS; the socket module does not name it): the kernel
# stamps each received packet, recvmsg hands the stamp of the last one read (CLOCK_REALTIME).
_SO_TIMESTAMPNS = 35
_ANCILLARY = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("qq")


def kernel_stamps(sock: Any) -> bool:
    """Ask the kernel to stamp what this socket receives; False where it cannot."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except (OSError, AttributeError):
        return False
    return hasattr(sock, "recvmsg")


@dataclass(slots=True)
class AttemptResult:
    """An attempt as recorded, plus what the caller needs next: the reply and the server's wait hint."""

    attempt: Attempt
    text: str | None = None
    tool_arguments: tuple[str, ...] = ()  # each tool call's arguments JSON (kept with the text)
    retry_after: float | None = None
    cancelled: bool = False  # the greenlet was killed mid-attempt; the caller must stop too


def parse_retry_after(value: str | list[str] | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None when absent or unreadable.

    A header sent more than once comes as a list: its first value counts."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(status: int) -> ErrorClass | None:
    if status == 429:
        return ErrorClass.HTTP_429
    if 400 <= status < 500:
        return ErrorClass.HTTP_4XX
    if status >= 500:
        return ErrorClass.HTTP_5XX
    if status < 200 or status >= 300:  # a redirect or interim status: the base URL is likely wrong
        return ErrorClass.HTTP_4XX
    return None


def exception_error(exc: BaseException, got_response: bool) -> ErrorClass:
    """Map what the socket or parser raised onto an error class."""
    if isinstance(exc, (TimeoutError, socket.timeout, gevent.Timeout)):
        return ErrorClass.TIMEOUT
    if isinstance(exc, HTTPConnectionClosed):
        return ErrorClass.RESET
    if isinstance(exc, HTTPParseError):
        return ErrorClass.RESET if got_response else ErrorClass.MALFORMED
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
        return ErrorClass.CONNECT
    if isinstance(exc, OSError) and exc.errno in _CONNECT_ERRNOS and not got_response:
        return ErrorClass.CONNECT
    return ErrorClass.RESET


class _NoYieldLiveness(ConnectionPool):
    """geventhttpclient checks a pooled connection with gevent's ``select(..., 0)``, which yields
    to the hub: under load the request then leaves seconds-of-ms after its ``sent`` stamp. The
    same check with the unpatched ``select`` costs one syscall and never switches greenlets."""

    handed_out: dict[int, float]  # greenlet id -> when the pool gave it a socket to write on
    _addresses: Any = None  # the target's addresses, resolved once

    def _resolve(self) -> Any:
        """The target's addresses, looked up for the first connection only: each new connection
        would otherwise ask gevent's resolver again, which runs ``getaddrinfo`` in a thread and
        hands the answer back through the hub, milliseconds under load, all before ``sent``."""
        if self._addresses is None:
            self._addresses = super()._resolve()
        return self._addresses

    def get_socket(self) -> Any:
        """The pooled socket, and the time it was handed over: the request is written right after,
        so ``sent`` excludes the client's own header building and pool bookkeeping."""
        sock = super().get_socket()
        self.handed_out[id(gevent.getcurrent())] = time.monotonic()
        return sock

    def _is_socket_alive(self, sock: Any) -> bool:
        if sock is None:
            return False
        try:
            if sock.fileno() < 0:
                return False
            readable, _, _ = _original_select([sock], [], [], 0.0)
            return not readable
        except (OSError, ValueError):
            return False


def _without_yielding_check(pool: ConnectionPool) -> dict[int, float]:
    """Give ``pool`` the liveness check of :class:`_NoYieldLiveness`; returns its ``handed_out`` times."""
    base = type(pool)
    pool.__class__ = type(f"NoYield{base.__name__}", (_NoYieldLiveness, base), {})
    swapped = cast(_NoYieldLiveness, pool)  # its class now derives from _NoYieldLiveness
    swapped.handed_out = {}
    return swapped.handed_out


class EndpointClient:
    """Shared by all users of a worker: one connection pool, one set of default headers."""

    def __init__(self, target: TargetConfig, max_connections: int = 4096) -> None:
        self.target = target
        url = URL(target.base_url)
        prefix = url.path.rstrip("/")
        self.paths = {"chat": f"{prefix}/chat/completions", "completions": f"{prefix}/completions"}
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        headers.update(target.headers)
        key = target.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.http = HTTPClient.from_url(
            url,
            concurrency=max_connections,
            connection_timeout=target.connect_timeout,
            network_timeout=target.read_timeout,
            headers=headers,
        )
        self._handed_out = _without_yielding_check(self.http._connection_pool)
        self.count_tokens: TokenCounter | None = load_counter(target.tokenizer) if target.tokenizer else None

    def close(self) -> None:
        self.http.close()

    def warm(self, connections: int) -> int:
        """Open up to ``connections`` connections to the target now and leave them in the pool, so
        the first requests that need them do not pay for the connect after their ``sent`` is due
        (a replay does this before its origin). Returns how many are pooled; a target that cannot
        be reached is left to the requests to report."""
        pool = self.http._connection_pool
        held: list[Any] = []
        try:
            for _ in range(connections):
                held.append(pool.get_socket())
        except OSError:
            pass
        finally:
            self._handed_out.pop(id(gevent.getcurrent()), None)
            for sock in held:
                pool.return_socket(sock)
        return len(held)

    def body(
        self,
        api: str,
        stream: bool,
        prompt: list[dict[str, str]] | str,
        max_tokens: int | None,
        sampling: SamplingParams,
        tools: list[dict[str, Any]] | None = None,
    ) -> bytes:
        """The JSON request body, usage reporting requested so token counts come from the server;
        ``tools``: the OpenAI tools array (chat)."""
        body: dict[str, Any] = {"model": self.target.model}
        if api == "chat":
            body["messages"] = prompt
            if tools is not None:
                body["tools"] = tools
        else:
            body["prompt"] = prompt
        body["stream"] = stream
        if stream:
            options: dict[str, bool] = {"include_usage": True}
            if self.target.continuous_usage:
                options["continuous_usage_stats"] = True
            body["stream_options"] = options
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        for name in ("temperature", "top_p", "seed", "ignore_eos", "stop"):
            value = getattr(sampling, name)
            if value is not None:
                body[name] = value
        body.update(sampling.extra_body)
        return orjson.dumps(body)

    def send(
        self,
        api: str,
        body: bytes,
        stream: bool,
        *,
        number: int = 1,
        retry_wait: float = 0.0,
        timeout: float | None = None,
        want_text: bool = False,
        headers: dict[str, str] | None = None,
    ) -> AttemptResult:
        """Send one attempt and measure it; never raises for anything the endpoint or network does.

        ``api``, ``body`` and ``stream`` say what is sent; the rest, named at every call site (keyword
        arguments, no object to build per attempt): ``number`` and ``retry_wait`` are recorded on
        the attempt, ``timeout`` bounds it, ``want_text`` keeps the reply's text, ``headers`` are
        sent on top of the target's."""
        timer = gevent.Timeout(timeout) if timeout else None
        handed_out = self._handed_out
        me = id(gevent.getcurrent())
        sent = time.monotonic()
        attempt = Attempt(number=number, sent=sent, end=sent, retry_wait=retry_wait)
        result = AttemptResult(attempt)
        response = None
        parser: StreamParser | None = None
        try:
            if timer is not None:
                timer.start()
            try:
                response = self.http.request("POST", self.paths[api], body=body, headers=headers)
            except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
                # A pooled keep-alive connection the server closed just before we reused it (llama.cpp
                # announces keep-alive, then closes after each stream): nothing was answered, so send
                # once more on a fresh connection and time the attempt from that send.
                attempt.sent = sent = time.monotonic()
                response = self.http.request("POST", self.paths[api], body=body, headers=headers)
            attempt.first_byte = time.monotonic()
            attempt.sent = sent = handed_out.pop(me, sent)  # the socket's handover, just before the write
            attempt.status = status = response.status_code
            failed = status_error(status)
            if failed is not None:
                detail = response.read()[:300].decode("utf-8", "replace")
                attempt.error = failed.value
                attempt.error_detail = f"HTTP {status}: {' '.join(detail.split())}"[:300]
                result.retry_after = parse_retry_after(response.get("retry-after"))
            elif stream:
                parser = StreamParser(sent, api == "chat", want_text or self.count_tokens is not None)
                self._read_stream(response, parser)
                self._finish_stream(result, parser, self.count_tokens)
            else:
                self._finish_whole(result, response.read(), api, want_text, self.count_tokens)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._fail(attempt, ErrorClass.TIMEOUT, f"attempt exceeded {timeout:g} s", parser)
        except gevent.GreenletExit:
            # the run is stopping: keep what was measured; the caller records it and exits
            self._fail(attempt, ErrorClass.CANCELLED, "the run stopped while in flight", parser)
            result.cancelled = True
        except (OSError, HTTPParseError) as exc:
            error = exception_error(exc, response is not None)
            self._fail(attempt, error, f"{type(exc).__name__}: {exc}", parser)
        except Exception as exc:  # noqa: BLE001 - anything else a broken peer provokes: recorded, never fatal to the user
            error = ErrorClass.MALFORMED if response is not None else ErrorClass.CONNECT
            self._fail(attempt, error, f"{type(exc).__name__}: {exc}", parser)
        finally:
            handed_out.pop(me, None)
            if timer is not None:
                timer.close()
            if response is not None:
                response.release()  # closes the connection unless the message completed
        attempt.end = time.monotonic()
        return result

    def _read_stream(self, response: Any, parser: StreamParser) -> None:
        """The hot loop: recv, de-chunk (C parser), hand the new bytes to the SSE parser.

        The socket's own timeout would arm a timer for every wait; instead one repeating
        timer per stream checks the time of the last received bytes, so a silent server
        still fails with ``timeout`` within 1.25 x ``read_timeout``.
        """
        monotonic = time.monotonic
        buf: bytearray = response._body_buffer  # filled by the C parser's on_body callback
        feed = parser.feed
        if buf:
            feed(bytes(buf), monotonic())
            del buf[:]
        if response.message_complete:  # it all came with the headers; the socket is back in the pool
            return
        sock = response._sock
        clock = wake_clock()
        silence = self.target.read_timeout
        last = [monotonic()]
        stamped = kernel_stamps(sock)
        realtime_offset = time.time() - monotonic()  # kernel stamps are CLOCK_REALTIME
        unpack = _TIMESPEC.unpack
        reader = gevent.getcurrent()

        def watch() -> None:
            if monotonic() - last[0] >= silence:
                reader.throw(TimeoutError(f"no bytes for {silence:g} s"))

        watchdog = gevent.get_hub().loop.timer(silence / 4, silence / 4)
        watchdog.start(watch)
        sock.settimeout(None)
        try:
            while not response.message_complete:
                wakes = clock.wakes
                if stamped:
                    data, ancillary, _, _ = sock.recvmsg(_RECV, _ANCILLARY)
                else:
                    data, ancillary = sock.recv(_RECV), None
                if ancillary:  # when the kernel received the (last) packet read
                    sec, nsec = unpack(ancillary[0][2][:16])
                    now = sec + nsec * 1e-9 - realtime_offset
                else:  # slept in recv: the bytes were there when the loop woke; else they are here now
                    now = clock.time if clock.wakes != wakes else monotonic()
                last[0] = now
                if not data:
                    response.feed(b"")  # EOF ends a body delimited by the connection closing
                    if buf:
                        feed(bytes(buf), now)
                        del buf[:]
                    if not response.message_complete:
                        raise HTTPConnectionClosed("connection closed mid-stream")
                    break
                response.feed(data)
                if buf:
                    feed(bytes(buf), now)
                    del buf[:]
        finally:
            watchdog.close()
            # The same socket may already be back in the pool: give it its timeout again.
            with contextlib.suppress(OSError):
                sock.settimeout(silence)

    @staticmethod
    def _finish_stream(result: AttemptResult, parser: StreamParser, count: TokenCounter | None) -> None:
        attempt = result.attempt
        attempt.error, attempt.error_detail = parser.finish()
        EndpointClient._copy_stream(attempt, parser)
        if parser.want_text:
            result.text = parser.text()
            if parser.tool_pieces:
                result.tool_arguments = tuple(parser.tool_arguments())
            if count is None:
                return
            if parser.reasoning_tokens is None and not parser.continuous and parser.reasoning_pieces:
                attempt.reasoning_tokens = count(parser.reasoning_text())  # not one per reasoning event
            if attempt.tokens_estimated:
                answer = count(result.text) + sum(count(arguments) for arguments in result.tool_arguments)
                attempt.output_tokens = answer + (attempt.reasoning_tokens or 0)
                attempt.tokens_estimated = False

    @staticmethod
    def _copy_stream(attempt: Attempt, parser: StreamParser) -> None:
        attempt.first_token = parser.first_token
        attempt.chunk_us = parser.chunk_us
        attempt.chunk_tokens = parser.chunk_tokens
        attempt.prompt_tokens = parser.prompt_tokens
        attempt.output_tokens = parser.token_count()
        attempt.cached_tokens = parser.cached_tokens
        attempt.tokens_estimated = parser.estimated
        attempt.response_id = parser.response_id or None
        attempt.first_answer = parser.first_answer
        attempt.answer_chunk = parser.answer_chunk
        attempt.reasoning_tokens = parser.reasoning_count()

    @staticmethod
    def _fail(attempt: Attempt, error: ErrorClass, detail: str, parser: StreamParser | None) -> None:
        attempt.error = error.value
        attempt.error_detail = detail[:300]
        if parser is not None:  # keep what was measured before the failure
            EndpointClient._copy_stream(attempt, parser)

    @staticmethod
    def _finish_whole(result: AttemptResult, raw: bytes, api: str, want_text: bool, count: TokenCounter | None) -> None:
        """A non-streamed reply: the first token is the whole reply (TTFT = E2E, as vLLM's benchmark)."""
        attempt = result.attempt
        now = time.monotonic()
        reasoning = ""
        arguments: list[str] = []
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            if api == "chat":
                message = choice["message"]
                text = message.get("content") or ""
                reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
                arguments = [call["function"]["arguments"] or "" for call in message.get("tool_calls") or []]
            else:
                text = choice.get("text") or ""
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
            attempt.error = ErrorClass.MALFORMED.value
            attempt.error_detail = f"reply is not a completion: {type(exc).__name__}"
            return
        attempt.response_id = data.get("id") if isinstance(data.get("id"), str) else None
        usage = data.get("usage") or {}
        attempt.prompt_tokens = usage.get("prompt_tokens")
        attempt.output_tokens = usage.get("completion_tokens")
        attempt.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        attempt.reasoning_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        tokens = count if count is not None else count_tokens  # counted, not remembered (loadgen.corpus)
        if attempt.reasoning_tokens is None:
            attempt.reasoning_tokens = tokens(reasoning) if reasoning else 0
        if attempt.output_tokens is None:
            attempt.output_tokens = tokens(text) + tokens("".join(arguments)) + attempt.reasoning_tokens
            attempt.tokens_estimated = count is None
        answered = bool(text or arguments)
        if not answered and not reasoning:
            attempt.error = ErrorClass.EMPTY.value
            attempt.error_detail = "no content in the reply"
            return
        attempt.first_token = now
        if answered:
            attempt.first_answer, attempt.answer_chunk = now, 0
        attempt.chunk_us = [int((now - attempt.sent) * 1e6)]
        attempt.chunk_tokens = [attempt.output_tokens]
        if want_text:
            result.text = text if answered else reasoning
            result.tool_arguments = tuple(arguments)
