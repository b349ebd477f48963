"""The sweep's numba kernels against their references: engine/batch.py against
predict.evaluate scenario by scenario, the CSV number formatter against Python's '%.12g'.
Small enough to run also with NUMBA_DISABLE_JIT=1 (the Makefile's test target does)."""
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from simulator.engine import batch
from simulator.engine.kernels import scenario as sc
from simulator.engine.kernels.phases import expert_features, touched_experts
from simulator.api import prepare
from simulator.engine.predict import evaluate
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.quant import parse_weight_format
from simulator.specs.workload import Workload
from simulator.explore import csvfmt


def predicted(prep, b, s, n, tp=1, pp=1, weight="bf16") -> np.ndarray:
    """predict.evaluate's numbers (one scenario at a time, fresh workspaces) in the order
    below (NaN for None)."""
    p = evaluate(prep, Workload(batch=b, prompt=s, output=n, tp=tp, pp=pp, weight_dtype=weight))
    m = p.memory
    values = [p.ttft_s, p.tpot_s, p.e2e_s, p.output_tokens_per_s, p.prefill_energy_j, p.decode_step_energy_j,
              p.energy_j, p.tokens_per_j, m.kv_cache_bytes, m.activation_bytes, m.total_bytes, float(m.fits)]
    return np.array([math.nan if v is None else v for v in values])


ROWS = [sc.TTFT_S, sc.TPOT_S, sc.E2E_S, sc.TOKENS_PER_S, sc.PREFILL_ENERGY_J, sc.DECODE_STEP_ENERGY_J, sc.ENERGY_J,
        sc.TOKENS_PER_J, sc.KV_CACHE_BYTES, sc.ACTIVATION_BYTES, sc.TOTAL_BYTES, sc.FITS]


def _scenarios(seed: int, count: int, max_prompt: int = 9000):
    """Random (B, S, N), half of them in pairs sharing B and S (the kernel's cached path)."""
    rng = np.random.default_rng(seed)
    b, s, n = rng.integers(1, 48, count), rng.integers(1, max_prompt, count), rng.integers(1, 2500, count)
    b[1::2], s[1::2] = b[::2], s[::2]
    n[::5] = 1
    return b, s, n


@pytest.mark.parametrize("model,hardware,weight,tp,pp", [
    ("llama-3.1-8b", "h100-sxm", "bf16", 1, 1),
    ("mistral-7b", "a100-sxm-80gb", "int4-g128", 1, 1),     # sliding window: two decode segments
    ("llama-3.2-1b", "hbm-pim", "bf16", 1, 1),              # PIM unit: min of maxes
    ("llama-3.2-1b", "groq-lpu", "bf16", 1, 1),             # on-chip SRAM only
    ("qwen2.5-7b", "mi300x", "fp8", 1, 1),                  # on-chip cache level
    ("llama-3.1-70b", "h100-sxm", "bf16", 4, 2),            # collectives, pipeline transfers
    ("opt-6.7b", "epyc-9654", "bf16", 1, 1),                # CPU
    ("llama-2-7b", "tpu-v5e", "int8", 2, 1),                # no power figures: energy NaN
    ("mixtral-8x7b", "h200-sxm", "fp8", 2, 1),              # mixture of experts
    ("deepseek-v3", "b200", "fp8", 8, 1),                   # MoE with latent attention (MLA)
])
def test_kernel_equals_predict(model, hardware, weight, tp, pp):
    if model not in registry.model_index():
        pytest.skip(f"no {model} spec")
    prep = prepare(model, hardware, "pytorch-ref", parse_weight_format(weight), Dtype.bf16, Dtype.bf16, tp)
    packed = batch.pack(prep, batch.Layout(tp=tp, pp=pp))
    b, s, n = _scenarios(sum(map(ord, model + hardware)), 12)
    got = batch.evaluate_many(packed, b, s, n)[ROWS]
    for k in range(len(b)):
        assert_allclose(got[:, k], predicted(prep, int(b[k]), int(s[k]), int(n[k]), tp, pp, weight), rtol=1e-11,
                        err_msg=f"{model} {hardware} B={b[k]} S={s[k]} N={n[k]}")


def test_parallel_and_serial_kernels_agree_bitwise():
    prep = prepare("mistral-7b", "h100-sxm", "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16)
    b, s, n = _scenarios(3, 40)
    packed = batch.pack(prep)
    parallel = batch.evaluate_many(packed, b, s, n, parallel=True)
    serial = batch.evaluate_many(packed, b, s, n, parallel=False)
    assert np.array_equal(parallel, serial, equal_nan=True)


def test_each_thread_and_any_order_give_the_same_bits():
    """Enough scenarios for a work item per thread (batch.BLOCK each at least), given in B x
    S x N order, shuffled (evaluate_many groups them by B and S: batch.grouped_order) and with
    batch sizes large enough that the grouping key would pass int64 (its lexsort branch)."""
    prep = prepare("gemma-2-9b", "h100-sxm", "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16)
    packed = batch.pack(prep)
    axes = np.arange(1, 33), [1, 50, 4000, 4096, 9000], [1, 2, 3, 30, 31, 200, 900, 901]
    grid = [a.ravel() for a in np.meshgrid(*axes, indexing="ij")]
    in_order = batch.evaluate_many(packed, *grid, parallel=True)
    assert in_order.shape[1] >= 2 * batch.BLOCK
    assert np.array_equal(in_order, batch.evaluate_many(packed, *grid, parallel=False), equal_nan=True)
    shuffled = np.random.default_rng(5).permutation(in_order.shape[1])
    got = batch.evaluate_many(packed, *(a[shuffled] for a in grid))
    assert np.array_equal(got, in_order[:, shuffled], equal_nan=True)
    b, s = np.array([3, 2 ** 40, 3, 2 ** 40, 1]), np.array([2 ** 30, 5, 7, 5, 2 ** 30])
    order = batch.grouped_order(b, s)
    assert [(b[k], s[k]) for k in order] == sorted(zip(b, s))


def test_rows_layout_and_one_scenario_share_the_kernel():
    """evaluate_many(rows=True) is the same numbers in C order (each quantity's row contiguous)
    in and out of the grouped order; one scenario is evaluated by the kernel overload many
    are (its results array is not typed as C-contiguous: batch._evaluate)."""
    prep = prepare("llama-3.1-8b", "h100-sxm", "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16)
    packed = batch.pack(prep)
    rng = np.random.default_rng(3)
    for b in (rng.integers(1, 17, 300), np.repeat([2, 9], 150)):        # grouped, and in order
        s, n = rng.integers(16, 2048, 300), rng.integers(1, 256, 300)
        plain, rows = batch.evaluate_many(packed, b, s, n), batch.evaluate_many(packed, b, s, n, rows=True)
        assert rows.flags.c_contiguous and np.array_equal(rows, plain, equal_nan=True)
    before = len(getattr(batch.parallel_kernel, "signatures", ()))
    one = batch.evaluate_many(packed, [8], [1024], [128])
    assert one.shape == (sc.N_OUTPUTS, 1) and len(getattr(batch.parallel_kernel, "signatures", ())) == before
    assert np.array_equal(one[:, 0], batch.evaluate_many(packed, [8, 1], [1024, 5], [128, 2])[:, 0], equal_nan=True)


def test_not_fitting_scenarios_have_memory_and_no_times():
    prep = prepare("llama-3.1-70b", "rtx-4090", "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16)
    out = batch.evaluate_many(batch.pack(prep), [1], [128], [16])
    assert out[sc.FITS, 0] == 0.0 and out[sc.TOTAL_BYTES, 0] > 24e9
    assert np.isnan(out[list(sc.TIMES), 0]).all()


@pytest.mark.parametrize("tokens", [1, 16, 256, 4096])
def test_packed_expert_features_are_phases(tokens):
    """The sweep reads (experts, top-k, ep) from its packed parameters; same numbers."""
    prep = prepare("qwen3-30b-a3b", "h100-sxm", "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16)
    params = batch.pack(prep).params
    assert touched_experts(float(tokens), params[sc.P_EXPERTS], params[sc.P_EXPERTS_PER_TOKEN],
                           params[sc.P_EP]) == expert_features(tokens, prep.table.moe)


NICE = [0.0, -0.0, 1.0, 10.0, 123.456, 1e11, 1e12, 123456789012.0, 1234567890123.0, 1e-4, 1e-5, 0.5, -2.5,
        1e300, 1e-300, 5e-324, 3.0, 2.0 ** 53, 0.1, 1 / 3, 99999.99999999999, 9.99999999999951, 700.0]


@pytest.mark.parametrize("x", NICE)
def test_format_float_matches_percent_g(x):
    assert csvfmt.format_float(x) == "%.12g" % x


def test_format_float_round_trips_random_values():
    rng = np.random.default_rng(7)
    for x in rng.random(300) * 10.0 ** rng.integers(-30, 30, 300):
        text = csvfmt.format_float(x)
        assert float(text) == pytest.approx(x, rel=1e-11)
        assert text == "%.12g" % x or float(text) == pytest.approx(float("%.12g" % x), rel=1e-11)


def test_special_values_and_rows():
    assert [csvfmt.format_float(v) for v in (math.nan, math.inf, -math.inf)] == ["nan", "inf", "-inf"]
    values = np.array([[1.0, 250.0], [0.25, math.nan], [1.0, 0.0], [-3.0, 7.0]])
    kinds = [csvfmt.INT, csvfmt.FLOAT, csvfmt.BOOL, csvfmt.INT]
    text = csvfmt.rows_csv("m,h,", values, kinds).decode()
    assert text == "m,h,1,0.25,True,-3\nm,h,250,nan,False,7\n"
