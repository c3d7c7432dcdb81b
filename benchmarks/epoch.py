"""How fast is an epoch of `mlp train`, against its bound and against PyTorch.

Each epoch timing runs in a process of its own, one after the other (never two at once, and
never mlpcli and PyTorch in one process), and prints every epoch's seconds:
- mlpcli: the training loop of `mlp train` (784-512-512-10 by default, batch 128, Adam,
  float32, no dropout, augmentation or validation), as configured (`train.parallel: true`,
  the optimizer's passes on two threads) and with `train.parallel: false`;
- PyTorch on the CPU with the same layers, batch, optimizer, data and threads, as users run
  it and with `torch.set_flush_denormal(True)` (skipped when torch is not importable;
  `pip install torch==2.13.0`).
An epoch's figure is the steady state: the median of every epoch but the first, which warms
caches up. This process adds the bound (the same epoch's matrix products alone, with NumPy's
float32 matmul), the cost of the default augmentation (alone, and as a share of the epoch),
the evaluation time of the test split and the peak resident memory of a real `mlp train`.
Compare ratios measured in one run, not absolute seconds across machines.

    python benchmarks/epoch.py --data /usr/share/datasets/fashion-mnist
    python benchmarks/epoch.py --data DIR --hidden 512,512 --hidden 1024,1024 --epochs 6 --runs 3
"""

import mlpcli  # noqa: F401  first of all: it sets OpenBLAS's thread timeout before NumPy loads OpenBLAS

# isort: split
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlpcli.augment import Augmenter
from mlpcli.config import AugmentConfig, DataConfig, TrainConfig
from mlpcli.data import N_CLASSES, Normalisation, load_split
from mlpcli.evaluate import evaluate
from mlpcli.nn.network import MLP
from mlpcli.train import Position, Trainer

ROOT = Path(__file__).resolve().parents[1]
KINDS = {  # what each child process times, as printed
    "mlpcli": "mlpcli",
    "mlpcli-1": "mlpcli, train.parallel false",
    "torch": "PyTorch",
    "torch-flushed": "PyTorch, denormals flushed",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="folder of the four IDX files (e.g. Fashion-MNIST)")
    parser.add_argument("--hidden", action="append", help="hidden widths, e.g. 512,512 (repeatable)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6, help="epochs each process times (at least 2)")
    parser.add_argument(
        "--runs", type=int, default=1, help="rounds of all the processes, one after the other"
    )
    parser.add_argument("--examples", type=int, default=None, help="use only this many training examples")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch's threads")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory run of mlp train")
    parser.add_argument("--child", choices=list(KINDS), help=argparse.SUPPRESS)  # one timing process
    return parser.parse_args()


def flops_per_example(sizes: list[int]) -> int:
    """2 × (2·Σ in·out + Σ in·out without the first layer): forward and dW of every layer,
    dX of all but the first; a multiply-add is 2 FLOPs."""
    products = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return 2 * (2 * sum(products) + sum(products[1:]))


def time_bound(sizes: list[int], n: int, batch: int, repeats: int) -> float:
    """Seconds of one epoch's matrix products alone, into preallocated outputs (median)."""
    rng = np.random.default_rng(0)
    shapes = list(zip(sizes[:-1], sizes[1:]))
    Ws = [rng.standard_normal((n_out, n_in), dtype=np.float32) for n_in, n_out in shapes]
    acts = [rng.standard_normal((batch, n_in), dtype=np.float32) for n_in, _ in shapes]  # inputs
    deltas = [rng.standard_normal((batch, n_out), dtype=np.float32) for _, n_out in shapes]
    outs = [np.empty((batch, n_out), dtype=np.float32) for _, n_out in shapes]  # Z of each layer
    back = [np.empty((batch, n_in), dtype=np.float32) for n_in, _ in shapes]  # Δ W of each layer
    grads = [np.empty_like(W) for W in Ws]
    n_batches = -(-n // batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n_batches):
            for l, W in enumerate(Ws):
                np.matmul(acts[l], W.T, out=outs[l])  # forward: Z = A Wᵀ
            for l in range(len(Ws) - 1, -1, -1):
                np.matmul(deltas[l].T, acts[l], out=grads[l])  # dW = Δᵀ A_prev
                if l > 0:
                    np.matmul(deltas[l], Ws[l], out=back[l])  # Δ W
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_mlpcli(sizes: list[int], train, norm, batch: int, epochs: int, parallel: bool) -> list[float]:
    """Seconds of each epoch of the Trainer's loop."""
    model = MLP(sizes, "relu", dropout=0.0)
    model.init(np.random.default_rng(0), "he")
    config = TrainConfig(batch_size=batch, optimizer="adam", lr=1e-3, epochs=epochs, parallel=parallel)
    trainer = Trainer(model, train, train, norm, config, np.random.default_rng(0))  # no validation is run
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.epoch(1e-3)
        times.append(time.perf_counter() - start)
        assert trainer.position.seen == len(train), "an epoch must see every example"
        trainer.position = Position()  # the next call starts a new epoch (fit does so after validating)
    return times


def time_torch(sizes: list[int], train, norm, batch: int, epochs: int, threads: int, flush: bool):
    """Seconds of each epoch of the same training in PyTorch."""
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush)
    torch.manual_seed(0)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X, y = torch.from_numpy(norm.apply(train.images)), torch.from_numpy(train.labels.astype(np.int64))
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            index = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(model(X[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def child(args: argparse.Namespace) -> None:
    """The timing process of one kind: prints each epoch's seconds as JSON."""
    full, norm = load_train(args)
    sizes = shape(args.hidden[0], full)
    if args.child.startswith("mlpcli"):
        times = time_mlpcli(sizes, full, norm, args.batch, args.epochs, parallel=args.child == "mlpcli")
    else:
        flush = args.child == "torch-flushed"
        times = time_torch(sizes, full, norm, args.batch, args.epochs, args.threads, flush)
    print(json.dumps(times))


def epoch_times(args: argparse.Namespace, kind: str, hidden: str) -> list[float]:
    """Run the timing process of `kind` on the shape `hidden` and return its epochs' seconds."""
    command = [sys.executable, __file__, "--child", kind, "--hidden", hidden, "--data", args.data]
    command += ["--batch", str(args.batch), "--epochs", str(args.epochs), "--threads", str(args.threads)]
    command += ["--examples", str(args.examples)] if args.examples else []
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.splitlines()[-1])


def steady(times: list[float]) -> float:
    """The steady-state epoch: the median of all epochs but the first."""
    return statistics.median(times[1:])


def time_augment(train, batch: int, repeats: int = 5) -> float:
    """Seconds the default augmentation takes over one epoch's batches (median): the same
    Augmenter the training loop calls on each uint8 batch."""
    augmenter = Augmenter(AugmentConfig(), train.image_shape, batch, np.random.default_rng(0))
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
        sets = [f"data.dir={data}", "data.source=idx", "train.epochs=1", f"model.hidden=[{hidden}]"]
        command = [sys.executable, "-c", REPORT_PEAK, "train", "--out", f"{out}/run"]
        command += ["--config", str(ROOT / "configs" / "fashion_mnist.yaml")]
        command += [arg for item in sets for arg in ("--set", item)]
        result = subprocess.run(command, check=True, capture_output=True, text=True)
    return int(result.stderr.split("VmHWM")[-1].split()[0]) / 1024  # kB


def load_train(args: argparse.Namespace):
    full = load_split(DataConfig(source="idx", dir=args.data), "train")
    if args.examples:
        full.images, full.labels = full.images[: args.examples], full.labels[: args.examples]
    return full, Normalisation.of(full.images)


def shape(hidden: str, data) -> list[int]:
    return [data.images.shape[1], *map(int, hidden.split(",")), N_CLASSES]


def main() -> None:
    args = parse_args()
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2: the first epoch only warms caches up")
    if args.child:
        child(args)
        return
    kinds = [kind for kind in KINDS if not (args.no_torch and kind.startswith("torch"))]
    if len(kinds) > 2:
        try:
            import torch  # noqa: F401  only to learn whether the references can run
        except ImportError:
            print("PyTorch is not importable: its columns are skipped (pip install torch==2.13.0)")
            kinds = kinds[:2]
    full, norm = load_train(args)
    test = load_split(DataConfig(source="idx", dir=args.data), "test")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" NumPy {np.__version__}, OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')};"
        f" {len(full)} examples, batch {args.batch}, Adam, float32, PyTorch threads {args.threads}"
    )
    rows, extras = [], []
    for hidden in args.hidden or ["512,512"]:
        sizes = shape(hidden, full)
        runs = [time_run(args, kinds, hidden, sizes, run, len(full)) for run in range(1, args.runs + 1)]
        rows += [speed_row(sizes, str(run), seconds, len(full)) for run, seconds in enumerate(runs, 1)]
        if len(runs) > 1:
            medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            rows.append(speed_row(sizes, "median", medians, len(full)))
        extras.append(cost_row(args, sizes, hidden, full, test, norm, runs[-1]["mlpcli"]))
    columns = ["shape", "run", "epoch s", "parallel off s", "bound s", "GFLOP/s", "×bound"]
    print_table(columns + ["torch s", "torch flushed s", "speed-up"], rows)
    print_table(["shape", "augment s", "augment %", "eval s", "peak MB"], extras)


def time_run(args, kinds: list[str], hidden: str, sizes: list[int], run: int, n: int) -> dict[str, float]:
    """One round: each kind's steady epoch, a process each, its epochs printed; and the bound."""
    seconds = {}
    for kind in kinds:
        times = epoch_times(args, kind, hidden)
        seconds[kind] = steady(times)
        each = " ".join(f"{t:.3f}" for t in times)
        name = "-".join(map(str, sizes))
        print(f"{name} run {run} {KINDS[kind]:<28} {each}  steady {seconds[kind]:.3f}", flush=True)
    seconds["bound"] = time_bound(sizes, n, args.batch, repeats=3)
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
    augment = time_augment(full, args.batch)
    peak = "-" if args.no_memory else f"{peak_memory_of_mlp_train(args.data, hidden):.0f}"
    cells = ["-".join(map(str, sizes)), f"{augment:.3f}", f"{100 * augment / epoch:.1f}"]
    return cells + [f"{time_eval(model, test, norm):.3f}", peak]


def print_table(columns: list[str], rows: list[list[str]]) -> None:
    print()
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
