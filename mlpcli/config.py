"""The configuration schema: every key, its default and its check, in one place.

Precedence: these defaults < the YAML file (`--config`) < `--set KEY=VALUE` overrides.
The defaults are the MNIST config (`configs/mnist.yaml` spells them out).
"""

import copy
import dataclasses
import difflib
import math
import reprlib
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Union, get_args, get_origin

import yaml

from mlpcli.errors import ConfigError
from mlpcli.nn.activations import HIDDEN_ACTIVATIONS
from mlpcli.nn.kinds import KINDS
from mlpcli.nn.losses import OUTPUT_ACTIVATIONS, OUTPUTS
from mlpcli.nn.rnn import RECURRENT_INITS


class Check(NamedTuple):
    """What a value must satisfy, said in words; `choices` for a value from a list."""

    holds: Callable[[Any], bool]
    must_be: str
    choices: tuple[str, ...] = ()


def _option(default: Any, check: Check | None = None) -> Any:
    """A schema field: its default and an optional check."""
    factory = (lambda: list(default)) if isinstance(default, list) else (lambda: default)
    return field(default_factory=factory, metadata={"check": check})


def _one_of(*choices: str) -> Check:
    return Check(lambda v: v in choices, "one of " + ", ".join(choices), choices)


def closest(given: Any, choices: Sequence[str]) -> str | None:
    """The choice closest to `given` (case aside), if one is close."""
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(str(given).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def did_you_mean(given: Any, choices: Sequence[str]) -> str:
    """ "; did you mean 'relu'?" for the choice closest to `given` (case aside), or ""."""
    close = closest(given, choices)
    return f"; did you mean {close!r}?" if close is not None else ""


# model.kind: a kind in nn/kinds.py, looked up when checked (so one registered later passes; the
# words of the message and --help name the kinds there were at import)
REGISTERED_KIND = Check(lambda v: v in KINDS, "one of " + ", ".join(KINDS), tuple(KINDS))
POSITIVE = Check(lambda v: v > 0, "> 0")
NON_NEGATIVE = Check(lambda v: v >= 0, ">= 0")
FRACTION = Check(lambda v: 0 <= v < 1, "in [0, 1)")
WIDTHS = Check(lambda v: all(w > 0 for w in v), "a list of widths > 0 (empty: no hidden layer)")
DEGREES = Check(lambda v: 0 <= v <= 180, "in [0, 180]")
ELASTIC_ALPHA = Check(lambda v: 0 <= v <= 1000, "in [0, 1000]")
ELASTIC_SIGMA = Check(lambda v: 0 < v <= 100, "in (0, 100]")  # beyond, wider than any image
KEEP_RULES = ("best_val_accuracy", "best_val_loss", "last")  # which epoch's weights a run keeps


@dataclass
class ElasticConfig:
    """Elastic distortions (Simard et al. 2003): each image resampled along a random, smooth
    displacement field (mlpcli/augment.py)."""

    # scales the smoothed noise: each move's spread is about α·Σg²/√3 pixels (1 at α 36, σ 6)
    alpha: float = _option(0.0, ELASTIC_ALPHA)  # 0: off
    sigma: float = _option(4.0, ELASTIC_SIGMA)  # the width (pixels) of the Gaussian smoothing the noise


@dataclass
class AugmentConfig:
    """Random transformations of each training batch (never of validation or test images)."""

    shift: int = _option(2, NON_NEGATIVE)  # translate by up to this many pixels along each axis
    rotate: float = _option(10.0, DEGREES)  # rotate by up to this many degrees either way
    scale: float = _option(0.1, FRACTION)  # scale by a factor in [1 - scale, 1 + scale]
    flip: bool = _option(False)  # mirror left-right half the time (clothes, not digits)
    elastic: ElasticConfig = field(default_factory=ElasticConfig)  # after the moves above


@dataclass
class DataConfig:
    # tfds: its cache or a download (MNIST offline: the copy shipped with mlpcli); idx: the
    # folder data.dir; shipped: the copy of MNIST shipped with mlpcli, never the network
    source: str = _option("tfds", _one_of("tfds", "idx", "shipped"))
    name: str = _option("mnist", _one_of("mnist", "fashion_mnist", "kmnist"))  # tfds dataset
    dir: str | None = _option(None)  # idx: folder of the four IDX files; tfds: cache (tfds default)
    # examples carved from the training set to choose an epoch by; 0: train on all of it
    # (train.keep must then be last: there is nothing to choose by)
    validation: int = _option(5000, NON_NEGATIVE)
    mirror: str | None = _option(None)  # tfds: base URL serving the same files (checksums verified)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    # mlp: dense layers over the image's pixels; rnn: a vanilla RNN reading the image's rows
    # as time steps, its last hidden state read out (nn/rnn.py)
    kind: str = _option("mlp", REGISTERED_KIND)
    # widths of the hidden layers ([]: softmax regression); rnn: [the number of its units]
    hidden: list[int] = _option([512, 512], WIDTHS)
    activation: str = _option("relu", _one_of(*HIDDEN_ACTIVATIONS))  # hidden σ
    output: str = _option("softmax_cross_entropy", _one_of(*OUTPUTS))
    output_activation: str = _option("sigmoid", _one_of(*OUTPUT_ACTIVATIONS))  # mse only
    init: str = _option("he", _one_of("he", "xavier"))  # rnn: of U and V
    recurrent_init: str = _option("orthogonal", _one_of(*RECURRENT_INITS))  # rnn only: of W
    dropout: float = _option(0.2, FRACTION)  # drop probability on hidden activations (rnn: on h^(T))


@dataclass
class TrainConfig:
    epochs: int = _option(60, POSITIVE)
    batch_size: int = _option(128, POSITIVE)
    optimizer: str = _option("adam", _one_of("sgd", "adam"))
    lr: float = _option(0.001, POSITIVE)
    momentum: float = _option(0.9, FRACTION)  # sgd
    nesterov: bool = _option(False)  # sgd
    beta1: float = _option(0.9, FRACTION)  # adam
    beta2: float = _option(0.999, FRACTION)  # adam
    eps: float = _option(1e-8, POSITIVE)  # adam
    weight_decay: float = _option(0.0, NON_NEGATIVE)  # λ: the loss gains (λ/2) Σ‖W‖²
    clip: float = _option(0.0, NON_NEGATIVE)  # rescale a gradient longer than this to this length; 0: off
    schedule: str = _option("cosine", _one_of("constant", "step", "cosine"))
    step_size: int = _option(10, POSITIVE)  # step: epochs between decays
    gamma: float = _option(0.1, POSITIVE)  # step: the factor of each decay
    keep: str = _option("best_val_accuracy", _one_of(*KEEP_RULES))  # which epoch's weights the run keeps
    patience: int = _option(0, NON_NEGATIVE)  # stop after this many epochs without a better one; 0: off
    checkpoint_every: int = _option(1, POSITIVE)  # epochs between checkpoints (resumable state)
    parallel: bool = _option(True)  # the optimizer's passes on two threads (bitwise the same result)
    seed: int = _option(0, NON_NEGATIVE)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at `path`, then each `KEY=VALUE` override."""
    raw = read_yaml(path) if path is not None else {}
    if "space" in raw:
        raise ConfigError(
            f"{path} is a sweep spec (it has a space to search), not a config: mlp sweep {path}"
        )
    return with_overrides(raw, overrides)


def with_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> Config:
    """The config of the nested mapping `raw` (left unchanged) with each `KEY=VALUE` applied."""
    return from_dict(with_values(raw, map(parse_override, overrides)))


def with_values(raw: dict[str, Any], values: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of the nested mapping `raw` with each dotted key set to its value, in order."""
    raw = copy.deepcopy(raw)
    for key, value in values:
        set_dotted(raw, key, value)
    return raw


YAML_LIMIT = 10**6  # bytes: the most read of a config or sweep spec (they are ~1 KB)


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Read a YAML mapping with `yaml.safe_load`; anything else is a ConfigError that calls
    the file `what` it is (a config, a sweep spec). Read up to YAML_LIMIT bytes and no more,
    from whatever `path` is (a link, or a pipe: `--config <(…)`)."""
    try:
        with open(path, "rb") as f:
            data = f.read(YAML_LIMIT + 1)
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from None
    if len(data) > YAML_LIMIT:
        raise ConfigError(
            f"{what} {path} is larger than the {YAML_LIMIT // 10**6} MB mlpcli reads of a {what}"
        )
    try:
        return yaml_mapping(data.decode("utf-8"), path, what)
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from None
    except (RecursionError, MemoryError) as e:
        raise ConfigError(f"{what} {path} is unreadable ({exhausted(e)})") from None


def yaml_mapping(text: str, source: str | Path, what: str = "config") -> dict[str, Any]:
    """The YAML mapping `text` (of the file `source`, a `what`); anything else is a
    ConfigError. A document nested deeper than Python's stack goes raises RecursionError,
    left to the caller to say whose file it is."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {source} is not valid YAML: {_yaml_problem(e, lines=True)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {source} must be a mapping of sections, not {_kind(raw)}")
    return raw


def exhausted(error: RecursionError | MemoryError) -> str:
    """What a document made to exhaust its parser did, in words (JSON or YAML nested past
    Python's recursion limit, or larger than memory once parsed)."""
    return "nested too deeply" if isinstance(error, RecursionError) else "too large to hold in memory"


def parse_override(item: str) -> tuple[str, Any]:
    """`model.hidden=[256,128]` → ("model.hidden", [256, 128]); values are YAML scalars/lists."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. train.epochs=3)")
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not YAML ({_yaml_problem(e)})") from None


def _yaml_problem(error: yaml.YAMLError, lines: bool = False) -> str:
    """What PyYAML found wrong, on one line, and where: "expected ',' or ']', but got '<stream
    end>' at character 5" (an override is one line), or with `lines`, "line 3, column 7: …"
    (PyYAML's own text names the stream, not the file)."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return problem
    if not lines:
        return f"{problem} at character {mark.column + 1}"
    context = getattr(error, "context", None)  # "while parsing a block mapping"
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `section.name` (or `section.subsection.name`) in the nested mapping `raw`."""
    *path, name = key.split(".")
    if not path or not all(path) or not name:
        by_name: dict[str, list[str]] = {}  # "epochs": ["train.epochs"]
        for dotted in flat_items(Config()):
            by_name.setdefault(dotted.rsplit(".", 1)[-1], []).append(dotted)
        near = closest(name or key, list(by_name))
        hint = f"; did you mean {' or '.join(by_name[near])}?" if near else ""
        raise ConfigError(f"override key {key!r} must be SECTION.NAME, e.g. train.lr{hint}")
    target = raw
    for depth, part in enumerate(path, start=1):
        if target.get(part) is None:  # absent, or left empty in the YAML: all defaults
            target[part] = {}
        target = target[part]
        if not isinstance(target, dict):
            where = ".".join(path[:depth])
            raise ConfigError(
                f"override {key!r}: {where} is a key with a value ({_show(target)}), not a section"
            )
    target[name] = value


def from_dict(raw: dict[str, Any]) -> Config:
    """Build a checked Config from nested mappings; unknown keys and bad values raise."""
    return _section(Config, raw, "")


def _section(cls: type, values: Any, name: str) -> Any:
    """The dataclass `cls` from the mapping `values` (None: all defaults), each key checked;
    a field that is itself a dataclass is a nested section. `name`: its dotted name ("" for
    the whole config, whose mapping read_yaml has checked)."""
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigError(f"config section {name!r} must be a mapping, not {_kind(values)}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    _reject_unknown(values, known, f"section {name!r}" if name else "top level")
    checked = {}
    for key, value in values.items():
        dotted, spec = f"{name}.{key}".lstrip("."), known[key]
        is_section = dataclasses.is_dataclass(spec.type)
        checked[key] = _section(spec.type, value, dotted) if is_section else _checked(dotted, value, spec)
    return cls(**checked)


def flat_items(section: Any, prefix: str = "") -> dict[str, Any]:
    """Every key of a config (or of one of its sections) by its dotted name: {"train.lr": 0.001, …}."""
    items = {}
    for spec in dataclasses.fields(section):
        value, dotted = getattr(section, spec.name), f"{prefix}{spec.name}"
        items |= flat_items(value, dotted + ".") if dataclasses.is_dataclass(value) else {dotted: value}
    return items


def _reject_unknown(values: dict[Any, Any], allowed: dict[str, Any], where: str) -> None:
    for key in values:
        if key not in allowed:
            hint = did_you_mean(key, list(allowed))
            raise ConfigError(
                f"unknown config key {_show(key)} at {where}; allowed: {', '.join(allowed)}{hint}"
            )


def _checked(key: str, value: Any, spec: dataclasses.Field) -> Any:
    value = _typed(key, value, spec.type)
    check = spec.metadata["check"]
    if value is not None and check is not None and not check.holds(value):
        hint = did_you_mean(value, check.choices) if check.choices else ""
        raise ConfigError(f"{key} = {_show(value)} is out of range: it must be {check.must_be}{hint}")
    return value


def _typed(key: str, value: Any, annotation: Any) -> Any:
    """Check `value` against the field's type; ints stand for floats, '1e-3' too."""
    if isinstance(annotation, types.UnionType) or get_origin(annotation) is Union:
        if value is None:
            return None
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if not isinstance(value, list):
            hint = f"; did you mean [{value}]?" if type(value) is item else ""  # model.hidden=128
            raise ConfigError(f"{key} = {_show(value)} must be a list of {item.__name__}{hint}")
        return [_typed(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if annotation is float:
        return _as_float(key, value)
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (str, bool) and isinstance(value, annotation):
        return value
    raise ConfigError(f"{key} = {_show(value)} must be {annotation.__name__}, not {_kind(value)}")


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key} = {_show(value)} must be a number, not a boolean")
    try:
        number = float(value)  # YAML 1.1 reads 1e-3 as a string: accept it as the number
    except (TypeError, ValueError):
        raise ConfigError(f"{key} = {_show(value)} must be a number, not {_kind(value)}") from None
    except OverflowError:
        raise ConfigError(f"{key} = {_show(value)} is too large for a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key} = {_show(value)} must be a finite number")
    return number


def _show(value: Any) -> str:
    """The value as a message shows it: short even when YAML aliases nest it enormously."""
    return _SHORT.repr(value)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 6, 4, 60, 60


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def save_config(config: Config) -> str:
    """The resolved config as YAML text, readable back by `load_config`."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
