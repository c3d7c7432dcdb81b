"""`mlp serve`: a page to draw a digit on and watch the network answer, and why; and the JSON
API the page uses. Starlette, on uvicorn (the serve extra: from the clone, `pip install -e '.[serve]'`).

Why, from the network's own backward pass: for the answer k and the runner-up j, the margin
m = z_k - z_j (the logits: how far k is ahead) has δ^L = ∂m/∂z^L = e_k - e_j, and the delta
equations carried one layer further give ∂m/∂x: which pixels push towards k rather than j
(positive) and which away (negative). The margin, not log ŷ_k: a confident answer's softmax
saturates (ŷ_k = 1 in float32), and its gradient with it.

It serves only what it means to: its own three page files, the runs it lists (found under
one folder, or one run) and their SERVED_FILES. Bodies are capped at MAX_BODY bytes and images
at MAX_PIXELS, checked from the header before decoding. Nothing is written, nothing started.
"""

import errno
import io
import math
import os
import re
import socket
import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from mlpcli import artifacts, predict, runs
from mlpcli.data import CLASS_NAMES, one_hot
from mlpcli.errors import ImageError, ImageTooLarge, MlpError
from mlpcli.images import read_image, to_mnist
from mlpcli.nn.base import Network

MAX_BODY = 4 * 2**20  # bytes of a request body: a photo from a phone fits
MAX_PIXELS = 4000 * 3000  # of an image (a phone's photo), read from its header before decoding;
# one image is prepared at a time (make_app's limiter), so memory stays bounded: ~0.5 GB at the cap
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")  # Pillow's raster formats served
SERVED_FILES = (
    artifacts.CURVES,
    artifacts.CONFUSION,
    artifacts.MISTAKES,
    artifacts.CONFIG,
    artifacts.METRICS,
    artifacts.EVAL,
)  # what a listed run's files may be fetched of
PAGE = {  # the page's own files: path → (file in mlpcli/web, media type)
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
}


@dataclass
class Model:
    """A run's saved model, loaded once and shared by every request. Its network keeps a pass's
    activations and gradients in buffers it reuses (Network's buffer rules), so one request at
    a time runs it (`lock`), and what a request keeps of them it copies."""

    saved: artifacts.Saved
    lock: threading.Lock


class Catalogue:
    """The runs under `target` (a folder of runs, or one run), read afresh for each listing,
    and their models, each loaded once per weights file."""

    def __init__(self, target: Path):
        self.target = target
        self.models: dict[tuple[str, int], Model] = {}
        self.loading = threading.Lock()

    def listing(self) -> dict[str, runs.Run]:
        return {run.path.name: run for run in runs.find_runs(self.target)}

    def path(self, name: str) -> Path:
        """The listed run directory `name`, or a 404: a name is looked up, never joined to a path."""
        found = {path.name: path for path in runs.run_paths(self.target)}.get(name)
        if found is None:
            raise HTTPException(404, f"no run {name!r} here; GET /api/runs lists them")
        return found

    def run(self, name: str) -> runs.Run:
        return runs.read_run(self.path(name))

    def model(self, name: str | None) -> Model:
        """The model of run `name`; None: of the run with the best test accuracy among those
        whose weights take 28×28 images."""
        if name is not None:
            return self._loaded(self.path(name))
        ready = [path for path in runs.run_paths(self.target) if (path / artifacts.WEIGHTS).exists()]
        for path in sorted(ready, key=lambda path: -_test_accuracy(path)):
            try:
                return self._loaded(path)
            except HTTPException:
                continue
        raise HTTPException(404, f"no run under {self.target} has weights for 28×28 images")

    def unservable(self, path: Path) -> str | None:
        """Why the run at `path` cannot answer for 28×28 images (no weights yet, weights of
        another input size), or None when it can."""
        try:
            self._loaded(path)
        except HTTPException as e:
            return e.detail
        return None

    def _loaded(self, path: Path) -> Model:
        try:
            key = (path.name, (path / artifacts.WEIGHTS).stat().st_mtime_ns)
        except FileNotFoundError:
            raise HTTPException(409, f"run {path.name!r} has no weights yet") from None
        with self.loading:
            if key not in self.models:
                try:
                    loaded = Model(predict.load_model(path), threading.Lock())
                except MlpError as e:
                    raise HTTPException(409, str(e)) from None
                self.models = {k: m for k, m in self.models.items() if k[0] != key[0]}  # older weights
                self.models[key] = loaded
            return self.models[key]


def _test_accuracy(path: Path) -> float:
    try:
        return float(artifacts.read_metrics(path).get("test_accuracy") or 0)
    except (ValueError, TypeError):  # a value that is no number
        return 0.0


def explain(model: Model, pixels: np.ndarray, top: int) -> dict:
    """What the network answers for the 28×28 `pixels`, and why: the `top` classes, the
    gradient of the answer's margin over the runner-up with respect to each pixel (0–255),
    and the hidden layers' activations."""
    saved = model.saved
    network, names = saved.model, CLASS_NAMES[saved.dataset]
    X = saved.norm.apply(pixels.reshape(1, -1))
    with model.lock:
        Z = network.forward(X)
        scores = network.output.scores(Z)[0]
        layers = hidden_layers(network)
        order = np.argsort(-scores, kind="stable")  # k = order[0], the runner-up j = order[1]
        delta = one_hot(order[:1], len(scores), Z.dtype) - one_hot(order[1:2], len(scores), Z.dtype)
        grad_X = network.backward(delta, input_grad=True, param_grads=False)  # ∂m/∂x, δ^L = e_k - e_j
        gradient = grad_X[0] / saved.norm.std  # ∂m/∂pixel, as x = (pixel - mean) / std; a copy:
        # grad_X is the model's buffer, which the next request writes
    ranked = [(int(c), names[c], float(scores[c])) for c in order[:top]]
    found = predict.Prediction("", ranked, score_name=network.output.score_name)
    return {
        "predictions": found.to_dict()["predictions"],
        "input": pixels.tolist(),
        "gradient": gradient.reshape(pixels.shape).tolist(),
        "runner_up": {"class": int(order[1]), "name": names[order[1]]},
        **layers,
        "dataset": saved.dataset,
    }


def hidden_layers(network: Network) -> dict:
    """What the page draws of the last forward pass (one input): each hidden layer's
    activations and its name; an RNN's are its last state h^(T), the one read out, and
    `states`, its hidden state after each row, h^(1…T) (null for an MLP)."""
    activations, names, states = network.hidden_outputs_shown()
    states = None if states is None else [state.tolist() for state in states]
    return {"activations": [a.tolist() for a in activations], "layer_names": names, "states": states}


async def capped_body(request: Request) -> bytes:
    """The request's body, or a 413 as soon as it passes MAX_BODY (by its declared length, or
    as it arrives)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, f"the body is larger than {MAX_BODY:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, f"the body is larger than {MAX_BODY:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def prepared(body: bytes) -> np.ndarray:
    """The image in `body` as the 28×28 input mlp predict would give the network."""
    if not body:
        raise HTTPException(400, "send the image file as the request body (PNG or JPEG)")
    try:
        grey = read_image(io.BytesIO(body), "the image", MAX_PIXELS, FORMATS)
        return to_mnist(grey, "the image")
    except ImageTooLarge as e:
        raise HTTPException(413, str(e)) from None
    except ImageError as e:
        raise HTTPException(422, str(e)) from None


def make_app(target: Path, hosts: list[str] | None = None) -> Starlette:
    """The app over the runs under `target`; `hosts`: the Host headers it answers (None: any),
    so that a page elsewhere cannot reach a loopback server through DNS rebinding."""
    catalogue = Catalogue(target.resolve())  # resolved: `mlp serve .` inside a run names it
    # one prediction at a time, beside the event loop: the work holds Python's lock (the GIL)
    # nearly throughout, and more threads only contend for it (benchmarks/serve.py)
    workers = anyio.CapacityLimiter(1)

    async def page(request: Request) -> Response:
        name, media_type = PAGE[request.url.path]
        return Response(files("mlpcli").joinpath("web", name).read_bytes(), media_type=media_type)

    def described() -> list[dict]:
        return [
            describe(run) | {"unservable": catalogue.unservable(run.path)}
            for run in catalogue.listing().values()
        ]

    async def list_runs(request: Request) -> JSONResponse:
        return JSONResponse(finite({"runs": await run_in_threadpool(described)}))

    async def one_run(request: Request) -> JSONResponse:
        run = await run_in_threadpool(catalogue.run, request.path_params["name"])
        config = run.path / artifacts.CONFIG
        text = config.read_text(encoding="utf-8", errors="replace") if config.exists() else None
        return JSONResponse(finite(describe(run) | {"config": text, "metrics": run.metrics}))

    async def run_file(request: Request) -> Response:
        name, file = request.path_params["name"], request.path_params["file"]
        path = await run_in_threadpool(catalogue.path, name)
        if file not in SERVED_FILES or not (path / file).is_file():
            raise HTTPException(404, f"run {name!r} has no file {file!r} to serve")
        return FileResponse(path / file)

    async def predict_image(request: Request) -> JSONResponse:
        top = request.query_params.get("top", "3")
        if not re.fullmatch("[0-9]{1,2}", top) or not 1 <= int(top) <= 10:
            raise HTTPException(400, "top must be a whole number from 1 to 10")
        body = await capped_body(request)
        run = request.query_params.get("run")
        return JSONResponse(await anyio.to_thread.run_sync(answer, body, run, int(top), limiter=workers))

    def answer(body: bytes, run: str | None, top: int) -> dict:
        pixels = prepared(body)  # first: a bad body is the client's fault, whatever the run
        return explain(catalogue.model(run), pixels, top)

    async def error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, exc.status_code)

    routes = [Route(path, page) for path in PAGE] + [
        Route("/api/runs", list_runs),
        Route("/api/runs/{name}", one_run),
        Route("/api/runs/{name}/{file}", run_file),
        Route("/api/predict", predict_image, methods=["POST"]),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)] if hosts else []
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: error})


def finite(value: object) -> object:
    """`value` with every NaN or infinity in it as None: JSON has no such numbers (a diverged
    run's metrics may hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def describe(run: runs.Run) -> dict:
    """A run as `mlp runs` lists it, with its class names and the files it can serve."""
    row = run.cells([])
    return row | {
        "classes": CLASS_NAMES.get(str(row["dataset"]), CLASS_NAMES["mnist"]),
        "files": [name for name in SERVED_FILES if (run.path / name).is_file()],
    }


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on (host, port) (port 0: any free one), or an MlpError that says why.
    Listening before the URL is printed: a client that comes at once waits, never refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # inherited by each connection: uvicorn sets no TCP_NODELAY on sockets it is handed, and
    # Nagle's algorithm then holds each response's body until the client's delayed ACK (40 ms)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if os.name != "nt":  # a restart may bind while old connections wait (Windows: it means more)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        hint = ": choose another with --port" if e.errno == errno.EADDRINUSE else ""
        raise MlpError(f"cannot listen on {host}:{port} ({e.strerror or e}){hint}") from None
    return sock


def serve(target: Path, sock: socket.socket, host: str) -> None:
    """Serve `target`'s runs on the bound `sock` until Ctrl-C; on a loopback `host`, only to
    requests that name a loopback host."""
    import uvicorn

    hosts = ["127.0.0.1", "localhost", "::1", "[::1]"] if host in LOOPBACK else None
    config = uvicorn.Config(make_app(target, hosts), log_level="warning", limit_concurrency=LIMIT)
    uvicorn.Server(config).run(sockets=[sock])


LIMIT = 256  # connections at once, beyond which uvicorn answers 503
