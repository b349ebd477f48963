"""kernels/steptable.py: the piecewise-linear total of a decode step's time sums over any
position range to what roofline.range_sums gives operator by operator; the sweep kernel in
table mode equals it scenario by scenario."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

from simulator.engine.kernels import roofline, steptable


def _random_lines(rng, n_ops):
    """Cases and lines of every kind: constant, max of two lines, min of two maxes; lines
    that cross at small and large positions, and parallel ones."""
    case = rng.integers(0, 3, n_ops)
    lines = np.zeros((n_ops, 4, 2))
    lines[:, :, 0] = rng.uniform(0.0, 1e-3, (n_ops, 4))
    lines[:, :, 1] = rng.uniform(0.0, 1e-7, (n_ops, 4)) * (rng.random((n_ops, 4)) < 0.8)
    op = roofline.op_params(n_ops)
    op[:, roofline.OP_OVERHEAD] = rng.uniform(0.0, 1e-5, n_ops)
    op[:, roofline.OP_REPEAT] = rng.integers(1, 80, n_ops)
    return op, case, lines


def _table(op, case, lines):
    n = steptable.max_pieces(op.shape[0])
    tables, cuts, scratch = np.zeros((1, 3, n)), np.zeros(n + 1), np.zeros(op.shape[0])
    pieces = steptable.build(op, case, lines, scratch, cuts, tables[0, 0], tables[0, 1], tables[0, 2])
    return tables, pieces


@pytest.mark.parametrize("seed", range(8))
def test_total_equals_range_sums(seed):
    rng = np.random.default_rng(seed)
    op, case, lines = _random_lines(rng, 24)
    tables, pieces = _table(op, case, lines)
    assert 1 <= pieces <= steptable.max_pieces(24)
    scratch = np.zeros(24)
    for lo, hi in [(0, 0), (1, 5), (100, 100_000), (5_000, 5_001), (10**6, 10**6 + 65_535), (7, 6),
                   *((int(a), int(a + d)) for a, d in zip(rng.integers(0, 10**7, 20), rng.integers(0, 10**5, 20)))]:
        want = roofline.range_sums(op, case, lines, float(lo), float(hi), scratch)
        got = steptable.total(tables, 0, pieces, float(lo), float(hi))
        assert_allclose(got, want, rtol=1e-12, atol=0.0, err_msg=f"[{lo}, {hi}]")


def test_constant_operators_make_one_piece():
    rng = np.random.default_rng(0)
    op, case, lines = _random_lines(rng, 5)
    case[:] = roofline.CONSTANT
    tables, pieces = _table(op, case, lines)
    assert pieces == 1 and tables[0, 2, 0] == 0.0
    assert steptable.total(tables, 0, pieces, 10.0, 19.0) == pytest.approx(
        10 * sum(lines[:, 0, 0] * op[:, roofline.OP_REPEAT]), rel=1e-12)


def test_sweep_in_table_mode_equals_per_operator_sums(monkeypatch):
    """evaluate_many with step tables (long runs of one batch) against the per-operator sums."""
    from simulator.api import prepare
    from simulator.engine import batch
    from simulator.specs.base import Dtype

    prep = prepare("mistral-7b", "h100-sxm", "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16)  # sliding window
    packed = batch.pack(prep)
    b = np.repeat([1, 8, 64], 200)
    s = np.tile(np.repeat([16, 3000, 9000], 67)[:200], 3)
    n = np.tile(np.arange(1, 201), 3)
    assert b.shape == s.shape == n.shape == (600,)
    tabled = batch.evaluate_many(packed, b, s, n)
    monkeypatch.setattr(batch, "TABLE_RUN", 10**9)
    direct = batch.evaluate_many(packed, b, s, n)
    assert np.array_equal(np.isnan(tabled), np.isnan(direct))
    ok = ~np.isnan(direct)
    assert_allclose(tabled[ok], direct[ok], rtol=1e-12)
