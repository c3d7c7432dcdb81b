"""mlp serve under load: CLIENTS concurrent clients post 280×280 PNG drawings (real MNIST test
digits, enlarged, dark on white as the page's pad draws them) to /api/predict (or the backprop
panel's /api/backprop or /api/step, for label 1, a session a client; `copy`: /api/backprop on
the session's copy, as the page asks after a step) for SECONDS, over
kept-alive connections; prints answers a second and latency percentiles. The server is
`mlp serve RUN` in its own process; the clients share the machine with it (2 cores here).

    python benchmarks/serve.py runs/mnist --clients 16 --seconds 20
    python benchmarks/serve.py runs/mnist --fresh --workers 1     a connection a request, one process
    python benchmarks/serve.py runs/mnist --clients 1 --endpoint backprop    one learner's latency
"""

import argparse
import http.client
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

from mlpcli.data import DataConfig, load_split

ENDPOINTS = {
    "predict": "/api/predict",
    "backprop": "/api/backprop?label=1",
    "step": "/api/step?label=1&lr=0.0001&session={session}",
    "copy": "/api/backprop?label=1&session={session}",  # after a step: the session's copy answers
}


def drawings(n: int) -> list[bytes]:
    """`n` test digits as 280×280 PNGs: 200 pixels tall, dark ink on white."""
    test = load_split(DataConfig(source="shipped"), "test")
    bodies = []
    for digit in test.images[:n].reshape(-1, 28, 28):
        pad = Image.new("L", (280, 280), 255)
        pad.paste(Image.fromarray(255 - digit).resize((200, 200), Image.Resampling.BICUBIC), (40, 40))
        buffer = io.BytesIO()
        pad.save(buffer, format="PNG")
        bodies.append(buffer.getvalue())
    return bodies


def start_server(run: str, workers: int | None) -> tuple[subprocess.Popen, str, int]:
    command = [
        sys.executable,
        "-c",
        "from mlpcli.cli import entry_point; entry_point()",
        "serve",
        run,
        "--port",
        "0",
        *(["--workers", str(workers)] if workers else []),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().split(" at ")[1].split()[0]
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    return server, host, int(port)


def connect(host: str, port: int) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers do
    return connection


def client(
    host: str, port: int, bodies: list[bytes], until: float, results: tuple, fresh: bool, path: str
) -> None:
    """Post `bodies` in turn to `path` until `until`, on one kept-alive connection (`fresh`: a
    new one for each request), appending each latency to results' list of successes or errors."""
    connection, i = connect(host, port), 0
    while time.perf_counter() < until:
        start = time.perf_counter()
        connection.request("POST", path, body=bodies[i % len(bodies)])
        response = connection.getresponse()
        response.read()
        results[response.status != 200].append(time.perf_counter() - start)
        i += 1
        if fresh:
            connection.close()
            connection = connect(host, port)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a run directory (or a folder of runs) for mlp serve")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--fresh", action="store_true", help="a new connection for each request")
    parser.add_argument("--workers", type=int, help="mlp serve's --workers (default: its own)")
    parser.add_argument("--endpoint", choices=list(ENDPOINTS), default="predict")
    args = parser.parse_args()
    bodies = drawings(200)
    server, host, port = start_server(args.run, args.workers)
    try:
        sessions = [f"bench-client-{n}" for n in range(args.clients)]
        for session in sessions:  # warm: the model loads (and each session's copy is made)
            path = ENDPOINTS["step"].format(session=session)
            client(host, port, bodies, time.perf_counter() + 2 / len(sessions), ([], []), False, path)
        paths = [ENDPOINTS[args.endpoint].format(session=session) for session in sessions]
        latencies, errors = [], []
        until = time.perf_counter() + args.seconds
        threads = [
            threading.Thread(
                target=client, args=(host, port, bodies, until, (latencies, errors), args.fresh, path)
            )
            for path in paths
        ]
        started, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        server.terminate()
        server.wait()
    ms = np.array(latencies) * 1000
    machine = platform.processor() or platform.machine()
    versions = f"Python {platform.python_version()}, NumPy {np.__version__}"
    print(
        f"{machine}, {versions}; {args.clients} clients"
        + (", a connection per request" if args.fresh else ", kept-alive connections")
    )
    print(
        f"{len(latencies) / elapsed:.0f} answers/s ({args.endpoint}) over {elapsed:.1f} s"
        f" ({len(errors)} errors);"
        f" latency p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms,"
        f" p99 {np.percentile(ms, 99):.1f} ms, mean {statistics.fmean(ms):.1f} ms;"
        f" PNG {statistics.fmean(map(len, bodies)) / 1024:.1f} KiB"
    )
    print(f"the clients themselves used {cpu / elapsed:.2f} of the {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
