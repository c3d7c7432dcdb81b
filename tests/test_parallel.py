"""Elementwise work on two threads (mlpcli.parallel): the same bits as one thread, every
element done once, both threads at work, errors brought back, and the switch that turns it
off; and the flush of denormal momenta (optim.flush_denormals)."""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from conftest import TINY, mlp

import mlpcli.train
from mlpcli import optim, parallel
from mlpcli.optim import SGD, Adam, flush_denormals

TINY_NORMAL = np.finfo(np.float32).tiny  # the smallest normal float32


def optimizers(n: int, parallel: bool):
    return [
        Adam(n, np.float32, parallel=parallel),
        SGD(n, np.float32, momentum=0.9, nesterov=True, parallel=parallel),
        SGD(n, np.float32, parallel=parallel),
    ]


@pytest.mark.parametrize(
    ("n", "min_size"),
    [
        (7, 1),  # shorter than the parts' alignment: empty parts, split all the same
        (4 * parallel.ALIGN + 3, 1),
        (parallel.MIN_SIZE + 13, parallel.MIN_SIZE),
        (3 * parallel.MIN_SIZE + 1, parallel.MIN_SIZE),
    ],
)
def test_two_threads_give_the_bits_of_one(n, min_size, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_SIZE", min_size)  # the split path, whatever the length
    lengths, adam = [], optim._adam
    monkeypatch.setattr(optim, "_adam", lambda *args: (lengths.append(len(args[4])), adam(*args)))
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
    parts = lengths[1 : 1 + parallel.PARTS]
    assert lengths == [n, *parts] * 5 and sum(parts) == n  # each step: Adam whole, then in its parts


def on_both_threads(job):
    """`job`, changed so that the first part each thread takes waits for the other thread's
    first part: the call fails (a broken barrier) unless both threads take a part."""
    threads, both_started = set(), threading.Barrier(2, timeout=30)

    def wrapped(*parts):
        if threading.get_ident() not in threads:
            threads.add(threading.get_ident())
            both_started.wait()
        job(*parts)

    return wrapped, threads


def test_every_element_is_done_once_and_by_both_threads():
    n = 4 * parallel.MIN_SIZE + 5
    counts = np.zeros(n, dtype=np.int64)
    count, threads = on_both_threads(lambda part: np.add(part, 1, out=part))
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


@pytest.mark.parametrize("failing", ["caller", "worker"])
def test_an_error_on_either_thread_reaches_the_caller_and_the_worker_stays_usable(failing):
    caller = threading.get_ident()

    def fail(part):
        if (threading.get_ident() == caller) == (failing == "caller"):
            raise ValueError(f"the {failing}'s part")

    job, _ = on_both_threads(fail)
    with pytest.raises(ValueError, match=f"the {failing}'s part"):
        parallel.in_parts(job, np.zeros(4 * parallel.MIN_SIZE))
    buffer = np.zeros(4 * parallel.MIN_SIZE)
    parallel.in_parts(lambda part: np.add(part, 1, out=part), buffer)
    assert np.array_equal(buffer, np.ones(len(buffer)))


def test_the_worker_follows_the_callers_floating_point_error_handling():
    """np.errstate is per thread: the training loop's `over="ignore"` must reach the worker."""
    square, _ = on_both_threads(lambda part: np.multiply(part, part, out=part))  # 1e30² overflows
    huge = np.full(4 * parallel.MIN_SIZE, 1e30, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from either thread would raise
        with np.errstate(over="ignore"):
            parallel.in_parts(square, huge)
    assert np.isinf(huge).all()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="Windows has no interval timer")
def test_an_interrupt_while_waiting_is_raised_once_the_job_is_done():
    """Ctrl-C during wait() must not leave the worker writing the buffers while the caller goes
    on, nor its 'done' in the queue for the next wait()."""
    worker, finished = parallel.Worker(), []

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    worker.start(lambda: (time.sleep(0.5), finished.append("slow")))
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(KeyboardInterrupt):
            worker.wait()
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert finished == ["slow"]
    worker.start(lambda: (time.sleep(0.2), finished.append("next")))
    worker.wait()
    assert finished == ["slow", "next"]


def test_each_optimizer_flushes_the_weights_and_its_own_momenta(monkeypatch):
    """The weights, and Adam's u and w or SGD's velocity; plain SGD has no momentum."""
    flushed, params = [], np.zeros(10, np.float32)
    monkeypatch.setattr(optim, "flush_denormals", lambda buffer: flushed.append(buffer))
    adam, sgd, plain = optimizers(10, parallel=False)
    for optimizer in (adam, sgd, plain):
        optimizer.flush_denormals(params)
    assert [id(b) for b in flushed] == [
        id(params),
        id(adam.u),
        id(adam.w),
        id(params),
        id(sgd.velocity),
        id(params),
    ]


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
            flushed.flush_denormals(params_flushed)
    denormal = (kept.u != 0) & (np.abs(kept.u) < TINY_NORMAL)
    assert denormal.all()  # every entry is stuck there
    assert np.count_nonzero(flushed.u) == 0
    assert np.array_equal(params_kept, params_flushed)


def test_weight_decay_drives_a_dead_units_weights_into_the_denormals_and_the_flush_clears_them():
    """With no gradient from the data, only weight decay's λW, Adam pulls the weights to 0 and
    they end denormal (where an Intel CPU's matrix products run 100× slower); flushed every 10
    steps, as training does, none are left."""
    n, rng = 1000, np.random.default_rng(0)
    for flush in (False, True):
        adam, params = Adam(n, np.float32), rng.standard_normal(n, dtype=np.float32) * 0.05
        for step in range(3000):
            adam.step(params, np.float32(1e-4) * params, 1e-3)  # ∂/∂W (λ/2)‖W‖² = λW
            if flush and step % 10 == 9:
                adam.flush_denormals(params)
        denormal = np.count_nonzero((params != 0) & (np.abs(params) < TINY_NORMAL))
        assert denormal == 0 if flush else denormal > 900


def test_train_parallel_false_gives_the_same_weights(idx_dir, tmp_path, monkeypatch):
    """Through `mlp train`: a net of 300k parameters, so the optimizer's buffers are split
    (and split even on a machine of one core: `available` is made to say yes)."""
    monkeypatch.setattr(mlpcli.train, "available", lambda: True)
    adam, threads = optim._adam, {"true": set(), "false": set()}
    weights = {}
    for switch in ("true", "false"):
        monkeypatch.setattr(
            optim, "_adam", lambda *args, s=switch: (threads[s].add(threading.get_ident()), adam(*args))
        )
        out = tmp_path / switch
        sets = [f"data.dir={idx_dir}", "model.hidden=[512,512]", f"train.parallel={switch}", "train.epochs=2"]
        result = mlp("train", "--config", TINY, "--out", out, *[a for s in sets for a in ("--set", s)])
        assert result.exit_code == 0, result.output
        weights[switch] = np.load(out / "weights.npz", allow_pickle=False)
    assert (len(threads["true"]), len(threads["false"])) == (2, 1)
    names = ("W1", "b1", "W2", "b2", "W3", "b3")
    assert sum(weights["true"][name].size for name in names) > parallel.MIN_SIZE
    for name in names:
        assert np.array_equal(weights["true"][name], weights["false"][name]), name


def test_mlp_sets_openblas_thread_timeout_unless_the_user_did_and_importing_mlpcli_does_not():
    """Set before NumPy is imported (OpenBLAS reads it when NumPy loads it), or it does nothing;
    by the mlp process, not by a program that imports mlpcli (its environment is its own)."""
    code = (
        "import os, sys, mlpcli.cli as cli; imported = os.environ.get('OPENBLAS_THREAD_TIMEOUT');"
        " cli.main = lambda: print(imported, os.environ['OPENBLAS_THREAD_TIMEOUT'], 'numpy' in sys.modules);"
        " cli.entry_point()"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    unset = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    env["OPENBLAS_THREAD_TIMEOUT"] = "4"
    user = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert (unset.stdout.split(), user.stdout.split()) == (["None", "16", "False"], ["4", "4", "False"])
