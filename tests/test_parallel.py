"""Elementwise work on two threads (mlpcli.parallel): the same bits as one thread, every
element done once, both threads at work, errors brought back, and the switch that turns it
off; and the flush of denormal momenta (optim.flush_denormals)."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import TINY, mlp

from mlpcli import parallel
from mlpcli.optim import SGD, Adam, flush_denormals

TINY_NORMAL = np.finfo(np.float32).tiny  # the smallest normal float32


def optimizers(n: int, parallel: bool):
    return [
        Adam(n, np.float32, parallel=parallel),
        SGD(n, np.float32, momentum=0.9, nesterov=True, parallel=parallel),
        SGD(n, np.float32, parallel=parallel),
    ]


@pytest.mark.parametrize("n", [7, parallel.MIN_SIZE + 13, 3 * parallel.MIN_SIZE + 1])
def test_two_threads_give_the_bits_of_one(n):
    rng = np.random.default_rng(n)
    start = rng.standard_normal(n, dtype=np.float32)
    steps = [rng.standard_normal(n, dtype=np.float32) * 10.0**-k for k in range(5)]
    for one, two in zip(optimizers(n, parallel=False), optimizers(n, parallel=True)):
        params_one, params_two = start.copy(), start.copy()
        for lr, grads in zip([1e-3, 1e-2, 1e-3, 0.5, 1e-4], steps):
            one.step(params_one, grads.copy(), lr)
            two.step(params_two, grads.copy(), lr)
        assert np.array_equal(params_one, params_two)
        for name, state in one.state().items():
            assert np.array_equal(state, two.state()[name]), name


def test_every_element_is_done_once_and_by_both_threads():
    n = 4 * parallel.MIN_SIZE + 5
    counts, threads = np.zeros(n, dtype=np.int64), set()
    both_started = threading.Barrier(2, timeout=30)  # breaks unless a second thread comes

    def count(part):
        if threading.get_ident() not in threads:
            threads.add(threading.get_ident())
            both_started.wait()
        part += 1

    parallel.in_parts(count, counts)
    assert len(threads) == 2
    assert np.array_equal(counts, np.ones(n))


def test_one_thread_when_parallel_is_off_or_the_buffer_is_short():
    threads = set()

    def note(part):
        threads.add(threading.get_ident())

    parallel.in_parts(note, np.zeros(4 * parallel.MIN_SIZE), parallel=False)
    parallel.in_parts(note, np.zeros(parallel.MIN_SIZE - 1))
    assert threads == {threading.get_ident()}


def test_an_error_on_either_thread_reaches_the_caller_and_the_worker_stays_usable():
    n = 4 * parallel.MIN_SIZE

    def fail_on_the_last_part(part):
        if part[-1] == n - 1:
            raise ValueError("the last part")

    with pytest.raises(ValueError, match="the last part"):
        parallel.in_parts(fail_on_the_last_part, np.arange(n, dtype=np.float64))
    buffer = np.zeros(n)
    parallel.in_parts(np.add, buffer, np.ones(n), buffer)  # buffer ← buffer + 1, part by part
    assert np.array_equal(buffer, np.ones(n))


def test_flush_denormals_zeroes_exactly_the_denormals():
    values = [0.0, 1e-45, -3e-42, TINY_NORMAL / 2, TINY_NORMAL, -TINY_NORMAL, 1e-30, 1.0, np.inf, np.nan]
    buffer = np.array(values, dtype=np.float32)
    flush_denormals(buffer)
    expected = np.array([0, 0, 0, 0, *values[4:]], dtype=np.float32)
    np.testing.assert_array_equal(buffer, expected)


def test_a_dead_units_momentum_sticks_in_the_denormals_and_flushing_changes_no_weight():
    """A gradient that turns exactly 0 (a dead relu unit) leaves Adam's u decaying by β₁ a
    step: after ~900 steps it is denormal, and there it stays (β₁·x rounds back to x)."""
    n = 1000
    rng = np.random.default_rng(0)
    kept, flushed = Adam(n, np.float32), Adam(n, np.float32)
    params_kept = rng.standard_normal(n, dtype=np.float32) * 0.05
    params_flushed = params_kept.copy()
    for step in range(2000):
        grads = rng.standard_normal(n, dtype=np.float32) * 1e-3 if step < 10 else np.zeros(n, np.float32)
        kept.step(params_kept, grads.copy(), 1e-3)
        flushed.step(params_flushed, grads, 1e-3)
        if step % 50 == 49:
            flushed.flush_denormals()
    denormal = (kept.u != 0) & (np.abs(kept.u) < TINY_NORMAL)
    assert denormal.all()  # every entry is stuck there
    assert np.count_nonzero(flushed.u) == 0
    assert np.array_equal(params_kept, params_flushed)


def test_train_parallel_false_gives_the_same_weights(idx_dir, tmp_path):
    """Through `mlp train`: a net of 300k parameters, so the optimizer's buffers are split."""
    weights = {}
    for switch in ("true", "false"):
        out = tmp_path / switch
        sets = [f"data.dir={idx_dir}", "model.hidden=[512,512]", f"train.parallel={switch}", "train.epochs=2"]
        result = mlp("train", "--config", TINY, "--out", out, *[a for s in sets for a in ("--set", s)])
        assert result.exit_code == 0, result.output
        weights[switch] = np.load(out / "weights.npz", allow_pickle=False)
    names = ("W1", "b1", "W2", "b2", "W3", "b3")
    assert sum(weights["true"][name].size for name in names) > parallel.MIN_SIZE
    for name in names:
        assert np.array_equal(weights["true"][name], weights["false"][name]), name


def test_importing_mlpcli_sets_openblas_thread_timeout_unless_the_user_did():
    code = "import os, mlpcli; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    unset = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    env["OPENBLAS_THREAD_TIMEOUT"] = "4"
    user = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert (unset.stdout.strip(), user.stdout.strip()) == ("16", "4")
