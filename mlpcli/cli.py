"""`mlp`: parse the command line, call the library, turn its errors into messages and exit codes.

At import only click and the options' own settings load: each command imports the library
(NumPy and the rest) when it runs, so that `mlp --help` and tab completion answer at once."""

import functools
import itertools
import json
import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from mlpcli import DISTRIBUTION, __version__, output
from mlpcli.errors import MlpError, TrainingInterrupted
from mlpcli.settings import SPLITS, GradcheckSettings

GRADCHECK = GradcheckSettings()  # the defaults of mlp gradcheck's options
PROGRESS = click.option(
    "--progress/--no-progress", default=None, help="Progress bars of long work (default: only on a terminal)."
)
SET_HELP = "Override one config key, e.g. --set model.hidden=[256,128]; repeatable. Values are YAML."


def entry_point() -> None:
    """The `mlp` process: its output may go to a pipe that closes under it (mlpcli.output), and
    OpenBLAS's threads sleep soon (quiet_openblas). Importing mlpcli changes neither."""
    quiet_openblas()
    output.install()
    main()


def quiet_openblas() -> None:
    """OpenBLAS's idle threads spin for 2^28 CPU cycles after each matrix product before they
    sleep, holding the core that the optimizer's second thread needs (mlpcli.parallel); 2^16
    cycles outlast the gaps between one batch's products and no more. OpenBLAS reads this
    once, when NumPy loads it: call it before NumPy is imported. A value already in the
    environment is kept."""
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlp")
def main() -> None:
    """Train NumPy networks on MNIST-style data (a multilayer perceptron, a vanilla
    RNN), look into them, and prove their hand-derived gradients.

    \b
      mlp train --out runs/mnist        train on MNIST with the default config
      mlp train --config configs/mnist_rnn.yaml
                                        a vanilla RNN, reading digits row by row
      mlp eval runs/mnist               test accuracy, per class, confusion matrix
      mlp predict runs/mnist digit.png  what the run makes of your drawing
      mlp runs                          every run under runs/, side by side
      mlp serve --open                  a page to draw a digit on
      mlp export runs/mnist             the network as ONNX, for onnxruntime
      mlp sweep sweeps/mnist.yaml       search configs with Optuna
      mlp gradcheck --all               every gradient against finite differences
    """


def config_options(config_help: str):
    """--config FILE and --set KEY=VALUE, as train and gradcheck take them."""

    def decorate(command):
        command = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)(
            command
        )
        config_type = click.Path(exists=True, dir_okay=False)
        return click.option("--config", "config_path", type=config_type, help=config_help)(command)

    return decorate


@main.command(short_help="Train from a config and write a run directory.")
@config_options("YAML config; keys it leaves out keep their defaults (all listed in configs/mnist.yaml).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory to create (default: runs/DATASET-DATE-TIME). Must be new or empty.",
)
@click.option(
    "--overwrite", is_flag=True, help="Train into a run directory that already holds files, replacing them."
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="RUN_DIR",
    help="Continue a stopped run from its last checkpoint, with its saved config; --set may change"
    " train keys such as train.epochs, not the model or data.",
)
@PROGRESS
def train(
    config_path: str | None,
    overrides: tuple[str, ...],
    out: Path | None,
    overwrite: bool,
    resume_dir: Path | None,
    progress: bool | None,
) -> None:
    """Train from a config; write config.yaml, weights.npz, metrics.json, history.csv and
    curves.png (history.csv is rewritten after every epoch, so a run can be watched).

    Ctrl-C (or SIGTERM, or the terminal closing) stops after the current batch and writes a
    checkpoint that --resume continues from exactly; a second Ctrl-C stops at once. A signal
    ignored on entry stays ignored: nohup mlp train … & trains on when the terminal closes. Output
    piped to a reader that goes away (| head, or | tee killed by the same Ctrl-C) only stops
    the output, never the run.

    \b
    A vanilla RNN reading each image row by row (28 steps of 28 pixels):
      mlp train --config configs/mnist_rnn.yaml

    \b
    Offline? MNIST ships with mlpcli. Others train from a folder of the
    four IDX files, e.g. Fashion-MNIST from Debian:
      mlp train --config configs/fashion_mnist.yaml --set data.source=idx \\
                --set data.dir=/usr/share/datasets/fashion-mnist
    """
    if resume_dir and (config_path or out or overwrite):
        raise click.UsageError(
            "--resume continues a run with its own config and directory: drop --config, --out, --overwrite"
        )
    from mlpcli import training
    from mlpcli.config import load_config

    with _errors(), _stoppable() as stop:
        if resume_dir:
            training.resume_run(resume_dir, overrides, say, progress, stop)
        else:
            config = load_config(config_path, overrides)
            training.train_run(
                config, out or training.default_run_dir(config), say, progress, stop, overwrite
            )


@contextmanager
def _stoppable() -> Iterator["_StopRequests"]:
    """The stop requests of the block (a stop, by signal, after the current batch: the exit code
    128 + the signal; a second Ctrl-C at once: 130), each said in a line."""
    with _stop_requests() as stop:
        try:
            yield stop
        except TrainingInterrupted as e:
            say(str(e), err=True)
            raise SystemExit(128 + stop.signal) from None
        except KeyboardInterrupt:
            say(
                "stopped at once; every file on disk is whole (a checkpoint, if any, is a complete one)",
                err=True,
            )
            raise SystemExit(128 + signal.SIGINT) from None


STOP_SIGNALS = tuple(
    signum for signum in (signal.SIGINT, signal.SIGTERM, output.SIGHUP) if signum is not None
)


class _StopRequests:
    """SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed) asks training to stop after the
    current batch; a second SIGINT or SIGTERM stops at once (every file is written atomically,
    so nothing on disk is left half-written). SIGHUP never stops at once: it also comes when
    the shell that ran mlp dies of a signal sent to the whole group (and may be handled before
    that signal), and it means only that the terminal is gone, whose output mlpcli.output
    already silences. `signal` is the stop's signal: a SIGINT or SIGTERM outranks a SIGHUP."""

    def __init__(self) -> None:
        self.signal = 0
        self.asked = False  # a SIGINT or SIGTERM came

    def __call__(self) -> bool:
        return self.signal != 0

    def handle(self, signum: int, frame) -> None:
        if signum != output.SIGHUP:
            if self.asked:
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                raise SystemExit(128 + signum)
            self.asked = True
        elif self.signal:
            return
        self.signal = signum
        output.write_now(
            f"\n{signal.Signals(signum).name}: stopping after this batch (again to stop at once)\n"
        )


@contextmanager
def _stop_requests() -> Iterator[_StopRequests]:
    stop = _StopRequests()
    heard = [signum for signum in STOP_SIGNALS if not output.ignored_on_entry(signum)]
    previous = {signum: signal.signal(signum, stop.handle) for signum in heard}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@main.command("eval", short_help="Evaluate a run, or a committee: figures and pictures.")
@click.argument("targets", metavar="RUN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="data.KEY=VALUE",
    help="Override a data key of the run's config, e.g. --set data.dir=DIR; repeatable.",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="test",
    show_default=True,
    help="validation: the run's own validation split, the seeded sample its training held out;"
    " train: the images it trained on (unaugmented), to compare with the others.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print what eval.json holds, for tools (the report goes to stderr).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="A committee's folder for its eval.json and pictures (new, or an earlier committee's)."
    "  [default: committees/DATASET-DATE-TIME]",
)
@PROGRESS
def eval_(
    targets: tuple[Path, ...],
    overrides: tuple[str, ...],
    split: str,
    as_json: bool,
    out: Path | None,
    progress: bool | None,
) -> None:
    """Evaluate saved weights (a run directory or a weights.npz) on the test split; several
    runs: a committee, answering the mean of their probabilities.

    Prints accuracy, top-3 accuracy, loss, per-class precision, recall and F1 and the
    confusion matrix. Writes beside the weights eval.json (also macro and weighted F1 and the
    indices of the mistakes, most confident first), confusion.png (a heat map) and
    mistakes.png (the most confident mistakes); for --split validation, eval-validation.json,
    confusion-validation.png and mistakes-validation.png. The data comes from the run's
    config.yaml (for a lone weights file: the dataset it was trained on, through tfds), then --set.

    A committee's members (runs trained alike but for their seed, say) must answer
    probabilities, have learnt the same dataset, answer the same classes and read images of the
    same size; it is evaluated on the test split, its report beside each member's accuracy,
    and its eval.json (naming the members) and pictures go to --out.

    \b
      mlp eval runs/fashion_mnist-20261123-190000
      mlp eval runs/fashion_mnist-20261123-190000 --split validation
      mlp eval runs/mnist --json | jq .accuracy
      mlp eval runs/long-0 runs/long-1 runs/long-2 --out committees/long
      mlp eval model.npz --set data.source=idx \\
                         --set data.dir=/usr/share/datasets/fashion-mnist
    """
    from mlpcli.evaluate import eval_committee, eval_run
    from mlpcli.images import IMAGE_SUFFIXES

    data_overrides = _only_keys(overrides, "data.", "eval takes only data.* keys")
    images = [str(path) for path in targets if path.suffix.lower() in IMAGE_SUFFIXES]
    if images:
        raise click.UsageError(
            f"{', '.join(images)}: mlp eval evaluates runs on a dataset's split; to classify"
            f" images: mlp predict RUN {' '.join(images)}"
        )
    if len(targets) > 1 and split != "test":
        raise click.UsageError(
            f"a committee is evaluated on the test split only: each member's {split} split is its own"
        )
    if len(targets) == 1 and out is not None:
        raise click.UsageError("--out is for a committee: one run's evaluation is written beside its weights")
    echo = functools.partial(say, err=True) if as_json else say
    with _errors():
        if len(targets) == 1:
            result = eval_run(targets[0], data_overrides, echo, split, progress)
        else:
            result = eval_committee(targets, data_overrides, echo, out)
    if as_json:
        click.echo(json.dumps(result, indent=2))


@main.command(short_help="Write a run's network as an ONNX model, to run it anywhere.")
@click.argument("target", metavar="RUN_OR_WEIGHTS", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to write the model.  [default: RUN/model.onnx]",
)
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
def export(target: Path, out: Path | None, overwrite: bool) -> None:
    """Write the network of a run (its weights.npz) as an ONNX model, for onnxruntime in
    Python, C#, Java or C++, in a browser (onnxruntime-web), or any tool that reads ONNX.

    The model takes `pixels`, float32 [N, 28, 28]: MNIST's grey levels 0-255 with the ink high,
    the digit centred as MNIST's are; the run's normalisation is inside it. It answers `logits`
    [N, classes] and `probabilities` (an mse run: `scores`). It does not find, crop or centre a
    digit in a photo, as mlp predict does: prepare the images first (mlp predict --save-input
    shows how). Needs the onnx package: the export extra (from a clone: pip install -e ".[export]").

    \b
      mlp export runs/mnist
      mlp export runs/mnist --out digits.onnx --overwrite
    """
    try:
        from mlpcli import export as exporting
    except ImportError as e:
        raise _Failure(f"mlp export needs {_top(e.name)}, of its extra: {_install_hint('export')}") from None
    with _errors():
        exported = exporting.export(target, out, overwrite)
    outputs = " and ".join(exported.outputs)
    say(
        f"wrote {exported.path} ({exported.size / 2**20:.1f} MB): {exported.network}{exported.which};"
        f" input pixels, float32 [N, 28, 28], 0-255 with the ink high; outputs {outputs}; ONNX opset"
        f" {exporting.OPSET}"
    )


@main.command(short_help="Classify your own images of digits (or clothes).")
@click.argument("target", metavar="RUN_OR_WEIGHTS", type=click.Path(path_type=Path))
@click.argument("images", metavar="[RUN...] IMAGE...", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one entry per image, for tools.")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many of the most probable classes to show (more than the run has: all of them).",
)
@click.option(
    "--save-input",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Save the 28×28 image the network saw, as DIR/NAME.28x28.png, to check the preprocessing.",
)
@PROGRESS
def predict(
    target: Path,
    images: tuple[Path, ...],
    as_json: bool,
    top: int,
    save_input: Path | None,
    progress: bool | None,
) -> None:
    """Classify IMAGE files (PNG, JPEG, anything Pillow reads; a folder: the images in it)
    with the weights of a run; several runs first: a committee, answering the mean of their
    probabilities (a run is a folder holding a run's files, or a .npz weights file).

    Each image is brought to MNIST's form as MNIST was made: grayscale, inverted if the
    background is light (dark ink on paper), cropped to the ink, scaled to fit 20×20 keeping
    its aspect ratio (a thin stroke thickened to MNIST's pen), and placed in 28×28 by its
    centre of mass. Prints the most probable classes of each (--top of them). An image that
    cannot be read or holds no digit gets a one-line error (exit code 1); the others are
    still classified.

    \b
      mlp predict runs/mnist-20261123-190000 three.png photo-of-a-seven.jpg
      mlp predict runs/mnist-20261123-190000 drawings/ --save-input seen/ --json
      mlp predict runs/long-0 runs/long-1 runs/long-2 three.png
    """
    from mlpcli.predict import is_run, load_model, predict_images

    members = [target, *itertools.takewhile(is_run, images)]
    images = images[len(members) - 1 :]
    late = [str(path) for path in images if is_run(path)]
    if late:
        raise click.UsageError(f"{', '.join(late)}: name the runs first, then the images")
    if not images:  # `mlp predict seven.jpg`: the run left out, or the images
        with _errors():
            load_model(target)  # which says so when TARGET is an image, not a run
        raise click.UsageError("Missing argument 'IMAGE...': name the images to classify after the runs")
    with _errors():
        predictions = predict_images(members, images, save_input, progress, top)
    if len(members) > 1:  # on stderr: stdout holds one line (or JSON) an image
        say(f"a committee of {len(members)}: {', '.join(map(str, members))}", err=True)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in predictions], indent=2))
    for prediction in predictions:
        if prediction.error is not None:
            say(f"Error: {prediction}", err=True)
        elif not as_json:
            say(str(prediction))
    saved = [Path(p.seen).name for p in predictions if p.seen]
    if saved:  # beside JSON on stdout, on stderr
        say(f"saved the 28×28 inputs the network saw in {save_input}: {', '.join(saved)}", err=as_json)
    if any(p.error is not None for p in predictions):
        raise SystemExit(1)


@main.command("runs", short_help="List the runs in a folder, side by side.")
@click.argument("folder", default="runs", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--sort", default="run", show_default=True, help="The column or config key to sort by, e.g. test_acc."
)
@click.option("--reverse", is_flag=True, help="Sort from the largest down (e.g. the best test_acc first).")
def runs_(folder: Path, sort: str, reverse: bool) -> None:
    """A table of the run directories in FOLDER (default: runs/; a run directory: that run
    alone): name, dataset, the config keys that differ between them (paths by the part that
    tells them apart), epochs and the epoch kept, validation and test accuracy, training time,
    status. A run that is half-written or damaged is listed as broken, with what is wrong; a
    run still training shows its process. --sort orders numbers, and model.hidden, by value.

    \b
      mlp runs
      mlp runs experiments/ --sort test_acc --reverse
    """
    from mlpcli import runs

    found, elsewhere = runs.find_runs(folder), runs.elsewhere(folder, "runs")  # FOLDER may be a run itself
    if not found:
        raise _Failure("; ".join([f"{folder}: holds no run directories", *elsewhere]))
    if sort not in runs.columns(found):
        from mlpcli.config import did_you_mean

        hint = did_you_mean(sort, runs.columns(found)) or f"; choose one of {', '.join(runs.COLUMNS)}"
        raise click.BadParameter(
            f"{sort!r} is not a column or config key of these runs{hint}", param_hint="--sort"
        )
    click.echo(runs.table(found, sort, reverse, output.columns(sys.stdout)))
    if elsewhere:
        say("\n" + "\n".join(elsewhere))


@main.command(short_help="Plot the learning curves of several runs on one figure.")
@click.argument("run_dirs", metavar="RUN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("runs.png"),
    show_default=True,
    help="The picture to write: PNG, SVG, PDF or JPEG, by its suffix.",
)
def plot(run_dirs: tuple[Path, ...], out: Path) -> None:
    """Validation accuracy and loss (and train loss, dashed) per epoch of each RUN (a folder of
    runs: every run in it), on one figure, each labelled by its name and the config keys that
    differ between them. A run with no finished epoch is left out, with a word.

    \b
      mlp plot runs/mnist-20261126-101500 runs/mnist-20261126-103000 --out lr.png
      mlp plot runs/ --out all.svg
    """
    from mlpcli import artifacts, runs

    if out.suffix[1:].lower() not in artifacts.FIGURE_FORMATS:
        raise click.BadParameter(f"{out}: name a .png, .svg, .pdf or .jpg file", param_hint="--out")
    with _errors():
        runs.plot_runs(list(run_dirs), out, lambda line: say(line, err=True))
    say(f"wrote {out}")


@main.command(short_help="Search configs with Optuna: trials as runs, pruning, best.yaml.")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the sweep: a run directory per trial, best.yaml, sweep.json, pictures, and"
    " the study (study.db) unless --storage says otherwise (default: runs/sweep-SPEC).",
)
@click.option(
    "--trials", type=click.IntRange(min=1), help="Trials in the whole study (default: the spec's, or 20)."
)
@click.option(
    "--storage",
    metavar="URL",
    envvar="MLPCLI_SWEEP_STORAGE",
    show_envvar=True,
    help="An Optuna storage shared by many machines, e.g. postgresql://user@host/db (with psycopg;"
    " its password from PGPASSWORD or libpq's password file, not the command line)"
    " (default: sqlite in --out).",
)
@click.option(
    "--study", "study_name", default="sweep", show_default=True, help="The study's name in the storage."
)
@click.option(
    "--heartbeat",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Seconds between a running trial's heartbeats; a trial whose worker misses three is"
    " failed by the others and run again once.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fix a config key for every trial, e.g. --set data.source=shipped; repeatable.",
)
@PROGRESS
def sweep(
    spec: Path,
    out: Path | None,
    trials: int | None,
    storage: str | None,
    study_name: str,
    heartbeat: int,
    overrides: tuple[str, ...],
    progress: bool | None,
) -> None:
    """Search the config space of SPEC (YAML) with Optuna (TPE), stopping hopeless trials early
    (median pruning on each epoch's validation accuracy). Each trial is an ordinary run
    directory; the objective is its kept validation accuracy, never the test split.

    \b
      config: configs/mnist.yaml      # optional: the base config
      trials: 20                      # optional; --trials overrides
      space:
        train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
        model.dropout: {low: 0.0, high: 0.5}
        train.batch_size: {low: 32, high: 256, step: 32}
        model.hidden: {choices: [[256], [512, 512]]}

    Run the same command again, or at once in other terminals or on other machines (with
    --storage), and it goes on with the same study until it holds --trials trials.
    `mlp train --config DIR/best.yaml` retrains the best. Needs Optuna: the sweep extra
    (from a clone: pip install -e ".[sweep]").
    """
    try:
        from mlpcli import sweep as sweeping
    except ImportError as e:
        raise _Failure(f"mlp sweep needs {_top(e.name)}, of its extra: {_install_hint('sweep')}") from None
    out = out or Path("runs") / f"sweep-{spec.stem}"
    with _errors(), _stoppable() as stop:
        summary = sweeping.sweep(
            spec, out, say, trials, storage, overrides, study_name, stop, progress, heartbeat
        )
    say("\n" + sweeping.format_summary(summary, output.columns(sys.stdout)))
    written = [sweeping.SUMMARY] + ([sweeping.BEST, *sweeping.PICTURES] if summary["best"] else [])
    say(f"wrote in {out}: {', '.join(name for name in written if (out / name).exists())}")


@main.command(short_help="A web page to draw a digit on and see the network answer, and why.")
@click.argument("target", default="runs", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=lambda ctx, param, value: _address(value),
    help="The address to listen on: 127.0.0.1 is this machine alone; 0.0.0.0 every address it has.",
)
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0: any free port."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes answering requests; in each the network answers one at a time (2: both cores"
    " of a small machine).",
)
def serve(target: Path, host: str, port: int, open_browser: bool, workers: int) -> None:
    """Serve the runs under TARGET (default: runs/; a run directory: that run alone) on a local
    web page: draw a digit (or drop an image) and see the network's answer live, the 28×28
    image it saw, which pixels pushed it towards its answer and which away (the gradient from
    its own backward pass), and its hidden layers; beside each run its curves, confusion
    matrix, mistakes, config and metrics. Its backprop panel runs the backward pass for a
    label you pick: every δ, a live gradient check, and SGD steps on the page's own copy of
    the network (the run's files are never written). The page's JSON API serves other tools too:

    \b
      mlp serve runs/ --open
      curl --data-binary @digit.png 'http://127.0.0.1:8000/api/predict?run=mnist'
      curl -F file=@photo.jpg 'http://127.0.0.1:8000/api/predict'
      curl --data-binary @digit.png 'http://127.0.0.1:8000/api/backprop?label=1'

    It listens on 127.0.0.1 only, unless --host says otherwise. Ctrl-C stops it (exit code
    130). Needs Starlette and uvicorn: the serve extra (from a clone: pip install -e ".[serve]").
    """
    try:
        from mlpcli import serve as server
    except ImportError as e:
        raise _Failure(f"mlp serve needs {_top(e.name)}, of its extra: {_install_hint('serve')}") from None
    from mlpcli import runs

    with _errors():
        count = len(runs.run_paths(target))  # what it serves; each is read when asked for
        sock = server.listening_socket(host, port)
    if not server.is_loopback(sock.getsockname()[0]):
        say(f"warning: listening on {host}: anyone who can reach this port can use it", err=True)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}/"
    say(f"serving {count} run{'s' * (count != 1)} of {target} at {url}  (Ctrl-C to stop)")
    for line in runs.elsewhere(target, "serve"):
        say(line, err=True)
    if open_browser:
        import webbrowser

        if not webbrowser.open(url):
            say(f"no web browser found to open: open {url} in one", err=True)
    try:
        server.serve(target, sock, host, workers)
    except KeyboardInterrupt:
        say("stopped", err=True)
        raise SystemExit(128 + signal.SIGINT) from None


def _address(host: str) -> str:
    """--host's value, which must name an address: an empty one would listen on every one."""
    if not host.strip():
        raise click.BadParameter(
            "name an address to listen on: 127.0.0.1 (this machine alone) or 0.0.0.0 (every address)"
        )
    return host


@main.command(short_help="Prove the hand-derived gradients against central differences.")
@config_options("Check the model of this config (default: the default config).")
@click.option(
    "--model",
    type=click.Choice(["mlp", "rnn"]),
    default="mlp",
    show_default=True,
    help="rnn: back-propagation through time of equations.md §6's RNN (one sequence, an output"
    " at every step) instead; the RNN that model.kind: rnn trains is checked with --config"
    " configs/mnist_rnn.yaml.",
)
@click.option(
    "--all",
    "every_combination",
    is_flag=True,
    help="Every activation with every output, on a small net, with dropout and weight decay.",
)
@click.option("--jacobians", is_flag=True, help="The Jacobian forms the delta equations come from.")
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=GRADCHECK.samples,
    show_default=True,
    help="Entries checked per tensor (a seeded random sample).",
)
@click.option("--full", is_flag=True, help="Check every entry of every tensor (slow for big layers).")
@click.option(
    "--eps",
    type=click.FloatRange(min=0, min_open=True),
    default=GRADCHECK.eps,
    show_default=True,
    help="The central-difference step ε.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=GRADCHECK.threshold,
    show_default=True,
    help="The largest relative error that passes.",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0),
    default=GRADCHECK.atol,
    show_default=True,
    help="An absolute error this small passes too (float64's resolution of the step).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=GRADCHECK.seed,
    show_default=True,
    help="Seeds the checked model's weights, its batch and the sampled entries (same seed, same numbers).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of tables.")
@click.option(
    "--explain",
    is_flag=True,
    help="For the worst entry of each tensor, show the analytic and numerical values and the relative error.",
)
def gradcheck(
    config_path,
    overrides,
    model,
    every_combination,
    jacobians,
    samples,
    full,
    eps,
    threshold,
    atol,
    seed,
    as_json,
    explain,
) -> None:
    """Prove the hand-derived gradients against central differences (equations.md §7).

    \b
      mlp gradcheck               the default config's model: each W, b, the input
      mlp gradcheck --all         relu/sigmoid/tanh × each output, every entry
      mlp gradcheck --jacobians   ∂z/∂a, ∂z/∂b, ∂z/∂W, the softmax's Jacobians
      mlp gradcheck --model rnn   back-propagation through time of a vanilla RNN
      mlp gradcheck --config configs/mnist_rnn.yaml
                                  the RNN that config trains: U, W, b, V, c, input

    --config and --set shape the config's model (model.* and train.weight_decay; dropout
    with a fixed mask); --all, --jacobians and --model rnn check fixed small nets and take
    neither. Exit code 0 when
    every check passes, 1 when any fails.
    """
    from mlpcli.config import load_config
    from mlpcli.gradcheck import failures, format_table, run_checks, step_size_hint, worst_entries

    settings = GradcheckSettings(eps, threshold, atol, None if full else samples, seed)
    with _errors():
        _gradcheck_uses(overrides, config_path, model == "rnn" or every_combination or jacobians)
        config = load_config(config_path, overrides)
        rows, example = run_checks(config, settings, model, every_combination, jacobians)
        failed = failures(rows)
        hint = step_size_hint(rows, config, settings, model, every_combination, jacobians)
    if as_json:
        click.echo(json.dumps({"passed": not failed, "checks": [r.to_dict() for r in rows]}, indent=2))
    else:
        click.echo(format_table(rows, settings, explain, output.columns(sys.stdout)))
        if explain:
            click.echo("\nthe worst entry of each tensor:\n\n" + worst_entries(rows, settings))
        if example:
            click.echo("\n" + example)
    if failed:
        say("FAILED: " + "; ".join(failed), err=True)
        if hint:
            say(hint, err=True)
        raise SystemExit(1)


GRADCHECK_KEYS = ("model.", "train.weight_decay")  # what the config's model check uses


def _gradcheck_uses(overrides: tuple[str, ...], config_path: str | None, fixed_nets: bool) -> None:
    """Refuse --set keys (and a --config) that the selected checks would ignore."""
    if fixed_nets and (overrides or config_path):
        raise click.UsageError(
            "--all, --jacobians and --model rnn check fixed small nets: --config and --set do not"
            " apply to them (run mlp gradcheck --set ... alone to check a config's model)"
        )
    why = "gradcheck checks the model's gradients and uses only model.* and train.weight_decay"
    _only_keys(overrides, GRADCHECK_KEYS, why)


def _only_keys(overrides: tuple[str, ...], prefixes: str | tuple[str, ...], why: str) -> tuple[str, ...]:
    """`overrides`, when each key starts with one of `prefixes`; else a usage error saying `why`."""
    from mlpcli.config import parse_override

    for item in overrides:
        key, _ = parse_override(item)
        if not key.startswith(prefixes):
            raise click.BadParameter(f"{key!r}: {why}", param_hint="--set")
    return overrides


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the library's errors into `Error: message` and exit code 1."""
    try:
        yield
    except MlpError as e:
        raise _Failure(str(e)) from None
    except MemoryError as e:  # an allocation the checks could not foresee
        raise _Failure(f"not enough memory: {e or 'an allocation failed'}") from None


class _Failure(click.ClickException):
    """`Error: message` on standard error, broken between words on a terminal (`say`)."""

    def show(self, file=None) -> None:
        say(f"Error: {self.format_message()}", err=True)


def _top(module: str | None) -> str:
    """The package a missing module belongs to (starlette of starlette.applications)."""
    return (module or "a package").partition(".")[0]


def _install_hint(extra: str) -> str:
    """How to add `extra` to the mlpcli that runs: from its clone when it runs from one (pip
    install -e), else the extra's packages by name; never `pip install mlpcli`, which on PyPI
    is another project."""
    clone = Path(__file__).resolve().parents[1]
    if (clone / "pyproject.toml").is_file():
        return f'pip install -e "{clone}[{extra}]"'
    from importlib import metadata

    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        requires = []
    needs = [req.split(";")[0].strip() for req in requires if f'extra == "{extra}"' in req]
    return "pip install " + " ".join(f'"{package}"' for package in needs)


def say(message: str, err: bool = False) -> None:
    """Write `message` for a person: on a terminal, a line wider than the terminal is broken
    between words (the rest indented two spaces more than it began), never in the middle of
    one; into a pipe or a file, as it is."""
    width = output.columns(sys.stderr if err else sys.stdout)
    if width is not None:
        message = "\n".join(_wrapped(line, width) for line in message.split("\n"))
    click.echo(message, err=err)


def _wrapped(line: str, width: int) -> str:
    if len(line) <= width:
        return line
    indent = line[: len(line) - len(line.lstrip())] + "  "
    return "\n".join(
        textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    )
