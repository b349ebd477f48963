"""policy.Scheduler restated over arrays for the numba loop (serving/loop.py): the scalar
state vector, block growth and preemption, one continuous-batching or static step into the
entry arrays, and how many decode-only iterations can follow without an event (the loop's
decode runs)."""
from __future__ import annotations

from numba import njit

# scalar state (an int64 vector)
(K_HEAD, K_WAITING, K_RUNNING, K_FREE, K_PEAK, K_PREEMPTIONS, K_STEPS_DONE, K_PAD_PROMPT, K_PAD_OUTPUT,
 K_ENTRIES) = range(10)
N_STATE = 10


@njit(cache=True, inline="always")
def blocks_for(tokens, block_size):
    return (tokens + block_size - 1) // block_size


@njit(cache=True, inline="always")
def cached_prefix(prefix_hit, block_size, prompt, num_tokens, hit):
    """policy.cached_prefix."""
    if hit == 0 or prefix_hit <= 0.0:
        return 0
    tokens = int(prefix_hit * prompt) // block_size * block_size
    return min(tokens, num_tokens - 1)


@njit(cache=True, inline="always")
def grow(k, blocks, r, tokens, block_size, pool):
    """policy.Scheduler.grow: give request r the blocks for ``tokens`` positions if free."""
    need = blocks_for(tokens, block_size) - blocks[r]
    if need > k[K_FREE]:
        return False
    if need > 0:
        k[K_FREE] -= need
        blocks[r] += need
    k[K_PEAK] = max(k[K_PEAK], pool - k[K_FREE])
    return True


@njit(cache=True, inline="always")
def preempt(k, queue, blocks, computed, preempted, r):
    """Free r's blocks, drop its KV (recompute) and put it at the head of the waiting queue."""
    k[K_FREE] += blocks[r]
    blocks[r] = 0
    computed[r] = 0
    preempted[r] += 1
    k[K_PREEMPTIONS] += 1
    k[K_HEAD] = (k[K_HEAD] - 1) % queue.shape[0]
    queue[k[K_HEAD]] = r
    k[K_WAITING] += 1


@njit(cache=True, inline="always")
def continuous_step(k, queue, running, prompt, generated, computed, blocks, preempted, hit, max_tokens, max_seqs,
                     block_size, prefix_hit, pool, ent_req, counts, starts, lengths):
    """policy.Scheduler.continuous_step into the entry arrays; returns their count."""
    budget = max_tokens
    n = 0
    any_preempted = False
    j = 0
    free = k[K_FREE]                           # kept local in the common case (k[K_FREE] before any call)
    n_running = k[K_RUNNING]
    while j < n_running and budget > 0:
        r = running[j]
        c = computed[r]
        new = min(prompt[r] + generated[r] - c, budget)
        need = blocks_for(c + new, block_size) - blocks[r]
        if need <= free:                       # the common case, grow without its calls
            if need > 0:
                free -= need
                blocks[r] += need
            ent_req[n], counts[n], starts[n], lengths[n] = r, 1, c, new
            n += 1
            budget -= new
            j += 1
            continue
        k[K_FREE] = free
        k[K_PEAK] = max(k[K_PEAK], pool - k[K_FREE])
        scheduled = True
        while not grow(k, blocks, r, computed[r] + new, block_size, pool):
            k[K_RUNNING] -= 1
            victim = running[k[K_RUNNING]]
            preempt(k, queue, blocks, computed, preempted, victim)
            any_preempted = True
            if victim == r:
                scheduled = False
                break
        free, n_running = k[K_FREE], k[K_RUNNING]
        if not scheduled:
            break
        ent_req[n], counts[n], starts[n], lengths[n] = r, 1, computed[r], new
        n += 1
        budget -= new
        j += 1
    k[K_FREE] = free
    k[K_PEAK] = max(k[K_PEAK], pool - k[K_FREE])
    if any_preempted:
        return n
    while k[K_WAITING] > 0 and budget > 0 and k[K_RUNNING] < max_seqs:
        r = queue[k[K_HEAD]]
        num_tokens = prompt[r] + generated[r]
        computed[r] = cached_prefix(prefix_hit, block_size, prompt[r], num_tokens, hit[r])
        new = min(num_tokens - computed[r], budget)
        if not grow(k, blocks, r, computed[r] + new, block_size, pool):
            computed[r] = 0
            break
        k[K_HEAD] = (k[K_HEAD] + 1) % queue.shape[0]
        k[K_WAITING] -= 1
        running[k[K_RUNNING]] = r
        k[K_RUNNING] += 1
        ent_req[n], counts[n], starts[n], lengths[n] = r, 1, computed[r], new
        n += 1
        budget -= new
    return n


@njit(cache=True, inline="always")
def static_step(k, queue, running, prompt, output, max_seqs, block_size, pool, counts, starts, lengths):
    """policy.Scheduler.static_step: one padded entry; returns the entry count (0 or 1)."""
    if k[K_RUNNING] == 0:
        s = 0
        n = 0
        while k[K_WAITING] > 0 and k[K_RUNNING] < max_seqs:
            r = queue[k[K_HEAD]]
            s2, n2 = max(s, prompt[r]), max(n, output[r])
            if (k[K_RUNNING] + 1) * blocks_for(s2 + n2, block_size) > pool:
                break
            s, n = s2, n2
            running[k[K_RUNNING]] = r
            k[K_RUNNING] += 1
            k[K_HEAD] = (k[K_HEAD] + 1) % queue.shape[0]
            k[K_WAITING] -= 1
        if k[K_RUNNING] == 0:
            return 0
        used = k[K_RUNNING] * blocks_for(s + n, block_size)
        k[K_FREE] = pool - used
        k[K_PEAK] = max(k[K_PEAK], used)
        k[K_PAD_PROMPT], k[K_PAD_OUTPUT], k[K_STEPS_DONE] = s, n, 0
        counts[0], starts[0], lengths[0] = k[K_RUNNING], 0, s
        return 1
    counts[0], starts[0], lengths[0] = k[K_RUNNING], k[K_PAD_PROMPT] + k[K_STEPS_DONE] - 1, 1
    return 1


@njit(cache=True, inline="always")
def run_blocks(running, n_running, computed, blocks, block_size, steps):
    """Blocks the running requests add over ``steps`` more decode tokens each."""
    need = 0
    for j in range(n_running):
        r = running[j]
        need += blocks_for(computed[r] + steps, block_size) - blocks[r]
    return need


@njit(cache=True, inline="always")
def decode_run_steps(k, running, output, generated, computed, blocks, block_size):
    """How many decode-only iterations can follow with nothing but a token each: none of the
    running requests finishing (the iteration that ends one runs the ordinary way) and their
    blocks fitting the free pool (so no preemption); 0 when none can."""
    n = k[K_RUNNING]
    steps = 1 << 40
    for j in range(n):
        r = running[j]
        steps = min(steps, output[r] - generated[r] - 1)
    if steps <= 0 or run_blocks(running, n, computed, blocks, block_size, steps) <= k[K_FREE]:
        return max(steps, 0)
    lo, hi = 0, steps                          # the blocks fit lo steps and not hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run_blocks(running, n, computed, blocks, block_size, mid) <= k[K_FREE]:
            lo = mid
        else:
            hi = mid
    return lo
