"""The engine loop: continuous batching with chunked prefill, KV blocks, preemption, prefix cache.

One loop serves every request (like vLLM's scheduler + model runner); there is no sleep or
timer per request. Each step the scheduler serves running sequences first (one token each
when decoding, a prefill chunk otherwise), then admits waiting ones while ``max_num_seqs``,
the token budget ``max_num_batched_tokens`` and free KV blocks allow. When a running
sequence needs a block and none is free, the most recently admitted sequence is preempted:
its blocks are freed and it returns to the head of the queue to be recomputed.

A step lasts ``step_overhead_s + prefill_token_s * prefill_tokens + decode_seq_s * decoders
+ context_token_s * context_tokens`` (times a seeded jitter factor). A step that finishes a
sequence's (re)prefill or decodes it samples one token, stamped with the step's end time
(``token_due``: the model's schedule); the writer then puts it on the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from targets.simulator.config import SimulatorConfig
from targets.simulator.metrics import EngineMetrics
from targets.simulator.sequence import Sequence

# A step starting within this many seconds (or one step time) of the previous step's end keeps
# the model's schedule (steps back to back); later than that, the engine was idle or overloaded.
CATCH_UP_S = 0.002
SPIN_S = 0.001
PRECISE_MIN_S = 0.002  # steps at least this long end on time (<= SPIN_S of yielding per step)

Emit = Callable[[list[Sequence], float], None]


class Engine:
    def __init__(self, config: SimulatorConfig, metrics: EngineMetrics, emit: Emit) -> None:
        self.config = config
        self.metrics = metrics
        self.emit = emit  # called once per step with the sequences that got a token
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.free_blocks = config.num_kv_blocks
        self.prefix_cache: OrderedDict[int, None] = OrderedDict()
        self.rng = random.Random(config.seed)
        self.steps = 0
        self.started = time.monotonic()  # leak_step_s_per_min counts from here
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        self.started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, seq: Sequence) -> None:
        self.waiting.append(seq)
        self._wake.set()

    # ---- the loop ---------------------------------------------------------------------
    async def _run(self) -> None:
        prev_end = prev_cost = 0.0
        while True:
            if not self.running and not self.waiting:
                self.metrics.set_state(0, 0, 0.0)
                self._wake.clear()
                await self._wake.wait()
            now = time.monotonic()
            # Back to back with the previous step while the writing of its tokens took less
            # than a step (the model runs ahead of the CPU work, as with async scheduling);
            # later than that, the engine was idle or is CPU-bound and the schedule slips.
            start = prev_end if 0.0 <= now - prev_end <= max(CATCH_UP_S, prev_cost) else now
            scheduled, cost = self.schedule(start)
            if not scheduled and start < now and self.waiting:  # only requests newer than start
                start = now
                scheduled, cost = self.schedule(start)
            if not scheduled:  # everything left is stalled: wait for a stall to end or news
                await self._idle_until_stall_ends(now)
                prev_end = 0.0
                continue
            end = start + cost
            await self._sleep_until(end, precise=cost >= PRECISE_MIN_S)
            self.complete(scheduled, end)
            prev_end, prev_cost = end, cost
            self.steps += 1

    @staticmethod
    async def _sleep_until(end: float, precise: bool) -> None:
        """Sleep to ``end``. The event loop oversleeps by up to 1 ms (epoll counts whole ms), so
        a precise sleep stops 1 ms early and then yields to I/O until the time comes; short
        steps (the ``instant`` preset) do not spin, to leave the CPU to the client."""
        delay = end - time.monotonic()
        if not precise:
            await asyncio.sleep(delay if delay > 0 else 0)
            return
        if delay > SPIN_S:
            await asyncio.sleep(delay - SPIN_S)
        await asyncio.sleep(0)
        while time.monotonic() < end:
            await asyncio.sleep(0)

    async def _idle_until_stall_ends(self, now: float) -> None:
        stalls = [s.stall_until for s in self.running if s.stall_until > now]
        timeout = min(stalls) - now if stalls else 0.01
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.0005))

    # ---- scheduling -------------------------------------------------------------------
    def _blocks_for(self, tokens: int) -> int:
        bs = self.config.block_size
        return (tokens + bs - 1) // bs

    def _free(self, seq: Sequence) -> None:
        self.free_blocks += seq.blocks
        seq.blocks = 0

    def _preempt(self, victim: Sequence) -> None:
        """Recompute preemption: drop the KV, requeue at the head."""
        self._free(victim)
        victim.num_computed = 0
        victim.preemptions += 1
        self.waiting.appendleft(victim)
        self.metrics.preemptions.inc()

    def _cached_prefix(self, seq: Sequence) -> int:
        if not self.config.enable_prefix_caching or seq.out:
            return 0
        hits = 0
        cache = self.prefix_cache
        for h in seq.block_hashes:
            if h not in cache:
                break
            cache.move_to_end(h)
            hits += 1
        bs = self.config.block_size
        return min(hits * bs, ((seq.prompt_len - 1) // bs) * bs)

    def schedule(self, start: float) -> tuple[list[tuple[Sequence, int]], float]:
        """Plan one step beginning at ``start``: the (sequence, tokens) it computes and its cost in s.
        The loop sleeps the cost and then calls :meth:`complete`; a test drives both on a virtual clock."""
        cfg = self.config
        budget = cfg.max_num_batched_tokens
        scheduled: list[tuple[Sequence, int]] = []
        prefill = decoders = context = 0
        running = self.running
        preempted = False
        i = 0
        while i < len(running) and budget > 0:
            seq = running[i]
            if seq.aborted:
                self._free(seq)
                running.pop(i)
                continue
            if seq.stall_until > start:
                i += 1
                continue
            need = seq.prompt_len + seq.out - seq.num_computed
            n = need if need < budget else budget
            want = self._blocks_for(seq.num_computed + n) - seq.blocks
            lost_self = False
            while want > self.free_blocks:
                victim = running.pop()  # the tail: admitted last, not scheduled yet
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    lost_self = True
                    break
            if lost_self:
                break
            self.free_blocks -= want
            seq.blocks += want
            scheduled.append((seq, n))
            budget -= n
            if n == 1 and need == 1 and seq.out:
                decoders += 1
            else:
                prefill += n
            context += seq.num_computed + n
            i += 1
        waiting = self.waiting
        while waiting and not preempted and len(running) < cfg.max_num_seqs and budget > 0:
            seq = waiting[0]
            if seq.arrival > start:
                break  # arrived after this step began: the next step takes it
            if seq.aborted or (seq.transport is not None and seq.transport.is_closing()):
                waiting.popleft()  # the client left while queued: never prefill it
                seq.drop()
                continue
            cached = self._cached_prefix(seq)
            need = seq.prompt_len + seq.out - cached
            n = need if need < budget else budget
            want = self._blocks_for(cached + n)
            if want > self.free_blocks:
                break
            waiting.popleft()
            self.free_blocks -= want
            seq.blocks = want
            seq.num_computed = cached
            if not seq.admitted:
                seq.admitted = True
                seq.cached_tokens = cached
                seq.queue_exit = start
                self.metrics.admitted(seq)
            running.append(seq)
            scheduled.append((seq, n))
            budget -= n
            prefill += n
            context += cached + n
        cost = (
            cfg.step_overhead_s
            + cfg.prefill_token_s * prefill
            + cfg.decode_seq_s * decoders
            + cfg.context_token_s * context
        )
        if cfg.jitter:
            cost *= max(0.0, 1.0 + self.rng.gauss(0.0, cfg.jitter))
        if cfg.leak_step_s_per_min:  # a server that slows down the longer it runs (soak tests)
            cost += cfg.leak_step_s_per_min * max(0.0, start - self.started) / 60.0
        self.metrics.set_state(len(running), len(waiting), 1.0 - self.free_blocks / cfg.num_kv_blocks)
        return scheduled, cost

    # ---- step completion ----------------------------------------------------------------
    def complete(self, scheduled: list[tuple[Sequence, int]], end: float) -> None:
        """Finish the step :meth:`schedule` planned, at ``end``: tokens out, finished sequences freed."""
        produced: list[Sequence] = []
        any_finished = False
        metrics = self.metrics
        gaps: dict[float, int] = {}
        for seq, n in scheduled:
            if seq.aborted:
                any_finished = True  # its blocks are freed below
                continue
            seq.num_computed += n
            if seq.num_computed < seq.prompt_len + seq.out:
                continue  # a prefill chunk, no token yet
            if seq.out == 0 and self.config.enable_prefix_caching:
                self._remember_prefix(seq)
            seq.out += 1
            due = seq.token_due
            if due:
                gap = end - due[-1]
                gaps[gap] = gaps.get(gap, 0) + 1
            else:
                metrics.ttft.observe(end - seq.arrival)
            due.append(end)
            if seq.out >= seq.target:
                seq.finished = True
                any_finished = True
            produced.append(seq)
        metrics.generation_tokens.inc(len(produced))
        for gap, n in gaps.items():  # sequences decoded in consecutive steps share one gap
            metrics.itl.observe_many(gap, n)
        if produced:
            self.emit(produced, end)
        if any_finished:
            keep: list[Sequence] = []
            for seq in self.running:
                if seq.finished or seq.aborted:
                    self._free(seq)
                else:
                    keep.append(seq)
            self.running = keep

    def _remember_prefix(self, seq: Sequence) -> None:
        cache = self.prefix_cache
        for h in seq.block_hashes:
            cache[h] = None
            cache.move_to_end(h)
        limit = self.config.prefix_cache_blocks or self.config.num_kv_blocks
        while len(cache) > limit:
            cache.popitem(last=False)
