from pathlib import Path

import pytest

from mlpcli.config import Config, load_config, save_config
from mlpcli.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_mnist_yaml_spells_out_the_defaults():
    assert load_config(CONFIGS / "mnist.yaml") == Config()
    assert Config().model.hidden == [512, 512] and Config().data.name == "mnist"


@pytest.mark.parametrize("name", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load(name):
    assert isinstance(load_config(CONFIGS / name), Config)


def test_overrides_are_yaml_and_beat_the_file(tmp_path):
    path = write(tmp_path, "train: {epochs: 7, lr: 0.1}\n")
    config = load_config(
        path, ["model.hidden=[256,128]", "train.epochs=3", "data.dir=/x", "train.nesterov=true"]
    )
    assert config.model.hidden == [256, 128]
    assert config.train.epochs == 3 and config.train.lr == 0.1
    assert config.data.dir == "/x" and config.train.nesterov is True


def test_nested_sections_take_overrides_even_when_left_empty(tmp_path):
    for text in ("data:\n  augment:\n", "data:\n", ""):
        config = load_config(write(tmp_path, text), ["data.augment.shift=0", "data.augment.flip=true"])
        assert config.data.augment.shift == 0 and config.data.augment.flip is True
        assert config.data.augment.rotate == Config().data.augment.rotate  # the rest: defaults


def test_saved_config_loads_back_to_the_same(tmp_path):
    config = load_config(None, ["model.hidden=[64]", "train.lr=0.01"])
    assert load_config(write(tmp_path, save_config(config))) == config


def test_numbers_in_exponent_form_and_ints_are_floats():
    config = load_config(None, ["train.lr=1e-3", "train.weight_decay=0"])
    assert config.train.lr == 0.001 and isinstance(config.train.weight_decay, float)


def test_empty_file_means_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("colour: red\n", [], "unknown config key 'colour' at top level; allowed: data, model, train"),
        ("model: {layers: 3}\n", [], "unknown config key 'layers' at section 'model'; allowed: kind, hidden"),
        ("", ["train.epochs=three"], "train.epochs = 'three' must be int, not str"),
        ("", ["train.epochs=2.5"], "train.epochs = 2.5 must be int, not float"),
        ("", ["train.epochs=true"], "train.epochs = True must be int, not bool"),
        ("", ["train.epochs=0"], "train.epochs = 0 is out of range: it must be > 0"),
        ("", ["train.lr=-0.1"], "train.lr = -0.1 is out of range: it must be > 0"),
        ("", ["train.lr=fast"], "train.lr = 'fast' must be a number, not str"),
        ("", ["train.lr=.nan"], "must be a finite number"),
        (
            "",
            ["model.hidden=[64,0]"],
            "model.hidden = [64, 0] is out of range: it must be a list of widths > 0",
        ),
        ("", ["model.hidden=64"], "model.hidden = 64 must be a list of int"),
        ("", ["model.hidden=[64,x]"], "model.hidden[1] = 'x' must be int"),
        ("", ["model.activation=gelu"], "model.activation = 'gelu' is out of range: it must be one of relu,"),
        ("", ["model.dropout=1"], "model.dropout = 1.0 is out of range: it must be in [0, 1)"),
        ("", ["train.nesterov=yes please"], "train.nesterov = 'yes please' must be bool"),
        (
            "",
            ["data.augment.elastic.alpha=-1"],
            "data.augment.elastic.alpha = -1.0 is out of range: it must be in [0, 1000]",
        ),
        ("", ["data.augment.elastic.alpha=1e300"], "data.augment.elastic.alpha = 1e+300 is out of range"),
        (
            "",
            ["data.augment.elastic.sigma=0"],
            "data.augment.elastic.sigma = 0.0 is out of range: it must be in (0, 100]",
        ),
        ("", ["data.augment.elastic.sigma=1e9"], "data.augment.elastic.sigma = 1000000000.0 is out of range"),
        ("", ["data.augment.elastic=3"], "config section 'data.augment.elastic' must be a mapping, not int"),
        (
            "data: {augment: {elastic: {alpa: 3}}}\n",
            [],
            "unknown config key 'alpa' at section 'data.augment.elastic'; allowed: alpha, sigma; did you"
            " mean 'alpha'?",
        ),
        ("model: [1, 2]\n", [], "config section 'model' must be a mapping, not list"),
        ("- a\n- b\n", [], "must be a mapping of sections, not list"),
        ("train: {epochs: [\n", [], "is not valid YAML"),
        ("", ["epochs=3"], "override key 'epochs' must be SECTION.NAME"),
        ("", ["train.epochs"], "override 'train.epochs' is not KEY=VALUE"),
        ("", ["train.x.y=1"], "unknown config key 'x' at section 'train'"),
        ("", ["train.lr=[1"], "override 'train.lr=[1': the value is not YAML (expected ',' or ']', but got"),
    ],
)
def test_bad_configs_name_the_key_and_value(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), overrides)
    assert message in str(error.value)


def test_a_directory_or_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_is_read_safely(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "train: !!python/object/apply:os.system ['true']\n"))


@pytest.mark.parametrize("item", ["model.hidden=[1,2", 'data.dir="abc', "model.hidden={a: [1}"])
def test_an_override_that_is_not_yaml_is_said_in_one_line(item):
    with pytest.raises(ConfigError) as error:
        load_config(None, [item])
    assert str(error.value).startswith(f"override {item!r}: the value is not YAML (") and "\n" not in str(
        error.value
    )
