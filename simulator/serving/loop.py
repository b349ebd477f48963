"""The serving event loop in numba: serving/policy.py's scheduler restated over arrays
(serving/schedule.py), one iteration after another, each costed by engine/kernels/iteration.py; no Python per
iteration. ``run`` takes requests sorted by arrival and returns per-request times and the
run's totals. The tests check it against policy.Scheduler driven by serving/reference.py.

Time advances by iterations: at ``now`` the requests that have arrived join the waiting
queue, the policy schedules, and the iteration ends at now + its cost; an idle engine jumps
to the next arrival (its devices draw idle power meanwhile). A closed loop of N clients
(``concurrency`` N > 0) starts N requests at 0 s, and each finished request starts the next
one at the end of its iteration. A decode run (every running request only decoding, until an
arrival, a finish or a block shortage: schedule.decode_run_steps) costs its iterations one by
one (iteration.decode_only_cost, as the step would) and does the per-request work once after.

Inter-token latencies go into a histogram of ITL_BINS logarithmic bins from 1e-7 s to 1e4 s
(400 a decade: each 0.58% wide): their percentiles are read from it (within a bin), their mean exactly.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.kernels.iteration import (D_READY, decode_cache, decode_only_cost, first_use_s, host_at,
                                               iteration_cost)
from simulator.engine.kernels.scenario import M_PARAMS, N_FEATURES, P_DEVICES, P_HAS_ENERGY, P_IDLE_W, P_WINDOW
from simulator.serving.schedule import (K_FREE, K_HEAD, K_PAD_OUTPUT, K_PEAK, K_PREEMPTIONS, K_RUNNING, K_STEPS_DONE,
                                        K_WAITING, N_STATE, blocks_for, continuous_step, decode_run_steps,
                                        run_blocks, static_step)

ITL_BINS = 4400                   # 400 a decade over 11 decades (itl_edges)
ITL_LOG10_MIN, ITL_LOG10_MAX = -7.0, 4.0

# totals (a float64 vector)
TOTALS = ("iterations", "preemptions", "peak_blocks", "energy_j", "busy_s", "end_s", "backlog_at_mid",
          "backlog_at_end", "itl_sum_s", "itl_count", "records", "record_stride")
(T_ITERATIONS, T_PREEMPTIONS, T_PEAK_BLOCKS, T_ENERGY_J, T_BUSY_S, T_END_S, T_BACKLOG_MID, T_BACKLOG_END,
 T_ITL_SUM_S, T_ITL_COUNT, T_RECORDS, T_RECORD_STRIDE) = range(len(TOTALS))
# per-iteration record columns
RECORD_FIELDS = ("end_s", "running", "waiting", "kv_blocks", "tokens", "duration_s")
N_RECORD = len(RECORD_FIELDS)


def itl_edges() -> np.ndarray:
    """The ITL histogram's bin edges (s): ITL_BINS + 1 logarithmically spaced values."""
    return np.logspace(ITL_LOG10_MIN, ITL_LOG10_MAX, ITL_BINS + 1)


@njit(cache=True, inline="always")
def _itl_bin(gap_s):
    if gap_s <= 0.0:
        return 0
    x = (np.log10(gap_s) - ITL_LOG10_MIN) / (ITL_LOG10_MAX - ITL_LOG10_MIN) * ITL_BINS
    return min(max(int(x), 0), ITL_BINS - 1)


@njit(cache=True, inline="always")
def _token(r, end_s, generated, first_s, last_s, itl, last_gap, totals):
    """Request r samples a token at end_s: its first sets first_s; later ones add the gap to
    the ITL histogram (last_gap: the last gap binned and its bin)."""
    generated[r] += 1
    if generated[r] == 1:
        first_s[r] = end_s
    else:
        gap = end_s - last_s[r]
        if gap != last_gap[0]:                 # the tokens of one iteration mostly share a gap
            last_gap[0], last_gap[1] = gap, _itl_bin(gap)
        itl[int(last_gap[1])] += 1
        totals[T_ITL_SUM_S] += gap
        totals[T_ITL_COUNT] += 1.0
    last_s[r] = end_s


@njit(cache=True, inline="always")
def _finish(k, static, running, prompt, output, generated, computed, blocks, ent_req, lengths, n_entries, end_s,
            first_s, last_s, itl, last_gap, totals, finished, pool):
    """policy.Scheduler.finish: tokens sampled, finished requests into ``finished``; returns
    how many finished."""
    n_done = 0
    if static:
        k[K_STEPS_DONE] += 1
        for j in range(k[K_RUNNING]):
            r = running[j]
            if generated[r] < output[r]:
                _token(r, end_s, generated, first_s, last_s, itl, last_gap, totals)
        if k[K_STEPS_DONE] == k[K_PAD_OUTPUT]:
            for j in range(k[K_RUNNING]):
                finished[n_done] = running[j]
                n_done += 1
            k[K_RUNNING] = 0
            k[K_FREE] = pool
        return n_done
    gap_bin, pending = int(last_gap[1]), 0          # _token with the histogram and sums kept local
    gap_sum, gaps = 0.0, 0
    for e in range(n_entries):
        r = ent_req[e]
        computed[r] += lengths[e]
        if computed[r] == prompt[r] + generated[r]:
            generated[r] += 1
            if generated[r] == 1:
                first_s[r] = end_s
            else:
                gap = end_s - last_s[r]
                if gap != last_gap[0]:
                    if pending:
                        itl[gap_bin] += pending
                        pending = 0
                    last_gap[0], gap_bin = gap, _itl_bin(gap)
                pending += 1
                gap_sum += gap
                gaps += 1
            last_s[r] = end_s
            if generated[r] == output[r]:
                finished[n_done] = r
                n_done += 1
                k[K_FREE] += blocks[r]
                blocks[r] = 0
    if pending:
        itl[gap_bin] += pending
    last_gap[1] = gap_bin
    totals[T_ITL_SUM_S] += gap_sum
    totals[T_ITL_COUNT] += gaps
    if n_done:
        kept = 0
        for j in range(k[K_RUNNING]):
            r = running[j]
            if generated[r] < output[r]:
                running[kept] = r
                kept += 1
        k[K_RUNNING] = kept
    return n_done


@njit(cache=True, inline="always")
def _record(records, totals, end_s, k, tokens, duration_s, iteration):
    """Keep every stride-th iteration; when full, keep every other kept one and double the stride."""
    stride = int(totals[T_RECORD_STRIDE])
    if iteration % stride != 0:
        return
    n = int(totals[T_RECORDS])
    if n == records.shape[0]:
        for i in range(n // 2):
            records[i, :] = records[2 * i, :]
        n = n // 2
        totals[T_RECORD_STRIDE] = 2 * stride
        if iteration % (2 * stride) != 0:
            totals[T_RECORDS] = n
            return
    records[n, 0], records[n, 1], records[n, 2] = end_s, k[K_RUNNING], k[K_WAITING]
    records[n, 3], records[n, 4], records[n, 5] = k[K_FREE], tokens, duration_s
    totals[T_RECORDS] = n + 1


@njit(cache=True)
def run(model, arrival_s, prompt, output, hit, max_tokens, max_seqs, block_size, prefix_hit, static, eager_decode,
        host, pool, concurrency, records, seen, seg_start_s, seg_scale):
    """Serve the requests (arrays sorted by arrival_s; with ``concurrency`` > 0 arrival_s is
    overwritten with the closed loop's start times; ``host``: iteration.host_terms; ``seen``:
    the token counts the process has run, updated: iteration.new_shapes; seg_start_s,
    seg_scale: the host's speed in segments of time, iteration.host_at, empty for a steady
    host). Returns (first_s, last_s, preemptions
    per request, ITL histogram, totals (TOTALS)); ``records`` [R, N_RECORD] gets sampled
    iterations (kv_blocks column: free blocks, turned into used by the caller)."""
    n = arrival_s.shape[0]
    params = model[M_PARAMS]
    first_s = np.full(n, np.nan)
    last_s = np.full(n, np.nan)
    preempted = np.zeros(n, dtype=np.int64)
    generated = np.zeros(n, dtype=np.int64)
    computed = np.zeros(n, dtype=np.int64)
    blocks = np.zeros(n, dtype=np.int64)
    queue = np.zeros(max(n, 1), dtype=np.int64)
    running = np.zeros(max_seqs, dtype=np.int64)
    ent_req = np.zeros(max_seqs, dtype=np.int64)
    counts = np.zeros(max_seqs, dtype=np.int64)
    starts = np.zeros(max_seqs, dtype=np.int64)
    lengths = np.zeros(max_seqs, dtype=np.int64)
    finished = np.zeros(max_seqs, dtype=np.int64)
    itl = np.zeros(ITL_BINS, dtype=np.int64)
    last_gap = np.array([-1.0, 0.0])
    totals = np.zeros(len(TOTALS))
    totals[T_RECORD_STRIDE] = 1.0
    k = np.zeros(N_STATE, dtype=np.int64)
    k[K_FREE] = pool
    cache = decode_cache(model[0].shape[0], max_seqs)
    host_now = host.copy()
    k_seg = -1
    feats = np.zeros(N_FEATURES)
    scratch = np.zeros(N_FEATURES)
    idle_w = params[P_DEVICES] * params[P_IDLE_W] if params[P_HAS_ENERGY] > 0.0 else 0.0
    window = int(params[P_WINDOW])
    started = n
    if concurrency > 0:
        started = min(concurrency, n)
        for i in range(n):
            arrival_s[i] = 0.0 if i < started else np.inf
    now = arrival_s[0] if n else 0.0
    arrived = 0
    done = 0
    iteration = 0
    while done < n:
        while arrived < started and arrival_s[arrived] <= now:
            queue[(k[K_HEAD] + k[K_WAITING]) % queue.shape[0]] = arrived
            k[K_WAITING] += 1
            if arrived == n // 2:
                totals[T_BACKLOG_MID] = k[K_WAITING] + k[K_RUNNING]
            if arrived == n - 1:
                totals[T_BACKLOG_END] = k[K_WAITING] + k[K_RUNNING]
            arrived += 1
        if static:
            n_entries = static_step(k, queue, running, prompt, output, max_seqs, block_size, pool, counts, starts,
                                     lengths)
        else:
            n_entries = continuous_step(k, queue, running, prompt, generated, computed, blocks, preempted, hit,
                                         max_tokens, max_seqs, block_size, prefix_hit, pool, ent_req, counts,
                                         starts, lengths)
        if n_entries == 0:
            if arrived >= started:
                break                          # nothing can ever run (the caller rejects such requests)
            gap = arrival_s[arrived] - now
            totals[T_ENERGY_J] += idle_w * gap
            now = arrival_s[arrived]
            continue
        k_seg = host_at(host, seg_start_s, seg_scale, k_seg, now, host_now)
        duration_s, joules = iteration_cost(model, cache, counts, starts, lengths, n_entries, eager_decode, host_now,
                                            k[K_RUNNING], feats, scratch)
        tokens = 0
        chunked = False
        for e in range(n_entries):
            tokens += counts[e] * lengths[e]
            chunked = chunked or lengths[e] > 1
        if chunked or eager_decode:                    # an eager pass (a graphed step replays its capture)
            first = first_use_s(host_now, seen, tokens)
            duration_s += first
            joules += idle_w * first
        end_s = now + duration_s
        n_done = _finish(k, static, running, prompt, output, generated, computed, blocks, ent_req, lengths,
                         n_entries, end_s, first_s, last_s, itl, last_gap, totals, finished, pool)
        done += n_done
        if concurrency > 0:
            for _ in range(n_done):
                if started < n:
                    arrival_s[started] = end_s
                    started += 1
        totals[T_ENERGY_J] += joules
        totals[T_BUSY_S] += duration_s
        _record(records, totals, end_s, k, tokens, duration_s, iteration)
        iteration += 1
        now = end_s
        # a decode run: while every running request only decodes (each sampled at now, none
        # finishing, no arrival, nothing that could be admitted, blocks to spare) the iterations
        # differ only in their positions; each is costed as the step would be, the per-request
        # work done once after
        batch = k[K_RUNNING]
        steps = 0
        if (not static and 0 < batch <= max_tokens and batch < cache[D_READY].shape[0]
                and (k[K_WAITING] == 0 or batch >= max_seqs) and not (arrived < started and arrival_s[arrived] <= now)):
            position_sum = 0.0
            furthest = 0
            for j in range(batch):
                r = running[j]
                if last_s[r] != now or computed[r] != prompt[r] + generated[r] - 1:
                    position_sum = -1.0
                    break
                position_sum += float(computed[r])
                furthest = max(furthest, computed[r])
            if position_sum >= 0.0:
                steps = decode_run_steps(k, running, output, generated, computed, blocks, block_size)
                if window != 0:                # no position past a local span (iteration_cost's decode path)
                    steps = min(steps, abs(window) - furthest)
        if steps > 0:
            done_steps = 0
            free0 = k[K_FREE]
            while done_steps < steps and not (arrived < started and arrival_s[arrived] <= now):
                k_seg = host_at(host, seg_start_s, seg_scale, k_seg, now, host_now)
                duration_s, joules = decode_only_cost(model, cache, batch, position_sum, eager_decode, host_now, batch)
                if done_steps == 0 and eager_decode:
                    first = first_use_s(host_now, seen, batch)
                    duration_s += first
                    joules += idle_w * first
                end_s = now + duration_s
                gap = end_s - now
                itl[_itl_bin(gap)] += batch
                totals[T_ITL_SUM_S] += gap * batch
                totals[T_ITL_COUNT] += batch
                totals[T_ENERGY_J] += joules
                totals[T_BUSY_S] += duration_s
                done_steps += 1
                if iteration % int(totals[T_RECORD_STRIDE]) == 0:      # the free blocks after this step
                    k[K_FREE] = free0 - run_blocks(running, batch, computed, blocks, block_size, done_steps)
                    _record(records, totals, end_s, k, batch, duration_s, iteration)
                iteration += 1
                now = end_s
                position_sum += batch
            if done_steps > 0:
                k[K_FREE] = free0
                for j in range(batch):
                    r = running[j]
                    computed[r] += done_steps
                    generated[r] += done_steps
                    last_s[r] = now
                    grown = blocks_for(computed[r], block_size)
                    k[K_FREE] -= grown - blocks[r]
                    blocks[r] = grown
                k[K_PEAK] = max(k[K_PEAK], pool - k[K_FREE])
    totals[T_ITERATIONS] = iteration
    totals[T_PREEMPTIONS] = k[K_PREEMPTIONS]
    totals[T_PEAK_BLOCKS] = k[K_PEAK]
    totals[T_END_S] = now
    return first_s, last_s, preempted, itl, totals
