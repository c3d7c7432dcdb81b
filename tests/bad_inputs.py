"""The corpus of bad inputs. Each case builds its input in a workspace that also holds a good
IDX folder (`idx/`), gives the `mlp` command line that meets it, and the message and exit code
a user must get. tests/test_bad_inputs.py runs them all."""

import gzip
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import TINY, write_idx

from mlpcli.artifacts import Saved, save_weights
from mlpcli.data import Normalisation
from mlpcli.nn.mlp import MLP
from mlpcli.nn.rnn import RNN


@dataclass
class Case:
    id: str
    args: Callable[[Path], list[str]]  # workspace → the command line
    message: str
    exit_code: int = 1


def config(text: str) -> Callable[[Path], list[str]]:
    """`mlp train` with a config file holding `text`."""

    def args(ws: Path) -> list[str]:
        (ws / "bad.yaml").write_text(text)
        return [
            "train",
            "--config",
            str(ws / "bad.yaml"),
            "--set",
            f"data.dir={ws / 'idx'}",
            "--out",
            str(ws / "run"),
        ]

    return args


def train_with(*sets: str) -> Callable[[Path], list[str]]:
    """`mlp train` on the tiny config with these overrides."""

    def args(ws: Path) -> list[str]:
        options = [a for item in (f"data.dir={ws / 'idx'}", *sets) for a in ("--set", item)]
        return ["train", "--config", TINY, *options, "--out", str(ws / "run")]

    return args


def idx_folder(change: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    """`mlp train` on a copy of the good IDX folder that `change` spoils."""

    def args(ws: Path) -> list[str]:
        shutil.copytree(ws / "idx", ws / "bad-idx")
        change(ws / "bad-idx")
        return train_with(f"data.dir={ws / 'bad-idx'}")(ws)

    return args


def replace(stem: str, content: bytes) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        (folder / f"{stem}.gz").write_bytes(content)

    return change


def write(stem: str, array) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        write_idx(folder / f"{stem}.gz", np.asarray(array), compress=True)

    return change


def header(dims: list[int], magic: bytes = b"\x00\x00\x08") -> bytes:
    return magic + bytes([len(dims)]) + np.array(dims, dtype=">u4").tobytes()


def weights(
    change: Callable[[dict], None], sizes=(64, 32, 10), rnn: tuple[int, int] | None = None
) -> Callable[[Path], list[str]]:
    """`mlp eval` on a weights file for the 8×8 data that `change` spoils (arrays by name): an
    MLP of `sizes`, or with `rnn` = (steps, inputs per step) an RNN of 16 units."""

    def args(ws: Path) -> list[str]:
        model = MLP(list(sizes)) if rnn is None else RNN(*rnn, 16, 10)
        model.init(np.random.default_rng(0))
        path = ws / "model.npz"
        save_weights(path, Saved(model, Normalisation(30.0, 60.0), "mnist"))
        with np.load(path) as npz:
            arrays = dict(npz)
        change(arrays)
        np.savez(path, **arrays)
        return ["eval", str(path), "--set", "data.source=idx", "--set", f"data.dir={ws / 'idx'}"]

    return args


def spoiled_weights(change: Callable[[bytes], bytes]) -> Callable[[Path], list[str]]:
    """`mlp eval` on a good weights file whose bytes `change` spoils."""

    def args(ws: Path) -> list[str]:
        command = weights(lambda arrays: None)(ws)
        path = ws / "model.npz"
        path.write_bytes(change(path.read_bytes()))
        return command

    return args


def weights_in_run(config_text: str) -> Callable[[Path], list[str]]:
    """`mlp eval` on a run directory whose config.yaml holds `config_text`."""

    def args(ws: Path) -> list[str]:
        weights(lambda arrays: None)(ws)
        (ws / "run").mkdir()
        (ws / "model.npz").rename(ws / "run" / "weights.npz")
        (ws / "run" / "config.yaml").write_text(config_text)
        return ["eval", str(ws / "run")]

    return args


def raw_weights(content: bytes) -> Callable[[Path], list[str]]:
    def args(ws: Path) -> list[str]:
        (ws / "model.npz").write_bytes(content)
        return ["eval", str(ws / "model.npz")]

    return args


def cli(*words: str) -> Callable[[Path], list[str]]:
    """A command line; {ws} stands for the workspace."""
    return lambda ws: [word.format(ws=ws) for word in words]


def npy_bytes() -> bytes:
    """A real .npy file (one array), which np.load opens without a context manager."""
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(2, np.float32))
    return buffer.getvalue()


NPY = npy_bytes()
ALIAS_BOMB = """
a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
model: {hidden: [*f, *f, *f, *f, *f, *f, *f, *f, *f]}
"""

# nine levels of nine: 387 million leaves if anything expanded it (a message, say)
VALUE_BOMB = "model:\n  hidden:\n    a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"    {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi")
)

CASES = [
    Case(
        "an rnn of two recurrent layers",
        train_with("model.kind=rnn", "model.hidden=[16, 16]"),
        "model.kind = rnn has one recurrent layer, so model.hidden is its one width, such as [128]",
    ),
    Case(
        "an unknown kind of model",
        train_with("model.kind=lstm"),
        "model.kind = 'lstm' is out of range: it must be one of mlp, rnn",
    ),
    Case(
        "an unknown recurrent init",
        train_with("model.kind=rnn", "model.recurrent_init=eye"),
        "model.recurrent_init = 'eye' is out of range: it must be one of orthogonal, identity, xavier",
    ),
    Case(
        "a negative clip", train_with("train.clip=-1"), "train.clip = -1.0 is out of range: it must be >= 0"
    ),
    # --- configs -------------------------------------------------------------------------------
    Case(
        "unknown top-level key",
        config("colour: red\n"),
        "unknown config key 'colour' at top level; allowed: data, model, train",
    ),
    Case(
        "unknown data key",
        config("data: {path: /x}\n"),
        "unknown config key 'path' at section 'data'; allowed: source, name, dir",
    ),
    Case(
        "unknown model key",
        config("model: {layers: 3}\n"),
        "unknown config key 'layers' at section 'model'; allowed: kind, hidden",
    ),
    Case(
        "unknown train key",
        config("train: {optimiser: adam}\n"),
        "unknown config key 'optimiser' at section 'train'; allowed: epochs",
    ),
    Case("epochs as text", config("train: {epochs: ten}\n"), "train.epochs = 'ten' must be int, not str"),
    Case("lr as a list", config("train: {lr: [0.1]}\n"), "train.lr = [0.1] must be a number, not list"),
    Case("hidden as a number", config("model: {hidden: 128}\n"), "model.hidden = 128 must be a list of int"),
    Case(
        "validation as a fraction",
        config("data: {validation: 0.5}\n"),
        "data.validation = 0.5 must be int, not float",
    ),
    Case(
        "batch size as a boolean",
        train_with("train.batch_size=true"),
        "train.batch_size = True must be int, not bool",
    ),
    Case(
        "negative epochs", train_with("train.epochs=-1"), "train.epochs = -1 is out of range: it must be > 0"
    ),
    Case(
        "zero batch size",
        train_with("train.batch_size=0"),
        "train.batch_size = 0 is out of range: it must be > 0",
    ),
    Case("zero learning rate", train_with("train.lr=0"), "train.lr = 0.0 is out of range: it must be > 0"),
    Case(
        "negative learning rate",
        train_with("train.lr=-0.01"),
        "train.lr = -0.01 is out of range: it must be > 0",
    ),
    Case("not-a-number learning rate", train_with("train.lr=.nan"), "train.lr = nan must be a finite number"),
    Case(
        "negative weight decay",
        train_with("train.weight_decay=-0.1"),
        "train.weight_decay = -0.1 is out of range: it must be >= 0",
    ),
    Case(
        "zero width",
        train_with("model.hidden=[32,0]"),
        "model.hidden = [32, 0] is out of range: it must be a list of widths > 0",
    ),
    Case(
        "activation in capitals",
        train_with("model.activation=Relu"),
        "model.activation = 'Relu' is out of range: it must be one of relu, sigmoid, tanh;"
        " did you mean 'relu'?",
    ),
    Case(
        "a misspelt key",
        train_with("train.optimiser=adam"),
        "; did you mean 'optimizer'?",
    ),
    Case(
        "dropout of one",
        train_with("model.dropout=1"),
        "model.dropout = 1.0 is out of range: it must be in [0, 1)",
    ),
    Case(
        "unknown activation",
        train_with("model.activation=gelu"),
        "model.activation = 'gelu' is out of range: it must be one of relu, sigmoid, tanh",
    ),
    Case(
        "unknown optimizer",
        train_with("train.optimizer=rmsprop"),
        "train.optimizer = 'rmsprop' is out of range: it must be one of sgd, adam",
    ),
    Case(
        "batch larger than the data",
        train_with("train.batch_size=5000"),
        "train.batch_size = 5000 is larger than the training data (1000 examples)",
    ),
    Case(
        "validation takes all the data",
        train_with("data.validation=1200"),
        "data.validation = 1200 leaves no training data",
    ),
    Case(
        "negative validation",
        train_with("data.validation=-1"),
        "data.validation = -1 is out of range: it must be >= 0",
    ),
    Case(
        "no validation examples to keep the best epoch by",
        train_with("data.validation=0"),
        "data.validation = 0 holds out no examples to choose an epoch by (train.keep = best_val_accuracy)",
    ),
    Case(
        "unknown keep rule",
        train_with("train.keep=best"),
        "train.keep = 'best' is out of range: it must be one of best_val_accuracy, best_val_loss, last",
    ),
    Case(
        "negative shift",
        train_with("data.augment.shift=-2"),
        "data.augment.shift = -2 is out of range: it must be >= 0",
    ),
    Case(
        "shift as a fraction",
        train_with("data.augment.shift=1.5"),
        "data.augment.shift = 1.5 must be int, not float",
    ),
    Case(
        "scale of one",
        train_with("data.augment.scale=1"),
        "data.augment.scale = 1.0 is out of range: it must be in [0, 1)",
    ),
    Case(
        "unknown augment key",
        config("data: {augment: {warp: 3}}\n"),
        "unknown config key 'warp' at section 'data.augment'; allowed: shift, rotate, scale, flip, elastic",
    ),
    Case(
        "elastic section that is a number",
        config("data: {augment: {elastic: 3}}\n"),
        "config section 'data.augment.elastic' must be a mapping, not int",
    ),
    Case(
        "augment section that is a flag",
        config("data: {augment: true}\n"),
        "config section 'data.augment' must be a mapping, not bool",
    ),
    Case(
        "override below a key that is not a section",
        train_with("train.lr.max=1"),
        "override 'train.lr.max': train.lr is a key with a value (0.01), not a section",
    ),
    Case(
        "negative rotation",
        train_with("data.augment.rotate=-5"),
        "data.augment.rotate = -5.0 is out of range: it must be in [0, 180]",
    ),
    Case(
        "rotation past half a turn",
        train_with("data.augment.rotate=270"),
        "data.augment.rotate = 270.0 is out of range: it must be in [0, 180]",
    ),
    Case(
        "rotation as text",
        train_with("data.augment.rotate=some"),
        "data.augment.rotate = 'some' must be a number, not str",
    ),
    Case(
        "negative scale",
        train_with("data.augment.scale=-0.1"),
        "data.augment.scale = -0.1 is out of range: it must be in [0, 1)",
    ),
    Case(
        "flip as a number",
        config("data: {augment: {flip: 1}}\n"),
        "data.augment.flip = 1 must be bool, not int",
    ),
    Case(
        "parallel as a thread count",
        train_with("train.parallel=2"),
        "train.parallel = 2 must be bool, not int",
    ),
    Case(
        "keep rule as a number",
        train_with("train.keep=3"),
        "train.keep = 3 must be str, not int",
    ),
    Case(
        "shift as large as the image",
        train_with("data.augment.shift=8"),
        "data.augment.shift = 8 could move a 8×8 image out of its frame: it must be below 8",
    ),
    Case(
        "patience while keeping the last epoch",
        train_with("train.keep=last", "train.patience=3"),
        "train.patience = 3 can never stop a run that keeps its last epoch (train.keep = last)",
    ),
    Case("not YAML at all", config("train: {epochs: [\n  - ]]\n"), "is not valid YAML: line 2, column 3:"),
    Case(
        "a sweep spec given as a config",
        config("config: configs/mnist.yaml\nspace: {train.lr: {low: 0.0001, high: 0.01}}\n"),
        "bad.yaml is a sweep spec (it has a space to search), not a config: mlp sweep",
    ),
    Case(
        "a network larger than the machine's memory",
        train_with("model.hidden=[100000000]"),
        "model.hidden = [100000000] makes a network of 7,500,000,010 parameters: training it takes about",
    ),
    Case("YAML that is a list", config("- data\n- model\n"), "must be a mapping of sections, not list"),
    Case(
        "section that is a number", config("train: 5\n"), "config section 'train' must be a mapping, not int"
    ),
    Case("exploding aliases at the top level", config(ALIAS_BOMB), "unknown config key 'a' at top level"),
    Case(
        "exploding aliases in a value",
        config(VALUE_BOMB),
        "model.hidden = {'a': [1, 1, 1, 1, 1, 1, ...], 'b':",
    ),
    Case("unsafe YAML tag", config("train: !!python/object/apply:os.system ['true']\n"), "is not valid YAML"),
    Case("override that is not KEY=VALUE", train_with("nonsense"), "override 'nonsense' is not KEY=VALUE"),
    Case(
        "override key without a section",
        train_with("epochs=3"),
        "override key 'epochs' must be SECTION.NAME, e.g. train.lr; did you mean train.epochs?",
    ),
    Case(
        "a width where a list of widths belongs",
        train_with("model.hidden=128"),
        "model.hidden = 128 must be a list of int; did you mean [128]?",
    ),
    Case("config that is a directory", cli("train", "--config", "{ws}/idx"), "is a directory", 2),
    Case("config that does not exist", cli("train", "--config", "{ws}/missing.yaml"), "does not exist", 2),
    Case("data.dir that is a file", train_with("data.dir=" + TINY), "is not a directory"),
    Case(
        "idx source without a dir",
        cli("train", "--set", "data.source=idx", "--out", "{ws}/run"),
        "data.source is idx but data.dir is not set",
    ),
    # --- IDX files ------------------------------------------------------------------------------
    Case(
        "empty image file",
        idx_folder(replace("train-images-idx3-ubyte", gzip.compress(b""))),
        "too short to be an IDX file (0 bytes)",
    ),
    Case(
        "truncated image data",
        idx_folder(replace("train-images-idx3-ubyte", gzip.compress(header([1200, 8, 8]) + bytes(500)))),
        "header says 1200×8×8 = 76800 bytes of data, the file holds 500",
    ),
    Case(
        "truncated header",
        idx_folder(replace("train-labels-idx1-ubyte", header([1200, 8])[:6])),
        "truncated header",
    ),
    Case(
        "wrong magic number",
        idx_folder(replace("train-images-idx3-ubyte", header([2, 2, 2], b"\x00\x00\x09") + bytes(8))),
        "wrong magic number 0x00000903",
    ),
    Case(
        "images of rank 2",
        idx_folder(write("train-images-idx3-ubyte", np.zeros((1200, 64), np.uint8))),
        "image files have 3 dimensions (N, rows, cols), this has 2",
    ),
    Case(
        "labels of rank 2",
        idx_folder(write("train-labels-idx1-ubyte", np.zeros((1200, 1), np.uint8))),
        "label files have 1 dimension, this has 2",
    ),
    Case(
        "counts that do not match",
        idx_folder(write("train-labels-idx1-ubyte", np.zeros(1199, np.uint8))),
        "holds 1200 images but",
    ),
    Case(
        "label of 12",
        idx_folder(write("t10k-labels-idx1-ubyte", np.full(300, 12, np.uint8))),
        "label 12 is out of range 0..9",
    ),
    Case(
        "corrupt gzip stream",
        idx_folder(
            replace("t10k-images-idx3-ubyte", gzip.compress(header([300, 8, 8]) + bytes(19200))[:-30])
        ),
        "cannot read or decompress",
    ),
    Case(
        "missing label file",
        idx_folder(lambda folder: (folder / "t10k-labels-idx1-ubyte.gz").unlink()),
        "has neither t10k-labels-idx1-ubyte.gz nor t10k-labels-idx1-ubyte",
    ),
    Case(
        "test images of another size",
        idx_folder(write("t10k-images-idx3-ubyte", np.zeros((300, 7, 7), np.uint8))),
        "train images are 8×8 pixels but test images 7×7",
    ),
    Case(
        "an IDX path that is a directory",
        idx_folder(
            lambda folder: (
                (folder / "train-images-idx3-ubyte.gz").unlink(),
                (folder / "train-images-idx3-ubyte.gz").mkdir(),
            )
        ),
        "is a directory, not an IDX file",
    ),
    # --- weights files --------------------------------------------------------------------------
    Case(
        "weights of an unknown kind of model",
        weights(lambda a: a.update(kind=np.array("lstm"))),
        "holds a model of kind 'lstm'; this mlp knows mlp, rnn",
    ),
    Case(
        "rnn weights that do not say their steps",
        weights(lambda a: a.pop("steps"), rnn=(8, 8)),
        "an rnn's steps should divide its 64 inputs, found missing",
    ),
    Case(
        "rnn weights whose steps do not divide the inputs",
        weights(lambda a: a.update(steps=np.array(5)), rnn=(8, 8)),
        "an rnn's steps should divide its 64 inputs, found 5",
    ),
    Case(
        "rnn weights with a recurrent matrix of the wrong shape",
        weights(lambda a: a.update(W=np.zeros((16, 15), np.float32)), rnn=(8, 8)),
        "W should be floats of shape (16, 16), found float32 (16, 15)",
    ),
    Case(
        "an rnn of other rows than the data's",
        weights(lambda a: None, rnn=(16, 4)),
        "the model takes 64 inputs as 16 rows but the mnist test images have 64 pixels in 8 rows",
    ),
    Case("truncated zip", spoiled_weights(lambda content: content[:400]), "not a readable weights file"),
    Case("text, not a weights file", raw_weights(b"W1 = [[1, 2], [3, 4]]\n"), "not a readable weights file"),
    Case(
        "a missing weight array",
        weights(lambda a: a.pop("W2")),
        "W2 should be floats of shape (10, 32), found missing",
    ),
    Case("no architecture", weights(lambda a: a.pop("sizes")), "missing sizes; is it an mlp weights file?"),
    Case(
        "a weight of the wrong shape",
        weights(lambda a: a.update(W1=np.zeros((32, 65), np.float32))),
        "W1 should be floats of shape (32, 64), found float32 (32, 65)",
    ),
    Case(
        "integer weights",
        weights(lambda a: a.update(b1=np.zeros(32, np.int32))),
        "b1 should be floats of shape (32,), found int32 (32,)",
    ),
    Case(
        "an object array that needs pickle",
        weights(lambda a: a.update(W1=np.array([{"x": 1}], dtype=object))),
        "not a readable weights file (Object arrays cannot be loaded when allow_pickle=False)",
    ),
    Case(
        "non-finite weights",
        weights(lambda a: a["W2"].__setitem__((0, 0), np.inf)),
        "holds non-finite values",
    ),
    Case(
        "a normalisation that is not a number",
        weights(lambda a: a.update(input_std=np.zeros(3))),
        "input_mean and input_std should be single numbers",
    ),
    Case(
        "an unknown activation",
        weights(lambda a: a.update(activation=np.array("swish"))),
        "unknown activation, output or dataset",
    ),
    Case(
        "an architecture that does not fit the data",
        weights(lambda a: None, sizes=(784, 32, 10)),
        "the model takes 784 inputs but the mnist test images have 64 pixels",
    ),
    Case(
        "sizes of a huge model the file does not hold",
        weights(lambda a: a.update(sizes=np.array([100000, 100000, 10]))),
        "W1 should be floats of shape (100000, 100000), found float32 (32, 64)",
    ),
    Case("a .npy array, not a weights file", raw_weights(NPY), "not a readable weights file"),
    Case(
        "a weights file of a later format",
        weights(lambda a: a.update(format_version=np.array(2))),
        "a weights file of format 2; this mlp reads format 1 (was it written by another version of mlp?)",
    ),
    Case(
        "a weights file whose epoch is not one",
        weights(lambda a: a.update(epoch=np.array(-1))),
        "epoch -1 is not an epoch number",
    ),
    Case(
        "a weights file whose format is text",
        weights(lambda a: a.update(format_version=np.array("1"))),
        "a weights file of format '1'; this mlp reads format 1",
    ),
    Case(
        "a model with 3 outputs",
        weights(lambda a: None, sizes=(64, 32, 3)),
        "the model has 3 outputs, the data 10 classes",
    ),
    Case(
        "a run whose config has no data mapping",
        weights_in_run("data: [1, 2]\n"),
        "its data section must be a mapping, not list",
    ),
    Case(
        "augmentation whose maps would not fit in memory",
        cli(
            "train",
            "--set",
            "data.source=shipped",
            *("--set", "data.augment.rotate=180", "--set", "data.augment.scale=0.99"),
            *("--set", "data.augment.flip=true", "--out", "{ws}/run"),
        ),
        "data.augment: rotate 180, scale 0.99 and flip make 143,678 transformations, whose maps would take"
        " 859 MiB (at most 256 MiB): lower data.augment.rotate or data.augment.scale",
    ),
    # --- CLI misuse -----------------------------------------------------------------------------
    Case("eval without a path", cli("eval"), "Missing argument 'RUN...'", 2),
    Case(
        "eval of a path that does not exist",
        cli("eval", "{ws}/nothing"),
        "no such run directory or weights file",
    ),
    Case(
        "eval of a misspelt run",
        cli("eval", "{ws}/ixd"),
        "ixd: no such run directory or weights file; did you mean ",
    ),
    Case(
        "eval of a folder that is not a run",
        cli("eval", "{ws}/idx"),
        "idx is not a run directory: it holds no weights.npz, metrics.json or config.yaml",
    ),
    Case("eval of the current folder", cli("eval", "."), ". is not a run directory"),
    Case(
        "gradcheck --all with a config key",
        cli("gradcheck", "--all", "--set", "model.hidden=[4]"),
        "--all, --jacobians and --model rnn check fixed small nets: --config and --set do not apply",
        2,
    ),
    Case(
        "gradcheck of the RNN with a config key",
        cli("gradcheck", "--model", "rnn", "--set", "model.hidden=[4]"),
        "--config and --set do not apply to them",
        2,
    ),
    Case(
        "gradcheck with an override that is not KEY=VALUE",
        cli("gradcheck", "--set", "foo"),
        "override 'foo' is not KEY=VALUE",
    ),
    Case(
        "predict with a folder that is not a run",
        cli("predict", "{ws}/idx", "{ws}/idx/x.png"),
        "idx is not a run directory",
    ),
    Case(
        "dropout without hidden layers",
        train_with("model.hidden=[]"),
        "model.dropout = 0.1 drops hidden activations, and model.hidden = [] has none: set model.dropout=0",
    ),
    Case(
        "gradcheck of a network larger than the machine's memory",
        cli("gradcheck", "--set", "model.hidden=[100000000]"),
        "model.hidden = [100000000] makes a network of 79,500,000,010 parameters",
    ),
    Case(
        "gradcheck with a key it does not use",
        cli("gradcheck", "--set", "train.epochs=3"),
        "'train.epochs': gradcheck checks the model's gradients and uses only model.* and train.weight_decay",
        2,
    ),
    Case("an unknown option", cli("train", "--bogus"), "No such option '--bogus'", 2),
    Case("an unknown command", cli("fit"), "No such command 'fit'", 2),
    Case(
        "eval with a train override",
        cli("eval", "{ws}/idx", "--set", "train.epochs=3"),
        "eval takes only data.* keys",
        2,
    ),
    Case(
        "resume with a config",
        cli("train", "--resume", "{ws}/idx", "--config", TINY),
        "--resume continues a run with its own config",
        2,
    ),
    Case(
        "resume of a folder that is no run",
        cli("train", "--resume", "{ws}/idx"),
        "no checkpoint to resume from",
    ),
    Case(
        "gradcheck with zero samples", cli("gradcheck", "--samples", "0"), "Invalid value for '--samples'", 2
    ),
]
