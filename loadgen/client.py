"""One HTTP attempt against an OpenAI-compatible endpoint, measured as the bytes arrive.

Built on geventhttpclient (the client under Locust's FastHttpUser): its pooled connections
and C response parser de-chunk the body, and after the headers this module reads the socket
itself, so each ``recv`` is timestamped and handed to the SSE parser — nothing is buffered until
the end. The time stamp is the kernel's receive time of the bytes (``SO_TIMESTAMPNS``), so a
busy event loop that reads them late does not add its own delay to TTFT and ITL; where the
kernel gives none, it is the loop's wake-up time (``loadgen.wakeclock``). Every failure becomes
an error class on the attempt (``loadgen.failures``); nothing raised here escapes to kill a user.

One class, the hot path of every request: kept whole so that a reader follows an attempt from
its first byte sent to its last read in one place. Kernel stamps are ``loadgen.kernelstamps``,
the pool that does not yield before a send ``loadgen.pool``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.lock
import gevent.monkey
import orjson
from geventhttpclient import HTTPClient
from geventhttpclient._parser import HTTPResponseParser
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError, HTTPSocketPoolResponse
from geventhttpclient.url import URL

from loadgen.config import TargetConfig
from loadgen.corpus import count_tokens
from loadgen.failures import exception_error, parse_retry_after, status_error
from loadgen.kernelstamps import ANCILLARY, TIMESPEC, arrival_time, kernel_stamps
from loadgen.pool import without_yielding_check
from loadgen.records import Attempt, ErrorClass
from loadgen.spec import SamplingParams
from loadgen.sse import StreamParser
from loadgen.tokenizer import TokenCounter, load_counter
from loadgen.wakeclock import wake_clock

_RECV = 65536
_FRAMING = {"content-length", "transfer-encoding", "expect"}  # headers that change how a body is sent


@dataclass(slots=True)
class AttemptResult:
    """An attempt as recorded, plus what the caller needs next: the reply and the server's wait hint."""

    attempt: Attempt
    text: str | None = None
    tool_arguments: tuple[str, ...] = ()  # each tool call's arguments JSON (kept with the text)
    retry_after: float | None = None
    cancelled: bool = False  # the greenlet was killed mid-attempt; the caller must stop too


class EndpointClient:
    """Shared by all users of a worker: one connection pool, one set of default headers."""

    def __init__(self, target: TargetConfig, max_connections: int = 4096) -> None:
        self.target = target
        url = URL(target.base_url)
        # TLS: the bytes on the OS socket are encrypted, so they are read and written through the
        # TLS socket (no kernel stamps: what the kernel stamps is not what the parser gets)
        self.tls = url.scheme == "https"
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
        self._pool = without_yielding_check(self.http._connection_pool)
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], bytes | None] = {}
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
        sent = time.monotonic()
        attempt = Attempt(number=number, sent=sent, end=sent, retry_wait=retry_wait)
        result = AttemptResult(attempt)
        response = None
        parser: StreamParser | None = None
        try:
            if timer is not None:
                timer.start()
            path = self.paths[api]
            try:
                response, arrived = self._post(attempt, path, body, headers)
            except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
                # A pooled keep-alive connection the server closed just before we reused it (llama.cpp
                # announces keep-alive, then closes after each stream): nothing was answered, so send
                # once more on a fresh connection and time the attempt from that send.
                response, arrived = self._post(attempt, path, body, headers)
            attempt.first_byte = time.monotonic()
            sent = attempt.sent
            attempt.status = status = response.status_code
            failed = status_error(status)
            if failed is not None:
                detail = response.read()[:300].decode("utf-8", "replace")
                attempt.error = failed.value
                attempt.error_detail = f"HTTP {status}: {' '.join(detail.split())}"[:300]
                result.retry_after = parse_retry_after(response.get("retry-after"))
            elif stream:
                parser = StreamParser(sent, api == "chat", want_text or self.count_tokens is not None)
                self._read_stream(response, parser, arrived)
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
            if timer is not None:
                timer.close()
            if response is not None:
                response.release()  # closes the connection unless the message completed
        attempt.end = time.monotonic()
        return result

    def _head(self, path: str, headers: dict[str, str] | None) -> bytes | None:
        """The request line and headers of a POST to ``path``, up to the value of its
        ``Content-Length`` (built, and every field checked, by geventhttpclient, once per path
        and header set); None when ``headers`` set the framing themselves (then
        ``HTTPClient.request`` sends it)."""
        key = (path, tuple(headers.items()) if headers else ())
        if key in self._heads:
            return self._heads[key]
        head: bytes | None = None
        if not self.tls and not any(name.lower() in _FRAMING for name in headers or ()):
            text = self.http._build_request("POST", path, body=b"-", headers=headers)
            marker = "\r\nContent-Length: 1\r\n"
            if marker in text:
                head = (text.replace(marker, "\r\n", 1)[:-2] + "Content-Length: ").encode("latin-1")
        self._heads[key] = head
        return head

    def _post(
        self, attempt: Attempt, path: str, body: bytes, headers: dict[str, str] | None
    ) -> tuple[Any, float | None]:
        """Write the request on a pooled connection and read the response's headers; stamps
        ``attempt.sent`` just before the write. Returns the response and when the bytes that
        completed its headers arrived (the kernel's stamp; None when unknown): body bytes that
        came with the headers, the first token often among them when the loop was busy, get that
        time, not the time the loop got round to them.

        What ``HTTPClient.request`` does for this one case (a POST of known bytes), without its
        per-request work: the header block is built once (:meth:`_head`), the bytes go to the
        OS socket in one ``send`` where it takes them all, and the loop waits for the reply to be
        readable before the first ``recv`` rather than learning ``EAGAIN`` from it. A burst of
        closed-loop users sending at once pays that work once each, before ``sent``: it is what
        delays the last of them."""
        head = self._head(path, headers)
        if head is None:
            attempt.sent = time.monotonic()
            return self.http.request("POST", path, body=body, headers=headers), None
        pool = self._pool
        sock = pool.get_socket()
        try:
            data = head + b"%d\r\n\r\n" % len(body) + body
            raw = sock._sock
            stamped = kernel_stamps(sock)  # before the write: the reply's first packet is stamped too
            attempt.sent = time.monotonic()
            try:
                written = raw.send(data)
            except BlockingIOError:
                written = 0
            if written < len(data):
                sock.sendall(data[written:])
            readable = sock._read_event
            while True:
                sock._wait(readable)
                try:
                    if stamped:
                        first, ancillary, _, _ = raw.recvmsg(self.http.block_size, ANCILLARY)
                    else:
                        first, ancillary = raw.recv(self.http.block_size), None
                    break
                except BlockingIOError:
                    continue
        except ConnectionResetError as exc:
            pool.release_socket(sock)
            raise HTTPConnectionClosed("connection closed.") from exc
        except BaseException:
            pool.release_socket(sock)
            raise
        if not first:  # closed before answering: a keep-alive connection the server had dropped
            pool.release_socket(sock)
            raise HTTPConnectionClosed("connection closed.")
        # the time holds for the body only if these bytes completed the headers (no later recv of
        # geventhttpclient's, unstamped, brought them) and were not an interim 1xx reply
        whole = b"\r\n\r\n" in first and not first.startswith(b"HTTP/1.1 1")
        arrived = arrival_time(ancillary) if whole else None
        response = HTTPSocketPoolResponse(
            sock,
            pool,
            block_size=self.http.block_size,
            method="POST",
            headers_type=self.http.headers_type,
            pre_buffered=first,
        )
        return response, arrived

    def _read_stream(self, response: Any, parser: StreamParser, arrived: float | None = None) -> None:
        """The hot loop: recv, de-chunk (C parser), hand the new bytes to the SSE parser.

        The socket's own timeout would arm a timer for every wait; instead one repeating
        timer per stream checks the time of the last received bytes, so a silent server
        still fails with ``timeout`` within 1.25 x ``read_timeout``.

        Per ``recv`` this runs as little Python as it can, as it runs once per token of a paced
        stream: the socket's non-blocking ``recvmsg`` is called directly, and after a ``recv``
        that drained the socket (returned less than its buffer) the loop waits for the socket
        to be readable *before* calling it again, rather than calling it to learn ``EAGAIN``
        (a syscall and an exception, which gevent's wrapper pays on every wait); the C parser's
        ``feed`` is called without the Python layer above it (whose only work concerns replies
        to ``HEAD``), and it hands the de-chunked body straight to a list rather than through a
        ``bytearray`` the parser copies out of.
        """
        monotonic = time.monotonic
        buf: bytearray = response._body_buffer  # what the C parser's on_body put there with the headers
        feed = parser.feed
        if buf:
            feed(bytes(buf), arrived if arrived is not None else monotonic())
            del buf[:]
        if response.message_complete:  # it all came with the headers; the socket is back in the pool
            return
        sock = response._sock
        clock = wake_clock()
        silence = self.target.read_timeout
        last = [monotonic()]
        tls = self.tls
        stamped = not tls and kernel_stamps(sock)
        realtime_offset = time.time() - monotonic()  # kernel stamps are CLOCK_REALTIME
        unpack = TIMESPEC.unpack
        reader = gevent.getcurrent()
        raw = sock._sock  # gevent's socket wraps the (non-blocking) OS socket
        wait, readable = sock._wait, sock._read_event
        body: list[bytes] = []
        response._on_body = body.append  # the C parser calls the instance's _on_body, not the class's
        parse = HTTPResponseParser.feed

        def watch() -> None:
            if monotonic() - last[0] >= silence:
                reader.throw(TimeoutError(f"no bytes for {silence:g} s"))

        watchdog = gevent.get_hub().loop.timer(silence / 4, silence / 4)
        watchdog.start(watch)
        sock.settimeout(None)
        drained = False  # the last recv emptied the socket: wait for it to be readable before the next
        try:
            while not response.message_complete:
                if tls:  # gevent's TLS socket waits and decrypts
                    wakes = clock.wakes
                    data, ancillary = sock.recv(_RECV), None
                    slept = clock.wakes != wakes
                else:
                    slept = drained
                    if drained:
                        wait(readable)
                    try:
                        if stamped:
                            data, ancillary, _, _ = raw.recvmsg(_RECV, ANCILLARY)
                        else:
                            data, ancillary = raw.recv(_RECV), None
                    except BlockingIOError:  # readable was a false alarm, or not waited for: wait now
                        drained = True
                        continue
                    drained = len(data) < _RECV
                if ancillary:  # when the kernel received the (last) packet read
                    sec, nsec = unpack(ancillary[0][2][:16])
                    now = sec + nsec * 1e-9 - realtime_offset
                else:  # slept before recv: the bytes were there when the loop woke; else they are here now
                    now = clock.time if slept else monotonic()
                last[0] = now
                if not data:
                    parse(response, b"")  # EOF ends a body delimited by the connection closing
                    if body:
                        feed(b"".join(body), now)
                        body.clear()
                    if not response.message_complete:
                        raise HTTPConnectionClosed("connection closed mid-stream")
                    break
                parse(response, data)
                if body:
                    feed(bytes(body[0]) if len(body) == 1 else b"".join(body), now)
                    body.clear()
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
