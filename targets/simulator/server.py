"""The HTTP face of the simulator: aiohttp handlers in front of the shared engine."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import time
import uuid
from pathlib import Path

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from targets.simulator.config import SimulatorConfig
from targets.simulator.engine import Engine
from targets.simulator.faults import HEADER, IMMEDIATE, IMMEDIATE_RESPONSES, FaultError, FaultPicker, kind_of
from targets.simulator.metrics import EngineMetrics
from targets.simulator.protocol import (
    BadRequest,
    ChatRequest,
    OutputPlanner,
    block_hashes,
    error_body,
    full_body,
    model_list,
    parse,
    prompt_text,
    prompt_tokens,
    tool_argument,
)
from targets.simulator.sequence import Sequence
from targets.simulator.sse import StreamWriter, abort_with_reset, prepare_templates
from targets.simulator.stamps import Stamps
from targets.simulator.trace import TraceWriter

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
MAX_BODY = 64 * 1024 * 1024


def json_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=error_body(status, message, kind), content_type="application/json", headers=headers
    )


def loading_response() -> web.Response:
    """The answer while the simulated model is still loading (``startup_seconds``)."""
    return json_error(503, "Loading model", "unavailable_error")


class Simulator:
    """One simulated model server: config, engine, metrics, trace and the aiohttp app."""

    def __init__(self, config: SimulatorConfig, trace_path: Path | None = None) -> None:
        self.config = config
        self.metrics = EngineMetrics(config.model)
        self.trace = TraceWriter(trace_path)
        self.writer = StreamWriter(config, self.metrics, self.trace)
        self.engine = Engine(config, self.metrics, self.writer.emit)
        self.faults = FaultPicker(config.faults, config.seed)
        self.planner = OutputPlanner(config)
        self.created = int(time.time())
        self.ready_at = time.monotonic() + config.startup_seconds
        self.stamps = Stamps()  # the kernel's receive time of each request's first bytes

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        self.ready_at = time.monotonic() + self.config.startup_seconds
        self.engine.start()

    async def _stop(self, _app: web.Application) -> None:
        await self.engine.stop()
        self.trace.close()

    @property
    def loading(self) -> bool:
        return time.monotonic() < self.ready_at

    # ---- plain endpoints ----------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        if self.loading:
            return loading_response()
        return web.Response(status=200)

    async def models(self, _request: web.Request) -> web.Response:
        if self.loading:
            return loading_response()
        return web.Response(body=orjson.dumps(model_list(self.config, self.created)), content_type="application/json")

    async def prometheus(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "completions")

    # ---- generation -----------------------------------------------------------------------
    async def _generate(self, request: web.Request, api: str) -> web.StreamResponse:
        arrival = time.monotonic()  # the handler's: the engine's queue starts here
        rid = ("chatcmpl-" if api == "chat" else "cmpl-") + uuid.uuid4().hex
        path = request.path
        raw = await request.read()
        stamp = self.stamps.take(request.transport)  # once the whole body is read: the next request's is its own
        received = arrival if stamp is None or stamp > arrival else stamp
        if self.loading:
            self.trace.rejected(rid, path, None, received, arrival, time.monotonic(), 503, None)
            return loading_response()
        cfg = self.config
        try:
            fault, stall = self.faults.pick(request.headers.get(HEADER))
            req = parse(api, raw)
            toks = prompt_tokens(req, cfg)
            max_tokens, target = self.planner.plan(req, len(toks))
            reasoning = self.planner.reasoning(req)
        except (BadRequest, FaultError) as exc:
            self.trace.rejected(rid, path, None, received, arrival, time.monotonic(), 400, None)
            return json_error(400, str(exc), "BadRequestError")
        if fault in IMMEDIATE:
            status, kind, message = IMMEDIATE_RESPONSES[fault]
            headers = {"Retry-After": str(cfg.faults.retry_after_seconds)} if status == 429 else None
            self.trace.rejected(rid, path, req.stream, received, arrival, time.monotonic(), status, fault, len(toks))
            return json_error(status, message, kind, headers)
        loop = asyncio.get_running_loop()
        seq = Sequence(
            id=rid,
            api=api,
            path=path,
            stream=req.stream,
            model=req.model or cfg.model,
            created=int(time.time()),
            prompt_len=len(toks),
            block_hashes=block_hashes(toks, cfg.block_size) if cfg.enable_prefix_caching else [],
            max_tokens=max_tokens,
            target=min(max_tokens, reasoning + target),  # the reasoning comes on top of the answer
            arrival=arrival,
            received=received,
            done=loop.create_future(),
        )
        seq.reasoning = min(reasoning, seq.target)
        tool = req.tool_to_call() if isinstance(req, ChatRequest) and cfg.tool_calls.enabled else None
        if tool is not None:
            seq.tool_name, seq.tool_argument = tool.function.name, tool_argument(tool)
            if seq.finish_reason == "stop":
                seq.finish_reason = "tool_calls"
        if cfg.trace_prompts:
            seq.prompt_text = prompt_text(req)
        seq.fault = fault
        seq.fault_at = self.faults.strike_point(fault, seq.target)
        seq.stall_seconds = stall
        if stall and seq.fault_at == 0:
            seq.stall_until = arrival + stall
        try:
            if req.stream:
                return await self._stream(request, req, seq)
            return await self._whole(request, seq)
        except ConnectionError:  # the client left before the answer could be written
            seq.aborted, seq.outcome, seq.status = True, "client_gone", 0
            return web.Response(status=200)  # never sent; aiohttp drops it quietly
        finally:
            seq.drop()  # still pending (the handler was cancelled or failed): the client went away
            self.trace.sequence(seq)

    async def _stream(self, request: web.Request, req: object, seq: Sequence) -> web.StreamResponse:
        opts = getattr(req, "stream_options", None)
        if opts is not None:
            seq.include_usage = opts.include_usage
            seq.continuous_usage = opts.include_usage and opts.continuous_usage_stats
        prepare_templates(seq)
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        seq.transport = request.transport
        self.engine.submit(seq)
        await seq.done
        if seq.outcome in ("ok", "cut"):
            # the response ends with the terminating chunk written now: that is its finish, and the
            # trace line goes out just before it, so a client that has read the whole response finds it
            seq.finish = time.monotonic()
            self.trace.sequence(seq)
            try:
                await resp.write_eof()
            except ConnectionError:  # the client left after the last token
                return resp
        return resp

    async def _whole(self, request: web.Request, seq: Sequence) -> web.StreamResponse:
        self.engine.submit(seq)
        await seq.done
        transport = request.transport
        kind = kind_of(seq.fault)
        if kind == "reset" and transport is not None:
            seq.outcome, seq.aborted, seq.finish = "reset", True, time.monotonic()
            seq.status = 0  # no response was sent
            self.trace.sequence(seq)
            abort_with_reset(transport)
            return web.Response(status=200)
        body = full_body(seq)
        if kind == "malformed":
            body = b'{"malformed'
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        now = time.monotonic()
        seq.finish = now
        if kind == "cut":
            seq.outcome, seq.aborted = "cut", True
            self.trace.sequence(seq)
            await resp.write(body[: len(body) // 2])
            if request.transport is not None:
                request.transport.close()
        else:
            seq.token_times = [now] * seq.out
            self.trace.sequence(seq)
            await resp.write_eof(body)
        return resp


async def serve(
    config: SimulatorConfig, host: str, port: int, trace_path: Path | None, reuse_port: bool = False
) -> None:
    """Run until SIGINT/SIGTERM. ``reuse_port``: several simulator processes may listen on the same
    port (``SO_REUSEPORT``); the kernel spreads new connections over them, each keeps its own trace."""
    # Few, large collections: a server holding thousands of live streams should not pause
    # for a full collection every few hundred allocations.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    sim = Simulator(config, trace_path)
    runner = web.AppRunner(sim.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=4096, reuse_port=reuse_port)
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"--port: cannot listen on {host}:{port} ({exc.strerror}); choose another port") from None
    # Connections are accepted here, not by aiohttp's site, so that each reads through a socket
    # that keeps the kernel's receive times (targets/simulator/stamps.py).
    assert runner.server is not None
    accepting = asyncio.create_task(sim.stamps.serve(listener, runner.server))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = listener.getsockname()[1]  # --port 0: the OS picked one
    print(f"finishline simulator: model {config.model} on http://{host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        accepting.cancel()
        listener.close()
        await runner.cleanup()
