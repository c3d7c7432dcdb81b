"""A run's network three ways, on 1 and on 10,000 real MNIST test digits: `mlp predict` (a process,
the images as PNG files, each prepared as a user's drawing is), mlpcli's forward pass from Python
(mlpcli.load_run(RUN).predict on the arrays), and the model `mlp export` writes, in onnxruntime.
Prints each one's time, the model's size, and that mlpcli and onnxruntime agree.

    python benchmarks/export.py runs/mnist
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

import mlpcli
from mlpcli.data import DataConfig, load_split

MLP = [sys.executable, "-c", "from mlpcli.cli import entry_point; entry_point()"]


def best_of(repeats: int, work) -> float:
    """The shortest of `repeats` timings of `work()`, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def predict_command(run: str, images: list[Path]) -> float:
    """Seconds of `mlp predict RUN IMAGES…` (one process), its output read and dropped."""
    start = time.perf_counter()
    subprocess.run([*MLP, "predict", run, *map(str, images), "--json"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a run directory (exported to a temporary folder)")
    args = parser.parse_args()
    test = load_split(DataConfig(source="shipped"), "test")
    pixels = test.images.reshape(-1, 28, 28).astype(np.float32)
    run = mlpcli.load_run(args.run)
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "model.onnx"
        subprocess.run([*MLP, "export", args.run, "--out", str(model)], check=True, capture_output=True)
        start = time.perf_counter()
        session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        loaded = time.perf_counter() - start
        files = []
        for i, digit in enumerate(test.images.reshape(-1, 28, 28)):
            files.append(Path(folder) / f"{i:05d}.png")
            Image.fromarray(digit).save(files[-1])
        ours = run.predict(test.images.reshape(-1, 28, 28))
        (theirs,) = session.run(["probabilities"], {"pixels": pixels})
        agree = np.array_equal(ours.argmax(1), theirs.argmax(1))
        machine = platform.processor() or platform.machine()
        print(f"{machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"{run}; model.onnx {model.stat().st_size / 2**20:.2f} MB, loaded in {loaded * 1000:.0f} ms")
        print(f"the two agree on all 10,000: {agree}; largest difference {np.abs(ours - theirs).max():.1e}")
        for n in (1, 10_000):
            batch = pixels[:n]
            timings = {
                "mlp predict (a process, PNG files)": predict_command(args.run, files[:n]),
                "mlpcli from Python, run.predict": best_of(5, lambda: run.predict(batch)),  # noqa: B023
                "onnxruntime, session.run": best_of(5, lambda: session.run(None, {"pixels": batch})),  # noqa: B023
            }
            print(f"\n{n:,} digit{'s' * (n > 1)}:")
            for what, seconds in timings.items():
                print(f"  {what:38} {seconds * 1000:9.2f} ms")


if __name__ == "__main__":
    main()
