"""How fast is an epoch of `mlp train`, against its bound and against PyTorch.

Each kind of epoch runs in a process of its own (never mlpcli and PyTorch in one process),
and the processes take turns, an epoch at a time, so that two never run at once and a host
that slows down for a while slows every kind alike. Every epoch's seconds are printed:
- mlpcli: the training loop of `mlp train` (784-512-512-10 by default, batch 128, Adam,
  float32, no dropout, augmentation or validation), as configured (`train.parallel: true`,
  the optimizer's passes on two threads) and with `train.parallel: false`;
- PyTorch on the CPU with the same layers, batch, optimizer, data and threads, as users run
  it and with `torch.set_flush_denormal(True)` (skipped when torch is not importable;
  `pip install torch==2.13.0`).
With `--model rnn` the shape is the RNN of configs/mnist_rnn.yaml instead (`--hidden` its
units): mlpcli's RNN (the image's 28 rows as time steps, tanh, its last state into 10 outputs,
the gradient clipped at norm 1) beside `torch.nn.RNN` with a `Linear` on its last state and
`clip_grad_norm_` at 1; the bound and the costs of the MLP are left out.
An epoch's figure is the steady state: the median of every epoch but the first, which warms
caches up. This process adds the bound (the same epoch's matrix products alone, with NumPy's
float32 matmul), the cost of the default augmentation and of elastic distortions (α 36, σ 6:
docs/tuning.md), each alone and as a share of the epoch, the evaluation time of the test split
and the peak resident memory of a real `mlp train`.
Compare ratios measured in one run, not absolute seconds across machines.

    python benchmarks/epoch.py --data /usr/share/datasets/fashion-mnist
    python benchmarks/epoch.py --data DIR --hidden 512,512 --hidden 1024,1024 --epochs 6 --runs 3
    python benchmarks/epoch.py --data mlpcli/datasets/mnist --model rnn --hidden 128 --runs 3
"""

from mlpcli.cli import quiet_openblas

quiet_openblas()  # first of all, as mlp does: before NumPy loads OpenBLAS

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlpcli.augment import Augmenter
from mlpcli.config import AugmentConfig, DataConfig, ElasticConfig, TrainConfig
from mlpcli.data import N_CLASSES, Normalisation, load_split
from mlpcli.evaluate import evaluate
from mlpcli.nn.mlp import MLP
from mlpcli.nn.rnn import RNN
from mlpcli.train import Position, Trainer

ROOT = Path(__file__).resolve().parents[1]
ELASTIC = ElasticConfig(alpha=36.0, sigma=6.0)  # the long config's distortions
RNN_CLIP = 1.0  # the gradient's norm is clipped at this, as configs/mnist_rnn.yaml does
KINDS = {  # what each child process times, as printed
    "bound": "bound: the matrix products",
    "mlpcli": "mlpcli",
    "mlpcli-1": "mlpcli, train.parallel false",
    "torch": "PyTorch",
    "torch-flushed": "PyTorch, denormals flushed",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        required=True,
        help="folder of the four IDX files (e.g. Fashion-MNIST)",
    )
    parser.add_argument("--model", choices=["mlp", "rnn"], default="mlp", help="the kind of network")
    parser.add_argument(
        "--hidden", action="append", help="hidden widths, e.g. 512,512; rnn: its units (repeatable)"
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6, help="epochs each process times (at least 2)")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="rounds of all the processes, one after the other",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=None,
        help="use only this many training examples",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch's threads")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the peak-memory run of mlp train (Linux only)"
    )
    parser.add_argument("--child", choices=list(KINDS), help=argparse.SUPPRESS)  # one timing process
    return parser.parse_args()


def flops_per_example(sizes: list[int]) -> int:
    """2 × (2·Σ in·out + Σ in·out without the first layer): forward and dW of every layer,
    dX of all but the first; a multiply-add is 2 FLOPs."""
    products = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return 2 * (2 * sum(products) + sum(products[1:]))


def bound_epoch(sizes: list[int], n: int, batch: int) -> Callable[[], float]:
    """A function that times one epoch's matrix products alone, into preallocated outputs."""
    rng = np.random.default_rng(0)
    shapes = list(zip(sizes[:-1], sizes[1:]))
    Ws = [rng.standard_normal((n_out, n_in), dtype=np.float32) for n_in, n_out in shapes]
    acts = [rng.standard_normal((batch, n_in), dtype=np.float32) for n_in, _ in shapes]  # inputs
    deltas = [rng.standard_normal((batch, n_out), dtype=np.float32) for _, n_out in shapes]
    outs = [np.empty((batch, n_out), dtype=np.float32) for _, n_out in shapes]  # Z of each layer
    back = [np.empty((batch, n_in), dtype=np.float32) for n_in, _ in shapes]  # Δ W of each layer
    grads = [np.empty_like(W) for W in Ws]
    n_batches = -(-n // batch)

    def epoch() -> float:
        start = time.perf_counter()
        for _ in range(n_batches):
            for l, W in enumerate(Ws):
                np.matmul(acts[l], W.T, out=outs[l])  # forward: Z = A Wᵀ
            for l in range(len(Ws) - 1, -1, -1):
                np.matmul(deltas[l].T, acts[l], out=grads[l])  # dW = Δᵀ A_prev
                if l > 0:
                    np.matmul(deltas[l], Ws[l], out=back[l])  # Δ W
        return time.perf_counter() - start

    return epoch


def mlpcli_epoch(sizes: list[int], train, norm, batch: int, parallel: bool, rnn: bool) -> Callable[[], float]:
    """A function that runs the next epoch of the Trainer's loop and returns its seconds."""
    if rnn:
        model = RNN(*train.image_shape, sizes[1], sizes[-1], "tanh")
        model.init(np.random.default_rng(0), "xavier", "orthogonal")
    else:
        model = MLP(sizes, "relu", dropout=0.0)
        model.init(np.random.default_rng(0), "he")
    clip = RNN_CLIP if rnn else 0.0
    config = TrainConfig(batch_size=batch, optimizer="adam", lr=1e-3, parallel=parallel, clip=clip)
    trainer = Trainer(model, train, train, norm, config, np.random.default_rng(0))  # no validation is run

    def epoch() -> float:
        start = time.perf_counter()
        trainer.epoch(1e-3)
        seconds = time.perf_counter() - start
        assert trainer.position.seen == len(train), "an epoch must see every example"
        trainer.position = Position()  # the next call starts a new epoch (fit does so after validating)
        return seconds

    return epoch


def torch_epoch(
    sizes: list[int], train, norm, batch: int, threads: int, flush: bool, rnn: bool
) -> Callable[[], float]:
    """The same for the same training in PyTorch."""
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush)
    torch.manual_seed(0)
    X, y = (
        torch.from_numpy(norm.apply(train.images)),
        torch.from_numpy(train.labels.astype(np.int64)),
    )
    if rnn:
        model = torch_rnn(torch, train.image_shape[1], sizes[1], sizes[-1])
        X = X.reshape(len(X), *train.image_shape)  # (N, T, D): the rows as time steps
    else:
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch() -> float:
        start = time.perf_counter()
        order = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            index = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(model(X[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            if rnn:
                torch.nn.utils.clip_grad_norm_(model.parameters(), RNN_CLIP)
            optimizer.step()
        return time.perf_counter() - start

    return epoch


def torch_rnn(torch, n_input: int, n_hidden: int, n_classes: int):
    """nn.RNN (tanh) whose last hidden state goes through a Linear layer: many-to-one."""

    class LastState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(n_input, n_hidden, nonlinearity="tanh", batch_first=True)
            self.out = torch.nn.Linear(n_hidden, n_classes)

        def forward(self, X):
            _, h_last = self.rnn(X)  # (1, B, H)
            return self.out(h_last[0])

    return LastState()


def child(args: argparse.Namespace) -> None:
    """A timing process of one kind. It waits for a line on stdin before its setup and before
    each epoch, and answers each with a line (an epoch's seconds), so that the parent lets
    one process work at a time."""
    sys.stdin.readline()
    full, norm = load_train(args)
    sizes = shape(args.hidden[0], full)
    rnn = args.model == "rnn"
    if args.child == "bound":
        epoch = bound_epoch(sizes, len(full), args.batch)
    elif args.child.startswith("mlpcli"):
        epoch = mlpcli_epoch(sizes, full, norm, args.batch, args.child == "mlpcli", rnn)
    else:
        flush = args.child == "torch-flushed"
        epoch = torch_epoch(sizes, full, norm, args.batch, args.threads, flush, rnn)
    print("ready", flush=True)
    for _ in sys.stdin:
        print(json.dumps(epoch()), flush=True)


def interleaved_epochs(args: argparse.Namespace, kinds: list[str], hidden: str) -> dict[str, list[float]]:
    """Each kind's epochs, a process per kind, the epochs taken in turn (epoch 1 of each kind,
    then epoch 2 of each, in a rotating order), one process working at a time: a host that
    slows down for a while slows every kind alike."""
    command = [
        sys.executable,
        __file__,
        "--hidden",
        hidden,
        "--data",
        args.data,
        "--batch",
        str(args.batch),
        "--model",
        args.model,
    ]
    command += ["--threads", str(args.threads)] + (
        ["--examples", str(args.examples)] if args.examples else []
    )
    processes = {
        kind: subprocess.Popen(
            [*command, "--child", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for kind in kinds
    }
    try:
        for process in processes.values():
            ask(process)  # its setup
        times = {kind: [] for kind in kinds}
        for epoch in range(args.epochs):
            turn = kinds[epoch % len(kinds) :] + kinds[: epoch % len(kinds)]
            for kind in turn:
                times[kind].append(float(ask(processes[kind])))
        return times
    finally:
        for process in processes.values():
            end(process)


def end(process: subprocess.Popen) -> None:
    """Close the process's input (it then ends by itself), and kill it if it has not ended soon."""
    try:
        process.stdin.close()
        process.wait(timeout=60)
    except (OSError, subprocess.TimeoutExpired):  # a broken pipe: it had died already; or it hangs
        process.kill()
        process.wait()


def ask(process: subprocess.Popen) -> str:
    """Let `process` do its next piece of work and return its answer."""
    process.stdin.write("go\n")
    process.stdin.flush()
    answer = process.stdout.readline()
    if not answer:
        raise RuntimeError(f"a timing process ended early (exit code {process.wait()})")
    return answer


def steady(times: list[float]) -> float:
    """The steady-state epoch: the median of all epochs but the first."""
    return statistics.median(times[1:])


def time_augment(train, batch: int, config: AugmentConfig, repeats: int = 5) -> float:
    """Seconds an augmentation takes over one epoch's batches (median): the same Augmenter
    the training loop calls on each uint8 batch."""
    augmenter = Augmenter(config, train.image_shape, batch, np.random.default_rng(0))
    order = np.random.default_rng(0).permutation(len(train))
    batches = [train.images[order[i : i + batch]] for i in range(0, len(order), batch)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for pixels in batches:
            augmenter(pixels)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_eval(model: MLP, test, norm: Normalisation) -> float:
    times = []
    for _ in range(7):
        start = time.perf_counter()
        evaluate(model, norm.apply(test.images), test.labels)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


REPORT_PEAK = """
import atexit, sys
def report():
    status = open("/proc/self/status").read()
    print("VmHWM", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
atexit.register(report)
from mlpcli.cli import main
main()
"""


def peak_memory_of_mlp_train(data: str, hidden: str) -> float:
    """Peak resident MB of one epoch of `mlp train` on `data`: a child process reports its own
    VmHWM (the fork's inherited high-water mark would count the benchmark's own memory)."""
    with tempfile.TemporaryDirectory() as out:
        sets = [
            f"data.dir={data}",
            "data.source=idx",
            "train.epochs=1",
            f"model.hidden=[{hidden}]",
        ]
        command = [sys.executable, "-c", REPORT_PEAK, "train", "--out", f"{out}/run"]
        command += ["--config", str(ROOT / "configs" / "fashion_mnist.yaml")]
        command += [arg for item in sets for arg in ("--set", item)]
        result = subprocess.run(command, check=True, capture_output=True, text=True)
    return int(result.stderr.split("VmHWM")[-1].split()[0]) / 1024  # kB


def load_train(args: argparse.Namespace):
    full = load_split(DataConfig(source="idx", dir=args.data), "train")
    if args.examples:
        full.images, full.labels = (
            full.images[: args.examples],
            full.labels[: args.examples],
        )
    return full, Normalisation.of(full.images)


def shape(hidden: str, data) -> list[int]:
    return [data.images.shape[1], *map(int, hidden.split(",")), N_CLASSES]


def has_torch() -> bool:
    """Whether PyTorch can be imported (asked of a child process: this one stays without it)."""
    found = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    if not found:
        print("PyTorch is not importable: its columns are skipped (pip install torch==2.13.0)")
    return found


def main() -> None:
    args = parse_args()
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2: the first epoch only warms caches up")
    if args.child:
        child(args)
        return
    with_torch = not args.no_torch and has_torch()
    kinds = [kind for kind in KINDS if with_torch or not kind.startswith("torch")]
    if args.model == "rnn":
        kinds.remove("bound")  # the bound is of an MLP's matrix products
    full, norm = load_train(args)
    test = load_split(DataConfig(source="idx", dir=args.data), "test")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" NumPy {np.__version__}, OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')};"
        f" {len(full)} examples, batch {args.batch}, Adam, float32, PyTorch threads {args.threads}"
    )
    if args.model == "rnn":
        rnn_speeds(args, kinds, full)
        return
    rows, extras = [], []
    for hidden in args.hidden or ["512,512"]:
        sizes = shape(hidden, full)
        runs = [time_run(args, kinds, hidden, sizes, run) for run in range(1, args.runs + 1)]
        rows += [speed_row(sizes, str(run), seconds, len(full)) for run, seconds in enumerate(runs, 1)]
        if len(runs) > 1:
            medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            rows.append(speed_row(sizes, "median", medians, len(full)))
        extras.append(cost_row(args, sizes, hidden, full, test, norm, runs[-1]["mlpcli"]))
    columns = ["shape", "run", "epoch s", "parallel off s", "bound s", "GFLOP/s", "×bound"]
    print_table(columns + ["torch s", "torch flushed s", "speed-up"], rows)
    columns = ["shape", "augment s", "augment %", "elastic s", "elastic %", "eval s", "peak MB"]
    print_table(columns, extras)


def rnn_speeds(args: argparse.Namespace, kinds: list[str], full) -> None:
    """The RNN's table: mlpcli's epoch (optimizer on two threads and on one) beside PyTorch's."""
    rows = []
    for hidden in args.hidden or ["128"]:
        sizes = shape(hidden, full)
        runs = [time_run(args, kinds, hidden, sizes, run) for run in range(1, args.runs + 1)]
        if len(runs) > 1:
            runs.append({key: statistics.median(run[key] for run in runs) for key in runs[0]})
        for run, seconds in enumerate(runs, 1):
            cells = [f"rnn 28×28-{hidden}-10", "median" if run > args.runs else str(run)]
            cells += [f"{seconds['mlpcli']:.3f}", f"{seconds['mlpcli-1']:.3f}"]
            if "torch" in seconds:
                flushed = seconds["torch-flushed"]
                cells += [f"{seconds['torch']:.3f}", f"{flushed:.3f}", f"{flushed / seconds['mlpcli']:.2f}"]
            rows.append(cells)
    columns = ["shape", "run", "epoch s", "parallel off s", "torch s", "torch flushed s", "speed-up"]
    print_table(columns[: len(rows[0])], rows)


def time_run(args, kinds: list[str], hidden: str, sizes: list[int], run: int) -> dict[str, float]:
    """One round: each kind's steady epoch (the bound's too), its epochs printed."""
    seconds = {}
    for kind, times in interleaved_epochs(args, kinds, hidden).items():
        seconds[kind] = steady(times)
        each = " ".join(f"{t:.3f}" for t in times)
        name = "-".join(map(str, sizes))
        print(f"{name} run {run} {KINDS[kind]:<28} {each}  steady {seconds[kind]:.3f}", flush=True)
    return seconds


def speed_row(sizes: list[int], run: str, seconds: dict[str, float], n: int) -> list[str]:
    """The speed table's row: mlpcli's epoch with the optimizer on two threads and on one,
    against the bound and against PyTorch (the speed-up is against PyTorch, denormals flushed)."""
    epoch, bound = seconds["mlpcli"], seconds["bound"]
    rate = flops_per_example(sizes) * n / bound / 1e9
    cells = ["-".join(map(str, sizes)), run, f"{epoch:.3f}", f"{seconds['mlpcli-1']:.3f}"]
    cells += [f"{bound:.3f}", f"{rate:.1f}", f"{epoch / bound:.2f}"]
    if "torch" not in seconds:
        return cells + ["skipped", "skipped", "-"]
    flushed = seconds["torch-flushed"]
    return cells + [f"{seconds['torch']:.3f}", f"{flushed:.3f}", f"{flushed / epoch:.2f}"]


def cost_row(args, sizes, hidden: str, full, test, norm: Normalisation, epoch: float) -> list[str]:
    """The second table's row: augmentation, evaluation and memory of the shape."""
    model = MLP(sizes, "relu")
    model.init(np.random.default_rng(0), "he")
    augment = time_augment(full, args.batch, AugmentConfig())
    elastic = time_augment(full, args.batch, AugmentConfig(shift=0, rotate=0, scale=0, elastic=ELASTIC))
    measured = not args.no_memory and Path("/proc/self/status").exists()  # Linux's VmHWM only
    peak = f"{peak_memory_of_mlp_train(args.data, hidden):.0f}" if measured else "-"
    cells = [
        "-".join(map(str, sizes)),
        f"{augment:.3f}",
        f"{100 * augment / epoch:.1f}",
        f"{elastic:.3f}",
        f"{100 * elastic / epoch:.1f}",
    ]
    return cells + [f"{time_eval(model, test, norm):.3f}", peak]


def print_table(columns: list[str], rows: list[list[str]]) -> None:
    print()
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
