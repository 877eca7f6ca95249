"""The client against tiny loopback servers that speak HTTP the ways real servers do
(close-delimited bodies, chunks split anywhere, answers with no stream), fast."""

from __future__ import annotations

import gevent
import locust  # noqa: F401  (gevent monkey-patching, as in a worker)
import pytest
from gevent.server import StreamServer

from loadgen.client import AttemptResult, EndpointClient
from loadgen.config import TargetConfig
from loadgen.spec import SamplingParams

EVENTS = (
    b'data: {"id":"x1","choices":[{"delta":{"content":" one"}}]}\n\n'
    b'data: {"id":"x1","choices":[{"delta":{"content":" two"}}]}\n\n'
    b'data: {"id":"x1","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)


def serve(reply: bytes, split: int = 0, pause: float = 0.0, close_after: float = 0.0):  # type: ignore[no-untyped-def]
    def handle(sock, _addr):  # type: ignore[no-untyped-def]
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
        if split:
            for i in range(0, len(reply), split):
                sock.sendall(reply[i : i + split])
                gevent.sleep(pause)  # a server that writes its reply piece by piece
        else:
            sock.sendall(reply)
        gevent.sleep(close_after)  # a server that closes a moment after answering, reading nothing more
        sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    return server


def client_for(server: StreamServer) -> EndpointClient:
    return EndpointClient(TargetConfig(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="m"))


def send(client: EndpointClient, stream: bool = True):  # type: ignore[no-untyped-def]
    body = client.body("chat", stream, [{"role": "user", "content": "hi"}], 5, SamplingParams())
    return client.send("chat", body, stream, want_text=True, timeout=5)


@pytest.mark.parametrize("split, pause", [(0, 0.0), (7, 0.002)])
def test_close_delimited_stream_ends_cleanly(split: int, pause: float) -> None:
    server = serve(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + EVENTS, split, pause
    )
    try:
        result = send(client_for(server))
    finally:
        server.stop()
    a = result.attempt
    assert a.error is None and a.status == 200
    assert result.text == " one two" and a.output_tokens == 2 and a.prompt_tokens == 4
    assert a.response_id == "x1" and len(a.chunk_us) == 2
    if pause:
        assert a.chunk_us[1] > a.chunk_us[0]  # each event stamped when its bytes arrived


def test_chunked_stream_cut_before_the_end_is_a_reset() -> None:
    first = EVENTS.split(b"\n\n")[0] + b"\n\n"
    chunk = b"%x\r\n%s\r\n" % (len(first), first)
    server = serve(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)
    try:
        result = send(client_for(server))
    finally:
        server.stop()
    assert result.attempt.error == "reset" and result.attempt.output_tokens == 1


def send_whole_reply(body: bytes) -> AttemptResult:
    """One non-streamed request to a server that answers 200 with the JSON ``body``."""
    server = serve(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    try:
        return send(client_for(server), stream=False)
    finally:
        server.stop()


def test_non_streamed_reply_and_retry_after_date() -> None:
    body = (
        b'{"id":"c9","choices":[{"message":{"role":"assistant","content":"a b c"}}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":3}}'
    )
    result = send_whole_reply(body)
    a = result.attempt
    assert (
        a.error is None
        and result.text == "a b c"
        and a.output_tokens == 3
        and a.first_token == pytest.approx(a.sent + a.chunk_us[0] / 1e6, abs=1e-5)
    )
    server = serve(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 4\r\n\r\nbusy")
    try:
        result = send(client_for(server))
    finally:
        server.stop()
    assert (
        result.attempt.error == "http_5xx"
        and result.retry_after == 2.0
        and "busy" in (result.attempt.error_detail or "")
    )


def test_a_tokenizer_counts_what_the_server_did_not(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, "one": 1, "two": 2, "hi": 3}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    no_usage = (
        b'data: {"choices":[{"delta":{"content":" one two"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":" two"}}]}\n\ndata: [DONE]\n\n'
    )
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + no_usage
    server = serve(reply)
    try:
        plain = send(client_for(server)).attempt
    finally:
        server.stop()
    assert plain.output_tokens == 2 and plain.tokens_estimated  # one per event, flagged
    server = serve(reply)
    try:
        counted = EndpointClient(
            TargetConfig(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="m", tokenizer=path)
        )
        attempt = send(counted).attempt
    finally:
        server.stop()
    assert attempt.output_tokens == 3 and not attempt.tokens_estimated
    with pytest.raises(Exception, match="tokenizer"):
        TargetConfig(base_url="http://127.0.0.1:1", model="m", tokenizer=tmp_path / "missing.json")


def test_a_tokenizer_counts_reasoning_and_tool_arguments_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = Tokenizer(WordLevel({"[UNK]": 0, "one": 1, "two": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    events = (
        b'data: {"choices":[{"delta":{"reasoning_content":" one two one"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":" two"}}]}\n\n'
        b'data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"one two"}}]}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    server = serve(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + events)
    try:
        counted = EndpointClient(
            TargetConfig(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="m", tokenizer=path)
        )
        result = send(counted)
    finally:
        server.stop()
    a = result.attempt
    assert a.reasoning_tokens == 3 and a.output_tokens == 3 + 1 + 2 and not a.tokens_estimated
    assert a.answer_chunk == 1 and result.text == " two" and result.tool_arguments == ("one two",)


def test_a_non_streamed_reasoning_reply_with_a_tool_call() -> None:
    body = (
        b'{"id":"c9","choices":[{"message":{"role":"assistant","content":null,"reasoning_content":"hm hm",'
        b'"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\\"q\\":1}"}}]}}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":6,"completion_tokens_details":{"reasoning_tokens":2}}}'
    )
    result = send_whole_reply(body)
    a = result.attempt
    assert a.error is None and a.output_tokens == 6 and a.reasoning_tokens == 2 and a.answer_tokens == 4
    assert a.first_answer == a.first_token and a.answer_chunk == 0
    assert result.text == "" and result.tool_arguments == ('{"q":1}',)


def test_a_silent_server_times_out_after_read_timeout() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    first = EVENTS.split(b"\n\n")[0] + b"\n\n"
    server = serve(head + first + EVENTS, split=len(head + first), pause=2.0)
    try:
        client = EndpointClient(
            TargetConfig(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="m", read_timeout=0.4)
        )
        attempt = send(client).attempt
    finally:
        server.stop(timeout=0.1)
    assert attempt.error == "timeout" and attempt.output_tokens == 1
    assert 0.4 <= attempt.end - attempt.sent < 0.6


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def test_a_keep_alive_connection_the_server_closes_is_not_an_error() -> None:
    """llama.cpp answers `Connection: keep-alive`, then closes after each stream: the next request
    finds its pooled connection closed before any answer and must go out again on a fresh one."""
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(EVENTS)
    )
    server = serve(reply, close_after=0.05)
    client = client_for(server)
    try:
        results = [send(client) for _ in range(4)]
    finally:
        server.stop()
    assert [r.attempt.error for r in results] == [None] * 4
    assert all(r.text == " one two" for r in results)
