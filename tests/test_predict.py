"""mlp predict on real MNIST test digits drawn the way people draw or photograph them:
enlarged, dark ink on light paper, off centre, with a margin; and on images with nothing to
classify, which get a one-line error each while the others are still classified."""

import json

import numpy as np
import pytest
from conftest import mlp
from PIL import Image, ImageDraw

from mlpcli.data import DataConfig, load_split
from mlpcli.errors import ImageError
from mlpcli.images import read_image, to_mnist


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
    answers = json.loads(result.output)
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


def test_predict_needs_weights(tmp_path):
    Image.new("L", (10, 10)).save(tmp_path / "x.png")
    result = mlp("predict", tmp_path, tmp_path / "x.png")
    assert result.exit_code == 1 and "is not a run directory" in result.output
    result = mlp("predict", tmp_path / "model.npz", tmp_path / "x.png")
    assert result.exit_code == 1 and "model.npz: no such weights file" in result.output
    assert mlp("predict", tmp_path).exit_code == 2  # no image named


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
    sheet = Image.new("L", (12000, 40), 255)
    sheet.putpixel((5, 20), 0)
    sheet.putpixel((11990, 20), 0)  # two specks 12,000 pixels apart
    with pytest.raises(ImageError, match="too thin or sparse"):
        ink_of(sheet, tmp_path)
