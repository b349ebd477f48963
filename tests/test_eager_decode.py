"""A stack that launches decode steps eagerly (StackSpec.decode_graphs false): each step takes
at least the host's launch time (eager.eager_range_s)."""
import numpy as np
import pytest

from simulator.engine.kernels.roofline import range_lines, range_sums
from simulator.engine.kernels.eager import eager_range_s
from simulator.specs import registry


def _stacks():
    graphed = registry.stack("pytorch-ref")
    return graphed, graphed.model_copy(update={"decode_graphs": False, "name": "eager-ref"})


def _tpot(stack, **kw):
    from simulator.api import prepare
    from simulator.engine.predict import evaluate
    from simulator.specs.base import Dtype
    from simulator.specs.workload import workload

    prep = prepare(kw.pop("model"), "h200-sxm", stack, Dtype.bf16, Dtype.bf16, Dtype.bf16)
    return evaluate(prep, workload(**kw)), prep


def test_a_host_bound_eager_step_takes_the_launch_time_and_a_long_one_its_device_time():
    graphed, eager = _stacks()
    small_g, prep = _tpot(graphed, model="llama-3.2-1b", batch=1, prompt=128, output=16)
    small_e, _ = _tpot(eager, model="llama-3.2-1b", batch=1, prompt=128, output=16)
    host, step = prep.rates.host_launch_s, prep.rates.step_overhead_s
    assert small_g.tpot_s < host                                  # graphed: the device's time
    assert small_e.tpot_s == pytest.approx(host + step, rel=1e-9)  # eager: the host's launches
    big_g, _ = _tpot(graphed, model="llama-3.1-8b", batch=64, prompt=8192, output=4)
    big_e, _ = _tpot(eager, model="llama-3.1-8b", batch=64, prompt=8192, output=4)
    assert big_e.tpot_s == pytest.approx(big_g.tpot_s, rel=1e-12)  # the device's time hides the host's


def test_eager_range_is_the_step_by_step_sum_of_the_max():
    _, prep = _tpot(registry.stack("pytorch-ref"), model="llama-3.1-8b", batch=64, prompt=16, output=2)
    from simulator.engine.kernels.phases import decode_segments

    flops, mem_s, alt, op = prep.rates.pass_arrays("decode")
    (f0, f1, lo, hi), = decode_segments(64, 0, 20000, 0)[:1]
    case = np.zeros(len(op), dtype=np.int64)
    lines = np.zeros((len(op), 4, 2))
    range_lines(flops, mem_s, alt, op, f0, f1, case, lines)
    scratch = np.zeros(len(op))
    steps = np.array([range_sums(op, case, lines, c, c, scratch) for c in range(0, 20001)])
    for host in (0.5 * steps[0], steps[7000], 0.5 * (steps[12000] + steps[12001]), 2.0 * steps[-1]):
        assert eager_range_s(op, case, lines, 0.0, 20000.0, host, scratch) == pytest.approx(
            np.maximum(steps, host).sum(), rel=1e-9)
        assert scratch.sum() == pytest.approx(steps.sum(), rel=1e-9)    # per-operator device times


def test_the_batch_kernel_agrees_with_predict_for_an_eager_stack():
    from simulator.api import prepare
    from simulator.engine.batch import evaluate_many, pack
    from simulator.engine.kernels import scenario as sc
    from simulator.specs.base import Dtype

    _, eager = _stacks()
    prep = prepare("llama-3.2-1b", "h200-sxm", eager, Dtype.bf16, Dtype.bf16, Dtype.bf16)
    batch, prompt, output = np.array([1, 8, 64, 64]), np.array([128, 2048, 4096, 4096]), np.array([64, 128, 32, 33])
    rows = evaluate_many(pack(prep), batch, prompt, output)
    for k in range(len(batch)):
        one, _ = _tpot(eager, model="llama-3.2-1b", batch=int(batch[k]), prompt=int(prompt[k]), output=int(output[k]))
        assert rows[sc.TPOT_S, k] == pytest.approx(one.tpot_s, rel=1e-12)


def test_an_eager_verify_pass_takes_at_least_the_launch_time():
    """Speculative decoding's verify pass is a decode pass: eagerly launched, at least the host's time."""
    from simulator.api import prepare
    from simulator.engine.predict import evaluate
    from simulator.specs.base import Dtype
    from simulator.specs.workload import workload

    graphed, eager = _stacks()
    kw = dict(batch=1, prompt=128, output=64, draft_model="llama-3.2-1b", draft_tokens=4)
    bf = Dtype.bf16
    (g_prep, e_prep), (g_draft, e_draft) = ((prepare(m, "h200-sxm", s, bf, bf, bf) for s in (graphed, eager))
                                            for m in ("llama-3.1-8b", "llama-3.2-1b"))
    fast = evaluate(g_prep, workload(**kw), draft=g_draft).speculative
    slow = evaluate(e_prep, workload(**kw), draft=e_draft).speculative
    assert fast.verify_pass_s < e_prep.rates.host_launch_s
    assert slow.verify_pass_s == pytest.approx(e_prep.rates.host_launch_s + e_prep.rates.step_overhead_s, rel=1e-9)
