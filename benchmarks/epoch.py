"""How fast is an epoch of `mlp train`, against the two references of issue 4, in one process:

- the bound: the same epoch's matrix products alone (forward, dW of every layer, dX of all
  but the first), timed with NumPy's float32 matmul on the model's layer shapes;
- PyTorch on the CPU: the same layers, batch size, Adam, data and number of threads
  (skipped when torch is not importable; `pip install torch==2.13.0`).

Also the cost of the default data augmentation (`data.augment`) over an epoch's batches, alone
and as a share of the epoch above (which is timed without it, to compare with PyTorch), the
evaluation time of the test split and the peak resident memory of a real `mlp train` run (a
child process). Timings are medians over several epochs; compare ratios measured in one run,
not absolute seconds across machines.

    python benchmarks/epoch.py --data /usr/share/datasets/fashion-mnist
    python benchmarks/epoch.py --data DIR --hidden 512,512 --hidden 1024,1024 --epochs 5
"""

import argparse
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="folder of the four IDX files (e.g. Fashion-MNIST)")
    parser.add_argument("--hidden", action="append", help="hidden widths, e.g. 512,512 (repeatable)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5, help="epochs timed per shape (the median is shown)")
    parser.add_argument("--examples", type=int, default=None, help="use only this many training examples")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory run of mlp train")
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


def time_mlpcli(sizes: list[int], train, norm, batch: int, epochs: int) -> tuple[float, MLP]:
    model = MLP(sizes, "relu", dropout=0.0)
    model.init(np.random.default_rng(0), "he")
    config = TrainConfig(batch_size=batch, optimizer="adam", lr=1e-3, epochs=epochs)
    trainer = Trainer(model, train, train, norm, config, np.random.default_rng(0))  # no validation is run
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.epoch(1e-3)
        times.append(time.perf_counter() - start)
        assert trainer.position.seen == len(train), "an epoch must see every example"
        trainer.position = Position()  # the next call starts a new epoch (fit does so after validating)
    return statistics.median(times[1:] or times), model  # the first epoch warms caches up


def time_torch(sizes: list[int], train, norm, batch: int, epochs: int, threads: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
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
    return statistics.median(times[1:] or times)


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


def main() -> None:
    args = parse_args()
    data = DataConfig(source="idx", dir=args.data)
    full, test = load_split(data, "train"), load_split(data, "test")
    if args.examples:
        full.images, full.labels = full.images[: args.examples], full.labels[: args.examples]
    norm = Normalisation.of(full.images)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" NumPy {np.__version__}; {len(full)} examples, batch {args.batch}, Adam, float32,"
        f" {args.threads} threads"
    )
    columns = ["shape", "epoch s", "bound s", "GFLOP/s", "×bound", "torch s", "speed-up"]
    columns += ["augment s", "augment %", "eval s", "peak MB"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    augment = time_augment(full, args.batch)  # the same for every shape
    for hidden in args.hidden or ["512,512"]:
        print("| " + " | ".join(measure(args, full, test, norm, hidden, augment)) + " |")


def measure(args, full, test, norm, hidden: str, augment: float) -> list[str]:
    """One row of the table: the shape with hidden widths `hidden`."""
    sizes = [full.images.shape[1], *map(int, hidden.split(",")), N_CLASSES]
    epoch, model = time_mlpcli(sizes, full, norm, args.batch, args.epochs)
    bound = time_bound(sizes, len(full), args.batch, repeats=3)
    rate = flops_per_example(sizes) * len(full) / bound / 1e9
    reference = (
        None if args.no_torch else time_torch(sizes, full, norm, args.batch, args.epochs, args.threads)
    )
    torch_cells = ["skipped", "-"] if reference is None else [f"{reference:.3f}", f"{reference / epoch:.2f}"]
    peak = "-" if args.no_memory else f"{peak_memory_of_mlp_train(args.data, hidden):.0f}"
    shape = "-".join(map(str, sizes))
    cells = [shape, f"{epoch:.3f}", f"{bound:.3f}", f"{rate:.1f}", f"{epoch / bound:.2f}", *torch_cells]
    cells += [f"{augment:.3f}", f"{100 * augment / epoch:.1f}"]
    return cells + [f"{time_eval(model, test, norm):.3f}", peak]


if __name__ == "__main__":
    main()
