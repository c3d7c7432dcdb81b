"""Property tests: whatever bytes or mappings come in, the only outcomes are a valid result
or the project's own error, never another exception."""

import gzip
import io
import os

import numpy as np
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlpcli.artifacts import Saved, load_weights, save_weights
from mlpcli.config import Config, flat_items, from_dict, save_config
from mlpcli.data import Normalisation, read_idx
from mlpcli.errors import ConfigError, DataError, WeightsError
from mlpcli.nn.mlp import MLP

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", 300))  # more for a longer hunt
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """`valid` with bytes flipped, cut off, inserted or deleted."""
    position = st.integers(0, len(valid) - 1)
    flip = st.tuples(position, st.integers(1, 255)).map(
        lambda pv: valid[: pv[0]] + bytes([valid[pv[0]] ^ pv[1]]) + valid[pv[0] + 1 :]
    )
    cut = position.map(lambda p: valid[:p])
    insert = st.tuples(position, st.binary(min_size=1, max_size=8)).map(
        lambda pb: valid[: pb[0]] + pb[1] + valid[pb[0] :]
    )
    delete = st.tuples(position, st.integers(1, 16)).map(lambda pn: valid[: pn[0]] + valid[pn[0] + pn[1] :])
    return st.one_of(flip, cut, insert, delete)


def valid_idx() -> bytes:
    buffer = io.BytesIO()
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    buffer.write(bytes([0, 0, 8, 3]) + np.array(array.shape, ">u4").tobytes() + array.tobytes())
    return buffer.getvalue()


IDX = valid_idx()


@SETTINGS
@given(st.one_of(st.binary(max_size=200), mutated(IDX), mutated(gzip.compress(IDX)).map(bytes)))
def test_idx_reader_returns_an_array_or_a_data_error(tmp_path, content):
    path = tmp_path / "file.idx"
    path.write_bytes(content)
    try:
        array = read_idx(path)
    except DataError:
        return
    raw = gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    assert array.dtype == np.uint8 and header + array.tobytes() == raw  # exactly the file's content


def valid_weights(tmp_path_factory) -> bytes:
    model = MLP([4, 3, 10])
    model.init(np.random.default_rng(0))
    path = tmp_path_factory.mktemp("w") / "weights.npz"
    save_weights(path, Saved(model, Normalisation(1.0, 2.0), "mnist"))
    return path.read_bytes()


@SETTINGS
@given(data=st.data())
def test_weights_loader_returns_a_model_or_a_weights_error(tmp_path, tmp_path_factory, data):
    valid = WEIGHTS.setdefault("bytes", valid_weights(tmp_path_factory))
    content = data.draw(st.one_of(st.binary(max_size=300), mutated(valid)))
    path = tmp_path / "weights.npz"
    path.write_bytes(content)
    try:
        saved = load_weights(path)
    except WeightsError:
        return
    assert np.isfinite(saved.model.params).all() and saved.norm.std > 0


WEIGHTS: dict[str, bytes] = {}

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = {section: list(Config().to_dict()[section]) for section in ("data", "model", "train")}


def section(name: str) -> st.SearchStrategy:
    keys = st.one_of(st.sampled_from(FIELDS[name]), st.text(max_size=8))
    return st.one_of(st.dictionaries(keys, values, max_size=5), values)


mappings = st.fixed_dictionaries(
    {}, optional={"data": section("data"), "model": section("model"), "train": section("train")}
) | st.dictionaries(st.text(max_size=8), values, max_size=3)


@SETTINGS
@given(mappings)
@example({"train": {"lr": 10**400}})  # too large for a float
@example({"train": 0})  # a falsy section is not an empty one
@example({"model": {"hidden": [[1, 2]] * 5}})
@example({"data": {"augment": {"rotate": 5}, "validation": 10}, "train": {"lr": "1e-3"}, "model": None})
def test_config_loader_returns_a_config_or_a_config_error(raw):
    try:
        config = from_dict(raw)
    except ConfigError as e:
        assert len(str(e)) < 1000
        return
    assert from_dict(yaml.safe_load(save_config(config))) == config  # what is saved reads back the same
    kept = flat_items(config)
    for key, value in given(raw).items():  # every key given is kept, as given (ints standing for floats)
        assert kept[key] == value or (isinstance(value, str) and kept[key] == float(value)), key


def given(raw: dict, prefix: str = "") -> dict[str, object]:
    """The keys a valid raw config sets, by dotted name (a section left empty sets none)."""
    items = {}
    for key, value in raw.items():
        if isinstance(value, dict) or (value is None and f"{prefix}{key}" in SECTIONS):
            items |= given(value or {}, f"{prefix}{key}.")
        else:
            items[f"{prefix}{key}"] = value
    return items


SECTIONS = {"data", "model", "train", "data.augment"}
