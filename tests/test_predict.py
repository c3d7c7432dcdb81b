"""mlp predict on real MNIST test digits drawn the way people draw or photograph them:
enlarged, dark ink on light paper, off centre, with a margin; and on images with nothing to
classify, which get a one-line error each while the others are still classified."""

import json

import numpy as np
import pytest
from conftest import ROOT, TINY, mlp
from PIL import Image, ImageDraw

from mlpcli.artifacts import load_weights
from mlpcli.data import DataConfig, load_split
from mlpcli.errors import ImageError
from mlpcli.images import read_image, stroke_width, to_mnist


@pytest.fixture(scope="module")
def mnist_run(mnist_dir, tmp_path_factory):
    """A small net trained in the test on the real MNIST."""
    out = tmp_path_factory.mktemp("predict") / "run"
    sets = ["data.source=idx", f"data.dir={mnist_dir}", "model.hidden=[256]", "train.epochs=3"]
    result = mlp("train", "--out", out, *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def digits(mnist_dir):
    test = load_split(DataConfig(source="idx", dir=str(mnist_dir)), "test")
    return test.images[:60].reshape(-1, 28, 28), test.labels[:60]


def as_drawn(digit: np.ndarray, seed: int) -> Image.Image:
    """The digit as a person might draw it: 6-9 times larger, dark on a light grey page, somewhere
    off centre on a larger sheet."""
    rng = np.random.default_rng(seed)
    side = int(rng.integers(170, 250))
    ink = Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BICUBIC)
    sheet = Image.new("L", (side + int(rng.integers(60, 200)), side + int(rng.integers(60, 200))), 235)
    left, top = int(rng.integers(0, sheet.width - side)), int(rng.integers(0, sheet.height - side))
    sheet.paste(ink.point(lambda v: min(v, 235)), (left, top))  # the page's grey shows around the ink
    return sheet.convert("RGB")


def aligned_correlation(seen: np.ndarray, digit: np.ndarray) -> float:
    """The correlation of two 28×28 images, the best over shifts of up to one pixel (the centre
    of mass is rounded to a whole pixel, so the two may differ by one)."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return max(np.corrcoef(np.roll(seen, s, (0, 1)).ravel(), digit.ravel())[0, 1] for s in shifts)


def test_preprocessing_recovers_mnist_form(digits, tmp_path):
    images, _ = digits
    correlations = []
    for i, digit in enumerate(images[:30]):
        path = tmp_path / f"{i}.png"
        as_drawn(digit, i).save(path)
        seen = to_mnist(read_image(path)).astype(float)
        assert seen.shape == (28, 28) and seen.max() > 200
        correlations.append(aligned_correlation(seen, digit.astype(float)))
    assert min(correlations) > 0.8 and np.median(correlations) > 0.95


def test_drawn_digits_are_classified_as_their_labels(mnist_run, digits, tmp_path):
    images, labels = digits
    paths = []
    for i, digit in enumerate(images):
        path = tmp_path / f"digit-{i}.{'jpg' if i % 3 == 0 else 'png'}"
        as_drawn(digit, i).save(path)
        paths.append(path)
    result = mlp("predict", mnist_run, *paths, "--json", "--save-input", tmp_path / "seen")
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)
    said = np.array([answer["predictions"][0]["class"] for answer in answers])
    assert np.mean(said == labels) >= 0.9  # the model's own test accuracy is about 0.97
    first = answers[0]["predictions"]
    assert len(first) == 3 and sum(p["probability"] for p in first) <= 1 + 1e-6
    assert [p["probability"] for p in first] == sorted((p["probability"] for p in first), reverse=True)
    with Image.open(tmp_path / "seen" / "digit-0.28x28.png") as seen:
        assert seen.size == (28, 28)


def test_saved_inputs_of_images_with_the_same_name_are_all_kept(mnist_run, digits, tmp_path):
    images, _ = digits
    for folder, digit in (("a", images[0]), ("b", images[1])):
        (tmp_path / folder).mkdir()
        as_drawn(digit, 0).save(tmp_path / folder / "digit.png")
    paths = [tmp_path / "a" / "digit.png", tmp_path / "b" / "digit.png"]
    assert mlp("predict", mnist_run, *paths, "--save-input", tmp_path / "seen").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == ["digit-2.28x28.png", "digit.28x28.png"]


def test_light_ink_on_dark_is_read_as_it_is(mnist_run, digits, tmp_path):
    images, labels = digits
    big = Image.fromarray(images[1]).resize((140, 140), Image.Resampling.BICUBIC)
    big.save(tmp_path / "light.png")
    result = mlp("predict", mnist_run, tmp_path / "light.png")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{tmp_path / 'light.png'}: {labels[1]} ")


def test_bad_images_get_an_error_each_and_the_rest_are_classified(mnist_run, digits, tmp_path):
    images, labels = digits
    as_drawn(images[0], 0).save(tmp_path / "good.png")
    Image.new("L", (100, 80), 250).save(tmp_path / "blank.png")
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "folder").mkdir()
    paths = [tmp_path / name for name in ("blank.png", "good.png", "notes.png", "folder", "missing.png")]
    result = mlp("predict", mnist_run, *paths)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"Error: {tmp_path / 'blank.png'}: no digit found" in lines[0]
    assert lines[1].startswith(f"{tmp_path / 'good.png'}: {labels[0]} ")
    assert f"{tmp_path / 'notes.png'}: not an image Pillow can read" in result.output
    assert f"{tmp_path / 'folder'}: is a directory, not an image" in result.output
    assert f"{tmp_path / 'missing.png'}: no such file" in result.output
    assert len(lines) == 5 and "Traceback" not in result.output


def test_a_run_without_images_or_more_classes_than_it_has(mnist_run):
    result = mlp("predict", mnist_run)
    assert result.exit_code == 2, result.output
    assert "Missing argument 'IMAGE...': name the images to classify" in result.output
    result = mlp("predict", mnist_run, ROOT / "docs" / "three.png", "--top", "20")
    assert result.exit_code == 0 and len(result.output.split("   ")) == 10  # all ten classes, no more


def test_predict_needs_weights(tmp_path):
    Image.new("L", (10, 10)).save(tmp_path / "x.png")
    result = mlp("predict", tmp_path, tmp_path / "x.png")
    assert result.exit_code == 1 and "is not a run directory" in result.output
    result = mlp("predict", tmp_path / "model.npz", tmp_path / "x.png")
    assert result.exit_code == 1 and "model.npz: no such run directory or weights file" in result.output
    result = mlp("predict", tmp_path / "x.png")  # the run left out
    assert result.exit_code == 1 and "x.png is an image, not a run: name the run directory" in result.output


def ink_of(image: Image.Image, tmp_path, name: str = "x.png") -> np.ndarray:
    image.save(tmp_path / name)
    return to_mnist(read_image(tmp_path / name))


def test_a_thin_pen_line_on_a_large_photo_stays_visible(tmp_path):
    page = Image.new("L", (1000, 1000), 255)
    ImageDraw.Draw(page).ellipse((300, 200, 700, 800), outline=0, width=1)  # a 1-pixel "0"
    seen = ink_of(page, tmp_path)
    assert seen.max() == 255 and np.count_nonzero(seen > 100) > 30


def test_dark_ink_on_dim_paper_and_sixteen_bit_images(tmp_path):
    dim = Image.new("L", (300, 300), 120)
    ImageDraw.Draw(dim).line((150, 40, 150, 260), fill=30, width=20)  # a "1" on grey paper
    assert np.count_nonzero(ink_of(dim, tmp_path) > 100) > 20
    wide = np.full((200, 200), 1000, np.uint16)
    wide[50:150, 95:105] = 33767  # light ink, 16 bits per pixel
    seen = ink_of(Image.fromarray(wide), tmp_path, "wide.png")
    assert seen.max() == 255 and np.count_nonzero(seen > 100) > 20


def test_ink_too_sparse_to_keep_is_an_error_not_a_crash(tmp_path):
    sheet = Image.new("L", (12000, 48), 255)
    for left in (0, 11988):  # two specks 12,000 pixels apart, each a pixel once the sheet is reduced
        sheet.paste(0, (left, 24, left + 12, 36))
    with pytest.raises(ImageError, match="too thin or sparse"):
        ink_of(sheet, tmp_path)


def pen_drawing(digit: int, size: int, width: int) -> Image.Image:
    """A digit drawn with a pen `width` pixels wide on a white page `size` pixels square."""
    page = Image.new("L", (size, size), 255)
    draw, u = ImageDraw.Draw(page), size / 400
    if digit == 7:
        draw.line([(120 * u, 80 * u), (300 * u, 80 * u), (170 * u, 340 * u)], fill=0, width=width)
    elif digit == 0:
        draw.ellipse((130 * u, 60 * u, 270 * u, 340 * u), outline=0, width=width)
    elif digit == 1:
        draw.line([(200 * u, 60 * u), (210 * u, 340 * u)], fill=0, width=width)
    else:  # 3
        draw.arc((130 * u, 50 * u, 270 * u, 200 * u), -150, 90, fill=0, width=width)
        draw.arc((120 * u, 190 * u, 280 * u, 350 * u), -90, 150, fill=0, width=width)
    return page


PENS = [(400, 6), (1000, 3), (200, 1), (600, 10), (300, 2)]  # (page, pen): all thin at 28×28


def test_mnists_strokes_are_two_pixels_wide_by_stroke_width(mnist_dir):
    test = load_split(DataConfig(source="shipped"), "test").images.reshape(-1, 28, 28)
    widths = [stroke_width(digit >= 128) for digit in test]
    assert np.median(widths) == pytest.approx(2.0, abs=0.05)  # what PEN is made to give
    assert stroke_width(np.ones((3, 40), bool)) == pytest.approx(3 * 40 * 2 / (2 * 40 + 2 * 3))


@pytest.mark.parametrize(("size", "pen"), PENS)
def test_a_thin_pen_comes_out_with_mnists_stroke(tmp_path, size, pen):
    for digit in (7, 0, 1, 3):
        seen = ink_of(pen_drawing(digit, size, pen), tmp_path)
        assert 1.6 <= stroke_width(seen >= 128) <= 2.8, (digit, size, pen)  # MNIST's: 1.46–2.80


def test_a_stroke_as_wide_as_mnists_is_left_as_it_is(digits, tmp_path):
    """An MNIST digit, enlarged, is not thickened: it comes back as MNIST drew it."""
    images, _ = digits
    for digit in images[:10]:
        seen = ink_of(Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BICUBIC), tmp_path)
        assert abs(stroke_width(seen >= 128) - stroke_width(digit >= 128)) < 0.5
        assert aligned_correlation(seen.astype(float), digit.astype(float)) > 0.9


def test_digits_drawn_with_a_thin_pen_are_read_as_drawn(mnist_run, tmp_path):
    paths, labels = [], []
    for size, pen in PENS:
        for digit in (7, 0, 1, 3):
            paths.append(tmp_path / f"{digit}-{size}-{pen}.png")
            pen_drawing(digit, size, pen).save(paths[-1])
            labels.append(digit)
    result = mlp("predict", mnist_run, *paths, "--json")
    assert result.exit_code == 0, result.output
    said = [answer["predictions"][0]["class"] for answer in json.loads(result.stdout)]
    assert np.mean(np.array(said) == labels) >= 0.9, said


def on_a_noisy_photo(digit: np.ndarray, seed: int) -> np.ndarray:
    """The digit, dark ink 8× enlarged, on a grey background with noise (mean 180, sd 15), as a
    phone's photo of a page looks."""
    rng = np.random.default_rng(seed)
    ink = np.asarray(Image.fromarray(digit).resize((224, 224), Image.Resampling.BICUBIC), float) / 255
    page = rng.normal(180, 15, (400, 360))
    top, left = int(rng.integers(0, 176)), int(rng.integers(0, 136))
    patch = page[top : top + 224, left : left + 224]
    page[top : top + 224, left : left + 224] = patch * (1 - ink) + 40 * ink
    return np.clip(page, 0, 255).astype(np.uint8)


def test_a_digit_on_a_noisy_photo_is_cropped_to_its_ink(digits, tmp_path):
    images, _ = digits
    correlations = []
    for i, digit in enumerate(images[:20]):
        seen = ink_of(Image.fromarray(on_a_noisy_photo(digit, i)), tmp_path)
        correlations.append(aligned_correlation(seen.astype(float), digit.astype(float)))
        assert np.count_nonzero(seen[:2]) + np.count_nonzero(seen[-2:]) < 8  # no noise kept at the edges
    assert min(correlations) > 0.8 and np.median(correlations) > 0.9


def test_digits_on_noisy_photos_are_read_and_noise_alone_is_no_digit(mnist_run, digits, tmp_path):
    images, labels = digits
    paths = []
    for i, digit in enumerate(images[:30]):
        paths.append(tmp_path / f"photo-{i}.png")
        Image.fromarray(on_a_noisy_photo(digit, i)).save(paths[-1])
    result = mlp("predict", mnist_run, *paths, "--json")
    said = [answer["predictions"][0]["class"] for answer in json.loads(result.stdout)]
    assert np.mean(np.array(said) == labels[:30]) >= 0.9, said
    noise = np.random.default_rng(0).normal(180, 15, (300, 300))
    with pytest.raises(ImageError, match="no digit found"):
        to_mnist(np.clip(noise, 0, 255))


def test_a_folder_top_k_and_the_saved_inputs_said(mnist_run, digits, tmp_path):
    images, labels = digits
    folder = tmp_path / "drawings"
    folder.mkdir()
    for i in range(3):
        as_drawn(images[i], i).save(folder / f"d{i}.png")
    (folder / "notes.txt").write_text("not an image: skipped, being no image file")
    result = mlp("predict", mnist_run, folder, "--top", "5", "--save-input", tmp_path / "seen")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [str(folder / f"d{i}.png") for i in range(3)]
    assert all(len(line.split(": ")[1].split("   ")) == 5 for line in lines[:3])  # five classes each
    assert lines[3] == (
        f"saved the 28×28 inputs the network saw in {tmp_path / 'seen'}:"
        " d0.28x28.png, d1.28x28.png, d2.28x28.png"
    )
    result = mlp("predict", mnist_run, folder, "--json", "--top", "1", "--save-input", tmp_path / "seen")
    answers = json.loads(result.stdout)  # the saved files are said on stderr, beside the JSON
    assert [len(a["predictions"]) for a in answers] == [1, 1, 1]
    assert answers[0]["input"] == str(tmp_path / "seen" / "d0-2.28x28.png")
    assert "saved the 28×28 inputs" in result.stderr
    (tmp_path / "empty").mkdir()
    result = mlp("predict", mnist_run, tmp_path / "empty")
    assert result.exit_code == 1 and "empty: is a directory, not an image" in result.output
    assert mlp("predict", mnist_run, folder, "--top", "0").exit_code == 2


def test_forgetting_the_run_says_so(tmp_path):
    three = ROOT / "docs" / "three.png"
    result = mlp("predict", ROOT / "docs" / "seven.jpg", three)
    assert result.exit_code == 1 and "pickle" not in result.output
    assert (
        "seven.jpg is an image, not a run: name the run directory (or its weights.npz) first" in result.output
    )
    (tmp_path / "weights.npz").write_text("W1 = [[1, 2]]")
    result = mlp("predict", tmp_path / "weights.npz", three)
    assert result.exit_code == 1 and "not a readable weights file (that is an .npz archive" in result.output


def test_an_mse_network_gives_scores_not_probabilities(tmp_path):
    out = tmp_path / "mse"
    sets = ["data.source=shipped", "model.output=mse", "model.hidden=[16]", "train.epochs=1"]
    assert (
        mlp("train", "--config", TINY, "--out", out, *[a for s in sets for a in ("--set", s)]).exit_code == 0
    )
    three = ROOT / "docs" / "three.png"
    result = mlp("predict", out, three, "--json")
    (prediction,) = json.loads(result.stdout)
    assert all(set(p) == {"class", "name", "score"} for p in prediction["predictions"])
    result = mlp("predict", out, three)
    assert result.stdout.rstrip().endswith("(mse scores, not probabilities)")


def test_the_answer_is_the_networks_on_the_normalised_input_it_saw(mnist_run, tmp_path):
    """The probabilities predict gives are the model's own on the 28×28 image it saved, after
    the run's input normalisation: not on raw pixels, not on another preparation."""
    result = mlp(
        "predict", mnist_run, ROOT / "docs" / "seven.jpg", "--json", "--top", "10", "--save-input", tmp_path
    )
    (answer,) = json.loads(result.stdout)
    with Image.open(answer["input"]) as seen:
        pixels = np.asarray(seen).reshape(1, -1)
    saved = load_weights(mnist_run)
    expected = saved.model.output.scores(saved.model.forward(saved.norm.apply(pixels)))[0]
    given = {p["class"]: p["probability"] for p in answer["predictions"]}
    np.testing.assert_allclose([given[k] for k in range(10)], expected, rtol=1e-6, atol=1e-9)
