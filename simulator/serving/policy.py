"""The serving policy, defined once: what an engine runs in each iteration. Plain Python with
no dependencies, so the measuring harness (validation/harness/serving.py) drives a real GPU
with this very scheduler; the simulator's numba event loop (serving/loop.py) restates it over
arrays, and the tests check that the two give the same schedule step for step.

Continuous batching (vLLM v1's scheduler, in our words). A request holds ``num_tokens`` =
prompt + generated tokens, of which ``computed`` have their KV in the cache; an iteration
gives it ``new`` = num_tokens - computed tokens (1 for a decoding request), at most the
token budget left. Each iteration:
  1. running requests, in admission order, while budget remains: each needs
     ceil((computed + new) / block_size) blocks; while the pool lacks them, the last running
     request is preempted (its blocks freed, computed = 0: recomputed later, generated tokens
     kept) and put at the head of the waiting queue; if that was the request itself, stop.
  2. only when step 1 preempted nothing: waiting requests FCFS while budget remains and
     fewer than max_seqs run: the head's cached prefix (prefix_hit of the prompt, whole
     blocks, at most num_tokens - 1) counts as computed; it is admitted when the blocks of
     computed + new fit, else admission stops (the head blocks the queue).
  3. the model runs every scheduled (start = computed, new) chunk as one batch; a request
     whose computed reaches num_tokens samples one token (its first after the prompt's last
     chunk); one with all its output tokens finishes and frees its blocks.
Static batching (for comparison): when nothing runs, the waiting requests, FCFS, up to
max_seqs whose padded footprint (count x blocks of the longest prompt + longest output)
fits, form a batch; it prefills in one pass (every sequence padded to the longest prompt)
and decodes all its sequences each step until its longest output is done; a request's
tokens are its own first N.

The KV pool is ``kv_memory_fraction`` of the memory left after the weights and the largest
activation of a pass over max_batched_tokens tokens, in blocks of block_size tokens (the
simulator sizes it from the model's footprint; the harness from the GPU's free memory).
"""
from __future__ import annotations

import collections
import dataclasses
import math

CONTINUOUS, STATIC = "continuous", "static"


@dataclasses.dataclass(frozen=True)
class Policy:
    """How the engine batches: the token budget per iteration (tokens), running sequences at
    most, the KV block (tokens), the KV pool's share of the free memory, the fraction of each
    prompt already cached (prefix caching), static or continuous batching, and whether a
    decode-only iteration replays a CUDA graph (else it is launched eagerly like a prefill)."""

    max_batched_tokens: int = 8192
    max_seqs: int = 256
    block_size: int = 16
    kv_memory_fraction: float = 0.9
    prefix_hit: float = 0.0
    batching: str = CONTINUOUS
    decode_graphs: bool = True

    def problem(self) -> tuple[str, str] | None:
        """(field, what was expected) for the first bad value, or None."""
        for field in ("max_batched_tokens", "max_seqs", "block_size"):
            value = getattr(self, field)
            if type(value) is not int or not 1 <= value <= 2 ** 40:
                return field, f"expected a whole number from 1 to 2^40, got {value!r}"
        if not 0.0 < self.kv_memory_fraction <= 1.0:
            return "kv_memory_fraction", f"expected a fraction in (0, 1], got {self.kv_memory_fraction!r}"
        if not 0.0 <= self.prefix_hit < 1.0:
            return "prefix_hit", f"expected a fraction in [0, 1), got {self.prefix_hit!r}"
        if self.batching not in (CONTINUOUS, STATIC):
            return "batching", f"expected '{CONTINUOUS}' or '{STATIC}', got {self.batching!r}"
        return None


def blocks_for(tokens: int, block_size: int) -> int:
    """ceil(tokens / block_size): the KV blocks that hold ``tokens`` positions."""
    return -(-tokens // block_size)


def cached_prefix(policy: Policy, prompt: int, num_tokens: int, hit: bool = True) -> int:
    """Prompt tokens already in the prefix cache at admission: floor(prefix_hit x prompt)
    rounded down to whole blocks, at most num_tokens - 1 (the last token is always computed)."""
    if not hit or policy.prefix_hit <= 0.0:
        return 0
    tokens = int(policy.prefix_hit * prompt) // policy.block_size * policy.block_size
    return min(tokens, num_tokens - 1)


@dataclasses.dataclass
class Request:
    """One request's state: lengths (tokens), what is computed and generated, its blocks, and
    the times (s) of its arrival, first and last token."""

    arrival_s: float
    prompt: int
    output: int
    prefix_hit: bool = True          # the prefix is in the cache (a trace's repeated prefix_id)
    computed: int = 0
    generated: int = 0
    blocks: int = 0
    preemptions: int = 0
    first_s: float = math.nan
    last_s: float = math.nan

    @property
    def num_tokens(self) -> int:
        return self.prompt + self.generated


@dataclasses.dataclass(frozen=True)
class Chunk:
    """What one iteration runs for a batch of ``count`` sequences: ``length`` new tokens each
    at positions start..start+length-1 (``ids``: the requests, one per sequence)."""

    ids: tuple[int, ...]
    start: int
    length: int


class Scheduler:
    """The policy over a list of requests: ``step(now)`` returns the iteration's chunks (and
    updates the KV pool), ``finish(chunks, end_s)`` records what that iteration produced."""

    def __init__(self, policy: Policy, requests: list[Request], pool_blocks: int):
        self.policy = policy
        self.requests = requests
        self.free_blocks = pool_blocks
        self.pool_blocks = pool_blocks
        self.waiting: collections.deque[int] = collections.deque()
        self.running: list[int] = []
        self.preemptions = 0
        self.peak_blocks = 0

    # -------------------------------------------------------------- arrivals and queues
    def arrive(self, index: int) -> None:
        self.waiting.append(index)

    @property
    def idle(self) -> bool:
        return not self.running and not self.waiting

    def _preempt(self, index: int) -> None:
        r = self.requests[index]
        self.free_blocks += r.blocks
        r.blocks, r.computed = 0, 0
        r.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(index)

    def _grow(self, r: Request, tokens: int) -> bool:
        """Give ``r`` the blocks for ``tokens`` positions if the pool has them."""
        need = blocks_for(tokens, self.policy.block_size) - r.blocks
        if need > self.free_blocks:
            return False
        self.free_blocks -= max(need, 0)
        r.blocks += max(need, 0)
        self.peak_blocks = max(self.peak_blocks, self.pool_blocks - self.free_blocks)
        return True

    # -------------------------------------------------------------- one iteration
    def step(self) -> list[Chunk]:
        """The chunks of the next iteration (the module docstring's rules); [] when idle."""
        return self._static_step() if self.policy.batching == STATIC else self._continuous_step()

    def _continuous_step(self) -> list[Chunk]:
        p, reqs = self.policy, self.requests
        budget = p.max_batched_tokens
        chunks: list[Chunk] = []
        preempted = False
        k = 0
        while k < len(self.running) and budget > 0:
            index = self.running[k]
            r = reqs[index]
            new = min(r.num_tokens - r.computed, budget)
            while not self._grow(r, r.computed + new):
                victim = self.running.pop()
                self._preempt(victim)
                preempted = True
                if victim == index:
                    break
            else:
                chunks.append(Chunk((index,), r.computed, new))
                budget -= new
                k += 1
                continue
            break
        if not preempted:
            while self.waiting and budget > 0 and len(self.running) < p.max_seqs:
                index = self.waiting[0]
                r = reqs[index]
                r.computed = cached_prefix(p, r.prompt, r.num_tokens, r.prefix_hit)
                new = min(r.num_tokens - r.computed, budget)
                if not self._grow(r, r.computed + new):
                    r.computed = 0
                    break
                self.waiting.popleft()
                self.running.append(index)
                chunks.append(Chunk((index,), r.computed, new))
                budget -= new
        return chunks

    def _static_step(self) -> list[Chunk]:
        p, reqs = self.policy, self.requests
        if not self.running:
            longest_prompt = longest_output = 0
            while self.waiting and len(self.running) < p.max_seqs:
                r = reqs[self.waiting[0]]
                s, n = max(longest_prompt, r.prompt), max(longest_output, r.output)
                blocks = blocks_for(s + n, p.block_size)
                if (len(self.running) + 1) * blocks > self.pool_blocks:
                    break
                longest_prompt, longest_output = s, n
                self.running.append(self.waiting.popleft())
            if not self.running:
                return []
            blocks = blocks_for(longest_prompt + longest_output, p.block_size)
            self.free_blocks = self.pool_blocks - len(self.running) * blocks
            self.peak_blocks = max(self.peak_blocks, len(self.running) * blocks)
            self._padded = (longest_prompt, longest_output, 0)       # (S, N, steps done)
            return [Chunk(tuple(self.running), 0, longest_prompt)]
        s, n, done = self._padded
        return [Chunk(tuple(self.running), s + done - 1, 1)]

    def finish(self, chunks: list[Chunk], end_s: float) -> list[int]:
        """Record the iteration that ran ``chunks`` and ended at ``end_s``; returns the
        requests that finished (their blocks freed)."""
        reqs = self.requests
        done: list[int] = []
        if self.policy.batching == STATIC:
            s, n, steps = self._padded
            self._padded = (s, n, steps + 1)
            for index in self.running:
                r = reqs[index]
                if r.generated < r.output:
                    r.generated += 1
                    r.first_s = end_s if r.generated == 1 else r.first_s
                    r.last_s = end_s
            if steps + 1 == n:
                done = list(self.running)
                self.running = []
                self.free_blocks = self.pool_blocks
            return done
        for chunk in chunks:
            r = reqs[chunk.ids[0]]
            r.computed += chunk.length
            if r.computed == r.num_tokens:
                r.generated += 1
                if r.generated == 1:
                    r.first_s = end_s
                r.last_s = end_s
                if r.generated == r.output:
                    done.append(chunk.ids[0])
        for index in done:
            r = reqs[index]
            self.free_blocks += r.blocks
            r.blocks = 0
            self.running.remove(index)
        return done


def serve_wave(policy: Policy, requests: list[Request], per_step: int, pool_blocks: int, run_pass=None) -> list[int]:
    """Serve ``requests`` to the end with a fresh Scheduler, ``per_step`` of them arriving
    before each step, every pass finishing at time 0; ``run_pass(sched, chunks)``, when given,
    runs each pass before it finishes (the harness's warm-up: validation/harness/serving.
    warm_up). Returns each pass's token count (sum over chunks of sequences x length)."""
    sched = Scheduler(policy, requests, pool_blocks)
    tokens, arrived = [], 0
    while arrived < len(requests) or not sched.idle:
        for _ in range(min(per_step, len(requests) - arrived)):
            sched.arrive(arrived)
            arrived += 1
        chunks = sched.step()
        if chunks:
            if run_pass is not None:
                run_pass(sched, chunks)
            tokens.append(sum(len(c.ids) * c.length for c in chunks))
            sched.finish(chunks, 0.0)
    return tokens
