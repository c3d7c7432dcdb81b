"""Committees (`mlp eval RUN RUN …`, `mlp predict RUN RUN … IMAGE`): real runs trained on real
MNIST answer the mean of their probabilities, computed here from each member's own forward
pass; a committee of identical members is its member; members that answer no probabilities or
differ in what they learnt, answer or read are refused by name, with nothing written; a
committee never writes over a run; runs and images are told apart."""

import json
import shutil

import numpy as np
import pytest
from conftest import TINY, mlp
from test_backprop import runs_dir  # the runs: MLPs of each activation, an mse one, an RNN
from test_predict import as_drawn

from mlpcli import artifacts
from mlpcli.artifacts import load_weights, save_weights
from mlpcli.data import DataConfig, load_split
from mlpcli.evaluate import _claimed
from mlpcli.nn.mlp import MLP

__all__ = ["runs_dir"]  # a fixture
SAME_EVERYWHERE = ["accuracy", "top3_accuracy", "confusion_matrix", "per_class", "mistakes", "macro_f1"]


@pytest.fixture(scope="module")
def test_split(mnist_dir):
    return load_split(DataConfig(source="idx", dir=str(mnist_dir)), "test")


def scores_of(run, pixels: np.ndarray) -> np.ndarray:
    saved = load_weights(run / "weights.npz")
    return saved.model.output.scores(saved.model.forward(saved.norm.apply(pixels)))


def evaluated(*args) -> dict:
    result = mlp("eval", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_committee_of_identical_members_is_its_member(runs_dir, tmp_path):
    twin, triplet = tmp_path / "relu-copy", tmp_path / "relu-copy-2"
    shutil.copytree(runs_dir / "relu", twin)
    shutil.copytree(runs_dir / "relu", triplet)
    alone = evaluated(runs_dir / "relu")
    committee = evaluated(runs_dir / "relu", twin, triplet, "--out", tmp_path / "c")
    for key in SAME_EVERYWHERE:
        assert committee[key] == alone[key], key
    assert committee["loss"] == pytest.approx(alone["loss"], rel=1e-5)  # -log p̄_y, summed otherwise
    assert [m["run"] for m in committee["committee"]] == [
        str(runs_dir / "relu"),
        str(twin),
        str(triplet),
    ]
    assert all(m["accuracy"] == alone["accuracy"] for m in committee["committee"])


def test_a_committee_answers_the_mean_of_its_members_probabilities(runs_dir, test_split, tmp_path):
    names = ["relu", "sigmoid", "tanh", "rnn"]  # an RNN reads the same 784 pixels, as 28 rows
    members = [runs_dir / name for name in names]
    result = mlp("eval", *members, "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    assert "a committee of 4 on the mnist test split (10000 examples)" in result.output
    report = json.loads((tmp_path / "c" / "eval.json").read_text())
    member_scores = [scores_of(run, test_split.images) for run in members]
    mean = np.mean(np.array(member_scores, dtype=np.float64), axis=0)
    labels = test_split.labels
    assert report["accuracy"] == np.mean(mean.argmax(axis=1) == labels)
    assert report["loss"] == pytest.approx(-np.mean(np.log(mean[np.arange(len(labels)), labels])), rel=1e-6)
    wrong = np.flatnonzero(mean.argmax(axis=1) != labels)
    assert sorted(report["mistakes"]) == wrong.tolist()
    for member, scores, name in zip(report["committee"], member_scores, names):
        assert member["accuracy"] == np.mean(scores.argmax(axis=1) == labels)
        assert member["accuracy"] == evaluated(runs_dir / name)["accuracy"]
        assert f"accuracy {member['accuracy']:.4f}" in result.output
    assert {p.name for p in (tmp_path / "c").iterdir()} == {"eval.json", "confusion.png", "mistakes.png"}


def test_the_pictures_say_committee_of_n(runs_dir, tmp_path, monkeypatch):
    titles = []
    save = artifacts.save_figure
    monkeypatch.setattr(
        artifacts,
        "save_figure",
        lambda path, figure: titles.append(figure._suptitle.get_text()) or save(path, figure),
    )
    assert mlp("eval", runs_dir / "relu", runs_dir / "tanh", "--out", tmp_path / "c").exit_code == 0
    assert len(titles) == 2 and all(title.startswith("committee of 2, mnist test:") for title in titles)


def refused(result, *said: str) -> None:
    assert result.exit_code == 1, result.output
    for words in said:
        assert words in result.output


def test_members_that_learnt_another_dataset_are_refused_by_name(runs_dir, tmp_path):
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    saved = load_weights(runs_dir / "relu" / "weights.npz")
    save_weights(fashion / "weights.npz", artifacts.Saved(saved.model, saved.norm, "fashion_mnist"))
    result = mlp("eval", runs_dir / "relu", fashion, "--out", tmp_path / "c")
    refused(result, f"{fashion} learnt fashion_mnist, but {runs_dir / 'relu'} learnt mnist")
    assert not (tmp_path / "c").exists()


def test_members_that_answer_otherwise_or_read_other_images_are_refused_by_name(
    runs_dir, idx_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # where a default committees/ folder would appear
    relu = runs_dir / "relu"
    five = tmp_path / "five-classes"
    five.mkdir()
    saved = load_weights(relu / "weights.npz")
    save_weights(five / "weights.npz", artifacts.Saved(MLP([784, 16, 5]), saved.norm, "mnist"))
    refused(
        mlp("eval", relu, five, "--out", tmp_path / "c"), f"{five} answers 5 classes, but {relu} answers 10"
    )
    refused(mlp("eval", relu, runs_dir / "mse"), f"{runs_dir / 'mse'} answers mse scores, not probabilities")
    small = tmp_path / "eight-by-eight"
    assert mlp("train", "--config", TINY, "--set", f"data.dir={idx_dir}", "--out", small).exit_code == 0
    refused(
        mlp("eval", relu, small), f"{small} reads images of 64 pixels, but {relu} reads images of 784 pixels"
    )
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob("committees"))


def test_a_committee_writes_over_no_run_and_replaces_only_its_own_evaluation(runs_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs_dir / "relu", run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = mlp("eval", runs_dir / "tanh", runs_dir / "sigmoid", "--out", run)
    refused(result, f"{run} holds files that are not a committee's evaluation")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    out = tmp_path / "c"
    assert mlp("eval", runs_dir / "tanh", runs_dir / "sigmoid", "--out", out).exit_code == 0
    again = mlp(
        "eval", runs_dir / "tanh", runs_dir / "relu", "--out", out
    )  # an earlier committee's: replaced
    assert again.exit_code == 0, again.output
    assert json.loads((out / "eval.json").read_text())["committee"][1]["run"] == str(runs_dir / "relu")


def test_a_committee_goes_to_committees_by_default(runs_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = mlp("eval", runs_dir / "tanh", runs_dir / "sigmoid")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "committees").iterdir()
    assert folder.name.startswith("mnist-") and f"wrote committees/{folder.name}/eval.json" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "validation"], "a committee is evaluated on the test split only"),
        (["--split", "train"], "each member's train split is its own"),
    ],
)
def test_a_committee_on_a_run_s_own_split_is_a_usage_error(runs_dir, args, message):
    result = mlp("eval", runs_dir / "tanh", runs_dir / "relu", *args)
    assert result.exit_code == 2 and message in result.output


def test_out_is_for_committees(runs_dir, tmp_path):
    result = mlp("eval", runs_dir / "tanh", "--out", tmp_path / "c")
    assert result.exit_code == 2 and "--out is for a committee" in result.output
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def drawings(test_split, tmp_path_factory):
    """Four real test digits drawn large as a person would, in a folder."""
    folder = tmp_path_factory.mktemp("drawings")
    for i in range(4):
        as_drawn(test_split.images[i].reshape(28, 28), seed=i).save(folder / f"digit{i}.png")
    return folder


def predicted(*args) -> list[dict]:
    result = mlp("predict", *args, "--json", "--top", "10")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_predict_with_a_committee_answers_the_mean_of_its_members(runs_dir, drawings):
    members = [runs_dir / name for name in ("relu", "tanh", "rnn")]
    together = predicted(*members, drawings)
    alone = [predicted(member, drawings) for member in members]
    assert [p["image"] for p in together] == [str(drawings / f"digit{i}.png") for i in range(4)]
    for i, image in enumerate(together):
        expected = np.zeros(10)
        for answers in alone:
            for entry in answers[i]["predictions"]:
                expected[entry["class"]] += entry["probability"] / len(members)
        found = {entry["class"]: entry["probability"] for entry in image["predictions"]}
        np.testing.assert_allclose([found[k] for k in range(10)], expected, rtol=1e-6)
        assert image["predictions"][0]["class"] == int(expected.argmax())
    said = mlp("predict", *members, drawings / "digit0.png")
    assert said.exit_code == 0
    assert said.stderr.startswith(f"a committee of 3: {members[0]}, {members[1]}")  # not among the answers
    assert said.stdout.startswith(f"{drawings / 'digit0.png'}: ")


def test_predict_tells_runs_from_folders_of_images(runs_dir, drawings, tmp_path):
    assert len(predicted(runs_dir / "relu", drawings)) == 4  # a folder of images, not a second run
    shutil.copytree(runs_dir / "relu", tmp_path / "twin")
    same = predicted(runs_dir / "relu", tmp_path / "twin", drawings / "digit1.png")
    assert same == predicted(runs_dir / "relu", drawings / "digit1.png")


def test_predict_refuses_mismatched_members_by_name(runs_dir, drawings):
    result = mlp("predict", runs_dir / "relu", runs_dir / "mse", drawings / "digit0.png")
    refused(result, f"{runs_dir / 'mse'} answers mse scores")


def test_an_8x8_run_is_refused_by_predict_before_the_committee_is_checked(
    idx_dir, tmp_path, drawings, runs_dir
):
    small = tmp_path / "small"
    assert mlp("train", "--config", TINY, "--set", f"data.dir={idx_dir}", "--out", small).exit_code == 0
    refused(
        mlp("predict", runs_dir / "relu", small, drawings / "digit0.png"),
        f"{small}: the model takes 64 inputs",
    )


def test_runs_named_after_the_images_or_mistyped_are_said(runs_dir, drawings, tmp_path):
    late = mlp("predict", runs_dir / "relu", drawings / "digit0.png", runs_dir / "tanh")
    assert late.exit_code == 2 and f"{runs_dir / 'tanh'}: name the runs first, then the images" in late.output
    typo = mlp("predict", runs_dir / "relu", runs_dir / "tahn", drawings / "digit0.png")
    refused(
        typo, f"{runs_dir / 'tahn'}: no such run directory or weights file; did you mean {runs_dir / 'tanh'}?"
    )
    young = tmp_path / "first-epoch"  # a run still in its first epoch: its config, no weights
    young.mkdir()
    shutil.copy(runs_dir / "relu" / "config.yaml", young)
    refused(
        mlp("predict", runs_dir / "relu", young, drawings / "digit0.png"), "the run has no weights.npz yet"
    )
    missing_image = mlp("predict", runs_dir / "relu", tmp_path / "nothing.png")
    assert missing_image.exit_code == 1 and "nothing.png" in missing_image.output  # an image, unreadable


def test_a_default_committee_folder_is_claimed_at_once_and_a_taken_one_gets_a_number(tmp_path):
    folder = tmp_path / "committees" / "mnist-20261204-100000"
    assert _claimed(folder) == folder and folder.is_dir()  # made now: a second committee sees it taken
    assert _claimed(folder) == tmp_path / "committees" / "mnist-20261204-100000-2"
    assert _claimed(folder) == tmp_path / "committees" / "mnist-20261204-100000-3"
    assert sorted(p.name for p in folder.parent.iterdir()) == [
        "mnist-20261204-100000",
        "mnist-20261204-100000-2",
        "mnist-20261204-100000-3",
    ]


def test_a_member_named_twice_is_refused(runs_dir, drawings, tmp_path, monkeypatch):
    relu = runs_dir / "relu"
    for command in (
        ("eval", relu, runs_dir / "tanh", relu, "--out", tmp_path / "c"),
        ("predict", relu, relu, drawings),
    ):
        refused(
            mlp(*command),
            f"{relu} is named twice: a committee's members are different runs",
            "--set train.seed=1",
        )
    assert not (tmp_path / "c").exists()
    monkeypatch.chdir(runs_dir)
    refused(mlp("eval", relu, "relu", "--out", tmp_path / "c"), f"relu is named twice (also as {relu})")


def test_eval_of_an_image_points_to_predict(runs_dir, drawings):
    result = mlp("eval", runs_dir / "relu", drawings / "digit0.png")
    assert result.exit_code == 2
    assert f"to classify images: mlp predict RUN {drawings / 'digit0.png'}" in result.output
