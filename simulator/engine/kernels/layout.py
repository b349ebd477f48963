"""The layout the scenario kernels share (kernels/scenario.py re-exports every name): the rows
of a result vector, the scalar parameters of a packed model, the entries of a packed model
tuple (``batch.Packed.target``) and of a workspace tuple, and ``workspace`` that allocates one."""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.graph.ops import N_FEATURES

# rows of a result vector / matrix
OUTPUTS = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "prefill_energy_j", "decode_step_energy_j",
           "energy_j", "tokens_per_j", "weights_bytes", "kv_cache_bytes", "activation_bytes", "memory_total_bytes",
           "fits", "prefill_device_s", "plain_tpot_s",
           "draft_step_s", "verify_pass_s", "tokens_per_iteration", "plain_e2e_s")
(TTFT_S, TPOT_S, E2E_S, TOKENS_PER_S, PREFILL_ENERGY_J, DECODE_STEP_ENERGY_J, ENERGY_J, TOKENS_PER_J,
 WEIGHTS_BYTES, KV_CACHE_BYTES, ACTIVATION_BYTES, TOTAL_BYTES, FITS, PREFILL_DEVICE_S, PLAIN_TPOT_S, DRAFT_STEP_S,
 VERIFY_PASS_S, TOKENS_PER_ITERATION, PLAIN_E2E_S) = range(len(OUTPUTS))
N_OUTPUTS = len(OUTPUTS)
TIMES = (TTFT_S, TPOT_S, E2E_S, TOKENS_PER_S, PREFILL_ENERGY_J, DECODE_STEP_ENERGY_J, ENERGY_J, TOKENS_PER_J)

# the scalar parameters of a packed model
PARAMS = ("prefill_step_overhead_s", "host_launch_s", "decode_step_overhead_s", "window", "weight_bytes",
          "kv_bytes_per_token", "pp", "capacity_bytes", "stages", "transfer_s", "transfer_s_per_token",
          "has_energy", "idle_w", "tdp_w", "devices", "copies", "experts", "experts_per_token", "ep",
          "replicas", "microbatches", "draft_tokens", "acceptance", "busy_fraction", "local_kv_bytes_per_token",
          "decode_host_s")
(P_PREFILL_STEP_S, P_HOST_LAUNCH_S, P_DECODE_STEP_S, P_WINDOW, P_WEIGHT_BYTES, P_KV_BYTES_PER_TOKEN, P_PP,
 P_CAPACITY_BYTES, P_STAGES, P_TRANSFER_S, P_TRANSFER_S_PER_TOKEN, P_HAS_ENERGY, P_IDLE_W, P_TDP_W, P_DEVICES,
 P_COPIES, P_EXPERTS, P_EXPERTS_PER_TOKEN, P_EP, P_REPLICAS, P_MICROBATCHES, P_DRAFT_TOKENS,
 P_ACCEPTANCE, P_BUSY_FRACTION, P_LOCAL_KV_BYTES_PER_TOKEN, P_DECODE_HOST_S) = range(len(PARAMS))
# P_DECODE_HOST_S: a stack that launches each decode step eagerly (no CUDA graph): the host's
# time to launch one step's kernels, which bounds the step from below (0: graphed decode)

# entries of a packed model tuple
(M_FLOPS, M_MEM_S, M_ALT_MEM_S, M_OP_PREFILL, M_OP_DECODE, M_TRANSIENT, M_JOULES, M_PARAMS) = range(8)
# entries of a workspace tuple (workspace(n_ops)); its state: the (B, S) whose prefill it holds
(W_FEATS, W_DEC_FEATS, W_F0, W_F1, W_CASE, W_LINES, W_SCRATCH, W_STATE, W_PREFILL_T, W_DECODE_T, W_CUTS,
 W_PIECES, W_LOCAL_T) = range(13)
S_BATCH, S_PROMPT, S_ACT, S_PREFILL_DEVICE_S, S_PRE_DYN_J, S_HAVE_PREFILL, S_KEEP_OPS, S_TABLE = range(8)
# S_KEEP_OPS: 1 keeps the per-operator times of the last scenario in W_PREFILL_T and W_DECODE_T
# S_TABLE: 1 sums decode steps from steptable's pieces (built once per batch size: sweeps), not per
# operator; W_PIECES [2 segments, 3 (x0, t0, slope), pieces], their counts in W_CUTS[seg, -1]


@njit(cache=True, error_model="numpy")
def workspace(n_ops, table=False):
    """Scratch arrays for one model's scenarios (reused while B or (B, S) repeat); ``table``
    sums decode steps from a step table (S_TABLE)."""
    state = np.full(8, -1.0)
    state[S_KEEP_OPS] = 0.0
    state[S_TABLE] = 1.0 if table else 0.0
    pieces = 6 * n_ops + 1                      # steptable.max_pieces
    return (np.zeros(N_FEATURES), np.zeros(N_FEATURES), np.zeros((2, N_FEATURES)), np.zeros((2, N_FEATURES)),
            np.zeros((2, n_ops), dtype=np.int64), np.zeros((2, n_ops, 4, 2)), np.zeros(n_ops), state,
            np.zeros(n_ops), np.zeros(n_ops), np.zeros((2, pieces + 1)), np.zeros((2, 3, pieces)), np.zeros(n_ops))
