"""Elementwise work on both cores: a job over flat buffers runs on PARTS fixed parts of them,
which the calling thread and one persistent worker thread take in turn until none is left.

NumPy releases the GIL inside its loops over large arrays, so the two threads truly run side
by side; taking parts in turn evens out a late start of either one. The parts depend only on
the length, and every element goes through the same operations whichever thread runs it, so
the results are bitwise those of one thread.
"""

import os
import queue
import threading
from collections.abc import Callable

import numpy as np

PARTS = 4
ALIGN = 16  # parts start on a multiple of 16 elements (64 bytes of float32)
MIN_SIZE = 1 << 18  # shorter buffers are done whole: handing parts over would cost more than it saves


class Worker:
    """One daemon thread that runs the jobs it is given, one at a time, until the process ends."""

    def __init__(self):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="mlpcli-worker", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                job()
                self.results.put(None)
            except BaseException as error:  # handed to the caller of wait()
                self.results.put(error)

    def start(self, job: Callable[[], None]) -> None:
        self.jobs.put(job)

    def wait(self) -> None:
        """Block until the job started last is done, even through an interrupt (which is raised
        once the job is done: the buffers are never left half-updated); raise what it raised."""
        interrupt = None
        while True:
            try:
                error = self.results.get()
                break
            except BaseException as raised:  # Ctrl-C, or a signal handler's exception
                interrupt = raised
        if interrupt is not None:
            raise interrupt
        if error is not None:
            raise error


_worker: Worker | None = None


def available() -> bool:
    """Whether this process may run on more than one core."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return len(cores) > 1


def in_parts(job: Callable[..., None], *buffers: np.ndarray, parallel: bool = True) -> None:
    """`job(*buffers)`, elementwise over equally long 1-D `buffers`: with `parallel`, as
    `job` on each of PARTS fixed parts of them, taken in turn by this thread and the worker."""
    n = len(buffers[0])
    if not parallel or n < MIN_SIZE:
        job(*buffers)
        return
    global _worker
    if _worker is None:
        _worker = Worker()
    bounds = [n * i // PARTS // ALIGN * ALIGN for i in range(PARTS)] + [n]
    parts = iter(range(PARTS))  # shared: each next() hands out one part to one thread
    errors = np.geterr()  # NumPy's floating-point error handling is per thread: the caller's

    def take_parts() -> None:
        with np.errstate(**errors):
            for i in parts:
                job(*(buffer[bounds[i] : bounds[i + 1]] for buffer in buffers))

    _worker.start(take_parts)
    try:
        take_parts()
    finally:
        _worker.wait()
