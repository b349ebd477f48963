"""explore/front.py: the Pareto front (checked against brute force), streamed in chunks,
and the bounded sample that a sweep of a million rows is drawn from."""
import numpy as np
import pytest

from simulator.explore.front import BATCH, THROUGHPUT, TPOT, FrontSample, pareto_front
from simulator.explore.writers import SCENARIO_COLUMNS

COL = {name: i for i, name in enumerate(SCENARIO_COLUMNS)}


def brute_front(latency, throughput) -> set:
    n = len(latency)
    same = lambda i, j: latency[j] == latency[i] and throughput[j] == throughput[i]      # noqa: E731
    return {i for i in range(n)
            if not any((latency[j] <= latency[i] and throughput[j] >= throughput[i] and not same(i, j))
                       or (same(i, j) and j < i) for j in range(n))}


def values(n, rng, fits=None, tpot=None):
    v = np.zeros((len(SCENARIO_COLUMNS), n))
    v[COL["batch"]] = np.arange(n) + 1
    v[COL["tpot_s"]] = rng.random(n) if tpot is None else tpot
    v[COL["output_tokens_per_s"]] = rng.random(n) * 1000
    v[COL["tokens_per_j"]] = rng.random(n)
    v[COL["fits"]] = 1.0 if fits is None else fits
    return v


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    latency = rng.integers(0, 20, 200).astype(float)         # ties on purpose
    throughput = rng.integers(0, 20, 200).astype(float)
    front = pareto_front(latency, throughput)
    assert set(front) == brute_front(latency, throughput)
    assert np.all(np.diff(latency[front]) > 0) and np.all(np.diff(throughput[front]) > 0)


def test_streamed_front_equals_the_front_of_all_rows():
    rng = np.random.default_rng(1)
    chunks = [values(1000, rng) for _ in range(7)]
    sample = FrontSample(cap=500)
    for k, v in enumerate(chunks):
        sample.add(v, f"config {k % 3}")
    everything = np.hstack(chunks)
    expected = everything[:, pareto_front(everything[COL["tpot_s"]], everything[COL["output_tokens_per_s"]])]
    assert np.array_equal(sample.front()[TPOT], expected[COL["tpot_s"]])
    assert np.array_equal(sample.front()[THROUGHPUT], expected[COL["output_tokens_per_s"]])
    assert sample.configs == ["config 0", "config 1", "config 2"] and sample.counts == {True: 7000, False: 0}
    assert sample.sample(True).shape == (7, 500)


def test_rows_that_do_not_fit_or_have_no_tpot_are_left_out_and_misses_kept_apart():
    rng = np.random.default_rng(2)
    v = values(6, rng, fits=np.array([1, 0, 1, 1, 1, 1.0]), tpot=np.array([0.1, 0.2, np.nan, 0.3, 0.4, 0.5]))
    sample = FrontSample()
    sample.add(v, "c", meets=np.array([True, True, True, False, True, False]))
    assert sample.counts == {True: 2, False: 2}
    assert sorted(sample.sample(True)[BATCH]) == [1, 5] and sorted(sample.sample(False)[BATCH]) == [4, 6]
    assert set(sample.front()[BATCH]) <= {1, 5}
    assert sample.label(sample.sample(True)[:, 0]).startswith("c B=")


def test_a_million_rows_keep_a_bounded_uniform_sample():
    rng = np.random.default_rng(3)
    sample = FrontSample(cap=10_000)
    batches = []
    for _ in range(16):
        v = values(65_536, rng)
        sample.add(v, "one device")
        batches.append(v)
    assert sample.counts[True] == 16 * 65_536 and sample.sample(True).shape == (7, 10_000)
    # uniform: the sample's mean TPOT is the population's (uniform on [0, 1)) within a few standard errors
    assert abs(sample.sample(True)[TPOT].mean() - 0.5) < 4 * 0.29 / np.sqrt(10_000)
    everything = np.hstack(batches)
    assert len(sample.front()[TPOT]) == len(pareto_front(everything[COL["tpot_s"]],
                                                         everything[COL["output_tokens_per_s"]]))
