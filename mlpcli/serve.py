"""`mlp serve`: a page to draw a digit on and watch the network answer, and why; and the JSON
API the page uses. Starlette, on uvicorn (the serve extra: from the clone, `pip install -e '.[serve]'`).

Why, from the network's own backward pass: for the answer k and the runner-up j, the margin
m = z_k - z_j (the logits: how far k is ahead) has δ^L = ∂m/∂z^L = e_k - e_j, and the delta
equations carried one layer further give ∂m/∂x: which pixels push towards k rather than j
(positive) and which away (negative). The margin, not log ŷ_k: a confident answer's softmax
saturates (ŷ_k = 1 in float32), and its gradient with it. The backprop panel's endpoints
(`backprop_routes`) show the backward pass of the loss for a label the learner picks, and take
SGD steps on a copy of the network (mlpcli.backprop).

It serves only what it means to: its own three page files, the runs it lists (found under
one folder, or one run) and their SERVED_FILES, each a regular file of its run. Bodies are
capped at MAX_BODY bytes and images at MAX_PIXELS, checked from the header before decoding,
and decoding at DECODE_SECONDS; a client may hold no more than mlpcli.connections allows.
Nothing of the runs is written (the steps' copies go to a temporary folder of the server's
own), nothing started.
"""

import contextlib
import dataclasses
import errno
import functools
import io
import ipaddress
import json
import math
import os
import re
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlpcli import artifacts, backprop, output, predict, runs
from mlpcli.data import CLASS_NAMES, one_hot
from mlpcli.errors import CopyError, ImageError, ImageTooLarge, MlpError, RunFileError
from mlpcli.images import read_image, to_mnist
from mlpcli.nn.base import Network

if TYPE_CHECKING:
    import uvicorn

MAX_BODY = 32 * 2**20  # bytes of a request body: a phone's photo as it is taken fits
DRAINED = 4 * MAX_BODY  # bytes of a body over the cap read (and dropped) before the 413, so
# that a client that sends its whole body before it reads (urllib) receives the answer
MAX_PIXELS = 50_000_000  # of an image, read from its header before decoding: a 50 MP camera's
# photos; JPEGs are decoded at a smaller scale and every image reduced to images.WORK_SIDE at
# once: ~0.2 GB for a grey 50 MP PNG, ~0.6 GB for a transparent one, two at a time a worker
DECODE_SECONDS = 3.0  # a 32 MB PNG decodes in under a second; one that takes longer is damaged or made to
SHOWN_DIGITS = 4  # significant digits of the gradient and activations an answer gives
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")  # Pillow's raster formats served
SERVED_FILES = {  # what a listed run's files may be fetched of: name → (media type, most bytes)
    artifacts.CURVES: ("image/png", artifacts.PICTURE_LIMIT),
    artifacts.CONFUSION: ("image/png", artifacts.PICTURE_LIMIT),
    artifacts.MISTAKES: ("image/png", artifacts.PICTURE_LIMIT),
    artifacts.CONFIG: ("application/yaml", artifacts.CONFIG_LIMIT),
    artifacts.METRICS: ("application/json", artifacts.JSON_LIMIT),
    artifacts.EVAL: ("application/json", artifacts.JSON_LIMIT),
}
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
    key: tuple[str, int, int, int]  # the run's name and its weights file's (inode, mtime, size)


class Catalogue:
    """The runs under `target` (a folder of runs, or one run), read afresh for each listing,
    and their models, each loaded once per weights file: a file that fails to load is not
    tried again until it changes (its error is kept instead)."""

    def __init__(self, target: Path):
        self.target = target
        self.models: dict[tuple[str, int, int, int], Model | str] = {}
        self.loading = threading.Lock()

    def listing(self) -> dict[str, runs.Run]:
        return {path.name: runs.read_run(path) for path in self.run_paths()}

    def run_paths(self) -> list[Path]:
        """The run directories under the target, but those that lead out of it (a link)."""
        return [path for path in runs.run_paths(self.target) if path.resolve().is_relative_to(self.target)]

    def path(self, name: str) -> Path:
        """The listed run directory `name`, or a 404: a name is looked up, never joined to a path."""
        found = {path.name: path for path in self.run_paths()}.get(name)
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
        ready = [path for path in self.run_paths() if (path / artifacts.WEIGHTS).exists()]
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
            weights = (path / artifacts.WEIGHTS).stat()
        except FileNotFoundError:
            raise HTTPException(409, f"run {path.name!r} has no weights yet") from None
        except OSError as e:  # a loop of links, no permission
            raise HTTPException(
                409, f"run {path.name!r}: its weights cannot be read ({e.strerror})"
            ) from None
        key = (path.name, weights.st_ino, weights.st_mtime_ns, weights.st_size)
        with self.loading:
            if key not in self.models:
                try:
                    loaded = Model(predict.load_model(path), threading.Lock(), key)
                except MlpError as e:
                    loaded = str(e)
                self.models = {k: m for k, m in self.models.items() if k[0] != key[0]}  # older weights
                self.models[key] = loaded
            found = self.models[key]
        if isinstance(found, str):
            raise HTTPException(409, found)
        return found


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
    with model.lock, np.errstate(all="ignore"):  # broken weights overflow: refused below
        Z = network.forward(saved.norm.apply(pixels.reshape(1, -1)))
        scores = network.output.scores(Z)[0]
        if not np.isfinite(scores).all():
            raise HTTPException(409, predict.NOT_FINITE)
        layers = hidden_layers(network)
        order = np.argsort(-scores, kind="stable")  # k = order[0], the runner-up j = order[1]
        delta = one_hot(order[:1], len(scores), Z.dtype) - one_hot(order[1:2], len(scores), Z.dtype)
        grad_X = network.backward(delta, input_grad=True, param_grads=False)  # ∂m/∂x, δ^L = e_k - e_j
        gradient = grad_X[0] / saved.norm.std  # ∂m/∂pixel, as x = (pixel - mean) / std; a copy:
        # grad_X is the model's buffer, which the next request writes
    return {
        "predictions": ranked(scores, names, top, network.output.score_name),
        "input": pixels.tolist(),
        "gradient": shown(gradient.reshape(pixels.shape)).tolist(),
        "runner_up": {"class": int(order[1]), "name": names[order[1]]},
        **layers,
        "dataset": saved.dataset,
    }


def ranked(scores: np.ndarray, names: list[str], top: int, score_name: str) -> list[dict]:
    """The `top` classes by their scores, as mlp predict --json gives them."""
    order = np.argsort(-scores, kind="stable")[:top]
    found = predict.Prediction(
        "", [(int(c), names[c], float(scores[c])) for c in order], score_name=score_name
    )
    return found.to_dict()["predictions"]


def hidden_layers(network: Network) -> dict:
    """What the page draws of the last forward pass (one input): each hidden layer's
    activations and its name; an RNN's are its last state h^(T), the one read out, and
    `states`, its hidden state after each row, h^(1…T) (null for an MLP)."""
    activations, names, states = network.hidden_outputs_shown()
    states = None if states is None else shown(np.stack(states)).tolist()
    return {"activations": [shown(a).tolist() for a in activations], "layer_names": names, "states": states}


def shown(values: np.ndarray, digits: int = SHOWN_DIGITS) -> np.ndarray:
    """`values` rounded to `digits` significant digits of the largest of them: what a picture
    can show, and half the JSON (and half its time) of every digit of float32."""
    largest = float(np.abs(values).max(initial=0.0))
    if not math.isfinite(largest) or largest < np.finfo(np.float32).tiny:  # nothing to round
        return values
    return np.round(values.astype(np.float64), digits - 1 - math.floor(math.log10(largest)))


async def image_body(request: Request) -> bytes:
    """The image file a request sends: its body, or the file of a multipart form (curl -F,
    an HTML form)."""
    body = await capped_body(request)
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return await _form_file(request.headers, body)
    return body


async def capped_body(request: Request) -> bytes:
    """The request's body, or a 413 when it is larger than MAX_BODY: at once when its declared
    length says so and the client waits to be told to send it (Expect: 100-continue) or it
    is larger than DRAINED; otherwise once it is read, up to DRAINED bytes, the rest dropped."""
    too_large = HTTPException(
        413, f"the file is larger than {MAX_BODY / 2**20:.0f} MB, the most mlpcli reads"
    )
    declared = request.headers.get("content-length", "")
    waits = request.headers.get("expect", "").lower() == "100-continue"
    if declared.isdigit() and int(declared) > (MAX_BODY if waits else DRAINED):
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > DRAINED:
                break
            if size <= MAX_BODY:
                chunks.append(chunk)
            else:  # drained: not kept
                chunks.clear()
    except ClientDisconnect:  # closed by the client, or by mlpcli.connections for being too slow
        raise HTTPException(400, "the body did not arrive whole") from None
    if size > MAX_BODY:
        raise too_large
    return b"".join(chunks)


class _FormInMemory(MultiPartParser):
    spool_max_size = MAX_BODY  # an uploaded file stays in memory: the body is within the cap


async def _form_file(headers: Headers, body: bytes) -> bytes:
    """The first file of the multipart form `body`."""

    async def stream():
        yield body

    try:
        form = await _FormInMemory(headers, stream(), max_files=1, max_fields=16).parse()
    except MultiPartException as e:
        raise HTTPException(400, f"the form: {e.message}") from None
    uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not uploads:
        raise HTTPException(400, "the form holds no file: send the image as one (curl -F file=@digit.png)")
    return await uploads[0].read()


def prepared(body: bytes) -> np.ndarray:
    """The image in `body` as the 28×28 input mlp predict would give the network."""
    if not body:
        raise HTTPException(400, "send the image file as the request body (PNG or JPEG)")
    try:
        grey = read_image(io.BytesIO(body), "the image", MAX_PIXELS, FORMATS, DECODE_SECONDS)
        return to_mnist(grey, "the image")
    except ImageTooLarge as e:
        raise HTTPException(413, str(e)) from None
    except ImageError as e:
        raise HTTPException(422, str(e)) from None


def make_app(target: Path, hosts: list[str] | None = None, copies: Path | None = None) -> Starlette:
    """The app over the runs under `target`; `hosts`: the Host headers it answers (None: any),
    so that a page elsewhere cannot reach a loopback server through DNS rebinding; `copies`:
    the folder of the networks steps change (backprop.Copies; None: a temporary one)."""
    catalogue = Catalogue(target.resolve())  # resolved: `mlp serve .` inside a run names it
    # an image prepared on each core, beside the event loop (Pillow's decoding lets go of
    # Python's lock); the network itself runs one request at a time (Model.lock)
    workers = anyio.CapacityLimiter(2)

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

    def one(name: str) -> dict:
        run = catalogue.run(name)
        try:
            text = artifacts.read_run_text(run.path / artifacts.CONFIG, artifacts.CONFIG_LIMIT, "replace")
        except (OSError, RunFileError):  # missing, or refused: the run's problems say which
            text = None
        return describe(run) | {"config": text, "metrics": run.metrics}

    async def one_run(request: Request) -> JSONResponse:
        return JSONResponse(finite(await run_in_threadpool(one, request.path_params["name"])))

    def file_of(name: str, file: str) -> Response:
        if file not in SERVED_FILES:
            raise HTTPException(404, f"run {name!r} has no file {file!r} to serve")
        media_type, limit = SERVED_FILES[file]
        try:  # read, not streamed from its path: what was checked is what is sent
            return Response(
                artifacts.read_run_bytes(catalogue.path(name) / file, limit), media_type=media_type
            )
        except FileNotFoundError:
            raise HTTPException(404, f"run {name!r} has no file {file!r} to serve") from None
        except (OSError, RunFileError) as e:
            raise HTTPException(404, f"run {name!r}: {e}") from None

    async def run_file(request: Request) -> Response:
        return await run_in_threadpool(file_of, request.path_params["name"], request.path_params["file"])

    async def predict_image(request: Request) -> Response:
        top = _top(request)
        body = await image_body(request)
        run = request.query_params.get("run")
        answered = await anyio.to_thread.run_sync(answer, body, run, top, limiter=workers)
        return Response(answered, media_type="application/json")

    def answer(body: bytes, run: str | None, top: int) -> bytes:
        """The answer's JSON, written here rather than on the event loop, which it would hold."""
        pixels = prepared(body)  # first: a bad body is the client's fault, whatever the run
        return written(explain(catalogue.model(run), pixels, top))

    async def error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, exc.status_code)

    routes = [Route(path, page) for path in PAGE] + [
        Route("/api/runs", list_runs),
        Route("/api/runs/{name}", one_run),
        Route("/api/runs/{name}/{file}", run_file),
        Route("/api/predict", predict_image, methods=["POST"]),
        *backprop_routes(catalogue, backprop.Copies(copies), workers),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)] if hosts else []
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: error})


def backprop_routes(
    catalogue: Catalogue, copies: backprop.Copies, workers: anyio.CapacityLimiter
) -> list[Route]:
    """/api/backprop, /api/step and /api/reset: the backward pass of the image a request sends,
    for a label, on the run or on the session's own copy of it, and steps on that copy."""

    async def backprop_image(request: Request) -> Response:
        top, label, session = _top(request), _label(request), _session(request, required=False)
        body = await image_body(request)
        run = request.query_params.get("run")
        found = await anyio.to_thread.run_sync(shown_pass, body, run, label, top, session, limiter=workers)
        return Response(found, media_type="application/json")

    def shown_pass(body: bytes, run: str | None, label: int | None, top: int, session: str | None) -> bytes:
        pixels = prepared(body)
        model, steps = copy_of(catalogue.model(run), session)
        found = explain(model, pixels, top)
        label = _class_of(model, found["predictions"][0]["class"] if label is None else label)
        network, norm = model.saved.model, model.saved.norm
        with model.lock, np.errstate(all="ignore"):
            seen = backprop.view(network, norm, pixels, label)
        if not backprop.finite(seen):  # a copy stepped too far: its output was finite, its deltas not
            raise HTTPException(409, f"the backward pass overflowed (NaN or infinity): {_remedy(steps)}")
        with np.errstate(all="ignore"):
            checked = finite(backprop.check(network, norm, pixels, label))
        return written(
            found
            | _labelled(model, label)
            | pictures(seen)
            | {"check": checked, "steps": steps, "copies": backprop.COPIES}
        )

    def copy_of(model: Model, session: str | None) -> tuple[Model, int]:
        """The session's copy of the run (if it has one) and the steps it has taken; else the run."""
        kept = None if session is None else copies.load(session, model.key)
        if kept is None:
            return model, 0
        params, steps = kept
        twin = model.saved.model.copy(params)
        return Model(dataclasses.replace(model.saved, model=twin), threading.Lock(), model.key), steps

    async def step_image(request: Request) -> Response:
        _same_site(request)
        top, label, lr = _top(request), _label(request), _lr(request)
        session = _session(request, required=True)
        body = await image_body(request)
        run = request.query_params.get("run")
        found = await anyio.to_thread.run_sync(one_step, body, run, label, lr, session, top, limiter=workers)
        return Response(found, media_type="application/json")

    def one_step(body: bytes, run: str | None, label: int | None, lr: float, session: str, top: int) -> bytes:
        pixels = prepared(body)
        model = catalogue.model(run)
        network, norm = model.saved.model, model.saved.norm
        if network.params.nbytes > backprop.COPY_BYTES:
            raise HTTPException(
                409,
                f"run {model.key[0]!r}: its network's weights ({network.params.nbytes / 2**20:,.0f} MB) are"
                f" too large to copy for steps here (at most {backprop.COPY_BYTES / 2**20:.0f} MB)",
            )
        with kept_copies(), np.errstate(all="ignore"):
            kept = copies.load(session, model.key)
            params, steps = kept or (network.params, 0)
            twin = network.copy(params)
            if label is None:
                label = int(np.argmax(twin.forward(norm.apply(pixels.reshape(1, -1)))[0]))
            label = _class_of(model, label)
            taken = backprop.step(twin, norm, pixels, label, lr)
            if not (np.isfinite(taken["loss_after"]) and np.isfinite(twin.params).all()):
                raise HTTPException(
                    409, f"this step (η = {lr:g}) made the network's output not finite: {_remedy(1)}"
                )
            copies.save(session, model.key, twin.params, steps + 1)
        names = CLASS_NAMES[model.saved.dataset]
        return written(
            _labelled(model, label)
            | {
                "lr": lr,
                "loss_before": taken["loss_before"],
                "loss_after": taken["loss_after"],
                "predictions": ranked(taken["scores"], names, top, network.output.score_name),
                "steps": steps + 1,
                "fresh": kept is None,
                "copies": backprop.COPIES,
            }
        )

    @contextlib.contextmanager
    def kept_copies() -> Iterator[None]:
        """The copies held for a step or a reset; a 503 when they cannot be kept."""
        try:
            with copies.held():
                yield
        except (CopyError, TimeoutError) as e:
            raise HTTPException(503, f"{e}; try again") from None

    def dropped(session: str) -> bool:
        with kept_copies():
            return copies.drop(session)

    async def reset(request: Request) -> JSONResponse:
        _same_site(request)
        session = _session(request, required=True)
        return JSONResponse({"session": session, "reset": await run_in_threadpool(dropped, session)})

    return [
        Route("/api/backprop", backprop_image, methods=["POST"]),
        Route("/api/step", step_image, methods=["POST"]),
        Route("/api/reset", reset, methods=["POST"]),
    ]


def pictures(seen: dict) -> dict:
    """backprop.view's arrays as JSON's lists: the deltas, σ' and r^(t) as computed, the pictures
    to SHOWN_DIGITS."""
    steps, norms = seen["step_deltas"], seen["step_norms"]
    units = [
        unit | {"gradient": shown(unit["gradient"]).tolist(), "weights": shown(unit["weights"]).tolist()}
        for unit in seen["units"]
    ]
    return {
        "loss": seen["loss"],
        "deltas": [d.tolist() for d in seen["deltas"]],
        "slopes": [s.tolist() for s in seen["slopes"]],
        "input_gradient": shown(seen["input_gradient"]).tolist(),
        "units": units,
        "step_deltas": None if steps is None else steps.tolist(),
        "step_norms": None if norms is None else norms.tolist(),
    }


def _remedy(steps: int) -> str:
    return (
        "reset the steps, and take a smaller η" if steps else "the run's weights are broken; train it again"
    )


def _same_site(request: Request) -> None:
    """A 403 for a request a page of another site made the browser send (a step or a reset
    changes what the learner sees): browsers say so in Sec-Fetch-Site, older ones in Origin."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site not in (None, "same-origin", "none") or (
        origin is not None and origin.partition("://")[2] != request.headers.get("host")
    ):
        raise HTTPException(403, "steps and resets are taken from mlp serve's own page only")


def _labelled(model: Model, label: int) -> dict:
    return {
        "label": label,
        "label_name": CLASS_NAMES[model.saved.dataset][label],
        "output": str(model.saved.model.output),
    }


def _class_of(model: Model, label: int) -> int:
    classes = model.saved.model.sizes[-1]
    if label >= classes:
        raise HTTPException(400, f"label {label} is not a class of run {model.key[0]!r}: 0 to {classes - 1}")
    return label


def _top(request: Request) -> int:
    top = request.query_params.get("top", "3")
    if not re.fullmatch("[0-9]{1,2}", top) or not 1 <= int(top) <= 10:
        raise HTTPException(400, "top must be a whole number from 1 to 10")
    return int(top)


def _label(request: Request) -> int | None:
    """label=K, the class the loss is taken for (None: the network's answer)."""
    label = request.query_params.get("label")
    if label is not None and not re.fullmatch("[0-9]{1,3}", label):
        raise HTTPException(400, "label must be a class's number, such as 7 (or left out: the answer)")
    return None if label is None else int(label)


def _lr(request: Request) -> float:
    """lr=η, the step's learning rate: MIN_LR ≤ η ≤ MAX_LR (default backprop.LR), written
    as a decimal number (1e-3 too)."""
    text = request.query_params.get("lr", str(backprop.LR))
    number = re.fullmatch(r"[0-9]{1,20}(\.[0-9]{0,20})?([eE][-+]?[0-9]{1,3})?", text)
    if number is None or not backprop.MIN_LR <= float(text) <= backprop.MAX_LR:
        raise HTTPException(
            400,
            f"lr (the step's η) must be a number from {backprop.MIN_LR:g} to {backprop.MAX_LR:g}, such as"
            f" {backprop.LR:g}",
        )
    return float(text)


SESSION = re.compile("[A-Za-z0-9_-]{8,64}")


def _session(request: Request, required: bool) -> str | None:
    """session=ID: whose copy of the network (8 to 64 letters, digits, - or _; the page makes one)."""
    session = request.query_params.get("session")
    if (session is None and required) or (session is not None and not SESSION.fullmatch(session)):
        raise HTTPException(
            400, "session must be 8 to 64 letters, digits, - or _: the page's own name for its copy"
        )
    return session


def written(found: dict) -> bytes:
    """An answer's JSON (no NaN: JSON has none)."""
    return json.dumps(found, allow_nan=False, separators=(",", ":")).encode()


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
        "files": [name for name, (_, limit) in SERVED_FILES.items() if _servable(run.path / name, limit)],
    }


def _servable(path: Path, limit: int) -> bool:
    try:
        artifacts.run_file(path, limit)
    except (OSError, RunFileError):
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether `host` is an address of this machine alone (127.0.0.0/8, ::1, localhost)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, or nothing
        return False


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


def serve(target: Path, sock: socket.socket, host: str, workers: int = 1) -> None:
    """Serve `target`'s runs on the bound `sock` until Ctrl-C (then a KeyboardInterrupt, once
    every connection is closed), in `workers` processes: in each, the network answers one
    request at a time, so two use both cores of a small machine (uvicorn's supervisor starts
    and watches them; a lost terminal, SIGHUP, stops them as SIGTERM does, unless it was ignored
    on entry, under nohup)."""
    with tempfile.TemporaryDirectory(prefix="mlpcli-copies-") as copies:  # the steps' copies, shared
        _serve(target, sock, host, workers, Path(copies))


def _serve(target: Path, sock: socket.socket, host: str, workers: int, copies: Path) -> None:
    bound = sock.getsockname()[0]
    if workers == 1:
        server(target, host, bound, copies).run(sockets=[sock])
        return
    from uvicorn.supervisors.multiprocess import SIGNALS, Multiprocess

    class Supervisor(Multiprocess):
        interrupted = False

        def handle_int(self) -> None:
            self.interrupted = True
            super().handle_int()

        def handle_hup(self) -> None:  # uvicorn's own restarts the workers
            self.should_exit.set()

    handlers = {signum: signal.getsignal(signum) for signum in SIGNALS}
    nohup = output.ignored_on_entry(output.SIGHUP)
    try:  # the supervisor's own signal handlers, for as long as it runs
        supervisor = Supervisor(uvicorn_config(target, host, bound, workers, copies), [sock])
        if nohup:  # its constructor set a handler: ignored again, by it and the workers it starts
            signal.signal(output.SIGHUP, signal.SIG_IGN)
        supervisor.run()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if supervisor.interrupted:
        raise KeyboardInterrupt


def server(target: Path, host: str, bound: str | None = None, copies: Path | None = None) -> "uvicorn.Server":
    """The uvicorn server of `target`'s runs in this process."""
    import uvicorn

    return uvicorn.Server(uvicorn_config(target, host, bound or host, copies=copies))


def uvicorn_config(
    target: Path, host: str, bound: str, workers: int = 1, copies: Path | None = None
) -> "uvicorn.Config":
    """uvicorn's configuration for `target`'s runs, with mlpcli.connections' limits; listening
    on a loopback address (`bound`, the socket's: --host may be any name of it), answering only
    requests that name a loopback host, `host` or `bound`. The app is made in each worker
    process (a factory: the app itself cannot be sent to another process), all of them keeping
    the networks steps change in the folder `copies` (None: each its own)."""
    import uvicorn

    from mlpcli import connections

    names = ["127.0.0.1", "localhost", "::1", "[::1]", host.lower(), bound, f"[{bound}]"]
    return uvicorn.Config(
        functools.partial(make_app, target, names if is_loopback(bound) else None, copies),
        factory=True,
        ws="none",  # no WebSocket routes: an Upgrade is an ordinary request
        workers=workers,
        http=connections.GuardedProtocol,
        log_level="warning",
        limit_concurrency=connections.LIMIT + 1,  # a 503 only when LIMIT connections are all answered
        timeout_graceful_shutdown=2,  # for a request being answered
    )
