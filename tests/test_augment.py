"""Data augmentation: what each transformation does to real digits and to a test pattern,
determinism under a seed, and that training with it on resumes bitwise."""

import numpy as np
import pytest

from mlpcli.augment import Augmenter, Bilinear, Elastic, gaussian_smoother, is_off, smooth
from mlpcli.config import AugmentConfig, DataConfig, ElasticConfig
from mlpcli.data import load_split

SIDE = 29  # odd: the test pattern's centre is a pixel
OFF = {"shift": 0, "rotate": 0.0, "scale": 0.0, "flip": False}


@pytest.fixture(scope="module")
def digits(mnist_dir) -> np.ndarray:
    """256 real MNIST test digits (n, 784) uint8."""
    return load_split(DataConfig(source="idx", dir=str(mnist_dir)), "test").images[:256]


def augment(pixels: np.ndarray, seed: int = 0, shape=(28, 28), **config) -> np.ndarray:
    augmenter = Augmenter(AugmentConfig(**OFF | config), shape, len(pixels), np.random.default_rng(seed))
    return augmenter(pixels).copy()


def blob(row: int, col: int, n: int = 200) -> np.ndarray:
    """n copies of a SIDE×SIDE image, black but for a 3×3 square centred at (row, col)."""
    image = np.zeros((SIDE, SIDE), np.uint8)
    image[row - 1 : row + 2, col - 1 : col + 2] = 255
    return np.tile(image.reshape(1, -1), (n, 1))


def centres(images: np.ndarray) -> np.ndarray:
    """The ink's centre of mass of each image, (n, 2) as (row, col) from the image centre."""
    ink = images.reshape(len(images), SIDE, SIDE).astype(float)
    rows, cols = np.indices((SIDE, SIDE)) - SIDE // 2
    total = ink.sum(axis=(1, 2))
    return np.stack([(ink * rows).sum(axis=(1, 2)) / total, (ink * cols).sum(axis=(1, 2)) / total], 1)


def test_shapes_dtype_and_values_are_kept(digits):
    out = augment(digits, shift=2, rotate=15, scale=0.15, flip=True)
    assert out.shape == digits.shape and out.dtype == np.uint8
    assert set(np.unique(out)) <= set(np.unique(digits))  # nearest neighbour: no new pixel values
    ink = out.sum(axis=1) / digits.sum(axis=1)  # scaled by 0.85–1.15: area by 0.72–1.32
    assert np.all((ink > 0.6) & (ink < 1.5))


def test_no_image_reads_its_neighbours_pixels():
    pixels = np.zeros((64, 28 * 28), np.uint8)
    pixels[1::2] = 255  # black and white images, alternating
    for settings in ({"shift": 2, "rotate": 15, "scale": 0.15, "flip": True}, {"shift": 27}, {"scale": 0.99}):
        out = augment(pixels, **settings)
        assert not out[0::2].any(), settings  # a black image stays black whatever its neighbours


def test_zero_strength_is_a_no_op(digits):
    assert is_off(AugmentConfig(**OFF)) and not is_off(AugmentConfig(**OFF | {"flip": True}))
    np.testing.assert_array_equal(augment(digits), digits)


def test_a_shift_translates_each_digit_whole_by_at_most_k_pixels(digits):
    images = digits.reshape(-1, 28, 28)
    border = images.copy()
    border[:, 2:-2, 2:-2] = 0
    inside = images[~border.any(axis=(1, 2))]  # digits whose ink a 2-pixel shift cannot push out
    assert len(inside) > 200
    out = augment(inside.reshape(len(inside), -1), shift=2).reshape(-1, 28, 28)
    moves = set()
    for before, after in zip(inside, out):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(np.roll(before, (dy, dx), axis=(0, 1)), after)
        ]
        assert matches, "not a translation by at most 2 pixels"
        moves.add(matches[0])
    assert len(moves) == 25  # every shift in -2..2 × -2..2 occurs


def test_rotation_turns_about_the_centre_within_the_limit():
    out = augment(blob(SIDE // 2, SIDE // 2 + 8), shape=(SIDE, SIDE), shift=0, rotate=30)
    row, col = centres(out).T
    angles, radii = np.degrees(np.arctan2(row, col)), np.hypot(row, col)
    assert np.all(np.abs(angles) <= 30 + 4) and np.all(np.abs(radii - 8) <= 0.7)
    assert angles.max() > 20 and angles.min() < -20  # both ways, near the limit


def test_scale_moves_ink_towards_or_away_from_the_centre():
    out = augment(blob(SIDE // 2, SIDE // 2 + 8), shape=(SIDE, SIDE), shift=0, scale=0.25)
    radii = np.hypot(*centres(out).T)
    assert np.all((radii >= 8 * 0.75 - 0.7) & (radii <= 8 * 1.25 + 0.7))
    assert radii.min() < 7 and radii.max() > 9


def test_flip_mirrors_left_right_about_half_the_time():
    out = augment(blob(SIDE // 2, SIDE // 2 + 8), shape=(SIDE, SIDE), shift=0, flip=True)
    col = centres(out)[:, 1]
    assert set(np.round(col)) == {-8.0, 8.0} and 0.3 < np.mean(col < 0) < 0.7


def test_the_same_seed_gives_the_same_batch(digits):
    settings = {"shift": 2, "rotate": 10, "scale": 0.1}
    np.testing.assert_array_equal(augment(digits, 7, **settings), augment(digits, 7, **settings))
    assert not np.array_equal(augment(digits, 7, **settings), augment(digits, 8, **settings))


def test_a_smaller_batch_uses_the_first_rows_of_the_buffers(digits):
    augmenter = Augmenter(AugmentConfig(), (28, 28), 256, np.random.default_rng(0))
    first = augmenter(digits[:10]).copy()
    again = Augmenter(AugmentConfig(), (28, 28), 10, np.random.default_rng(0))(digits[:10])
    np.testing.assert_array_equal(first, again)


def drawn_transformations(augmenter_seed: int, n: int, augmenter: Augmenter) -> np.ndarray:
    """The (angle, scale, mirror) each image of a batch of n got: the augmenter's first draw
    from its generator picks a map per image."""
    picks = np.random.default_rng(augmenter_seed).integers(len(augmenter.maps), size=n)
    return augmenter.transformations[picks]


@pytest.mark.parametrize("flip", [False, True])
def test_each_image_moves_as_its_drawn_angle_scale_and_mirror_say(flip):
    """A blob at radius 8 and angle φ₀ (from the column axis towards the row axis) must land
    at radius 8·s and angle φ₀ + θ (mirrored: 180° − that) for the very θ and s drawn for it:
    a scale inverted (8/s), a rotation the wrong way (φ₀ − θ), or a mirror ignored all show,
    whichever way each goes."""
    n, config = 400, AugmentConfig(**OFF | {"rotate": 40.0, "scale": 0.3, "flip": flip})
    augmenter = Augmenter(config, (SIDE, SIDE), n, np.random.default_rng(3))
    drawn = drawn_transformations(3, n, augmenter)
    start = blob(SIDE // 2 - 8, SIDE // 2, n)  # above the centre: φ₀ = -90°
    row, col = centres(augmenter(start)).T
    angle, scale, mirror = drawn.T
    expected = np.radians(-90 + angle)
    expected_row, expected_col = 8 * scale * np.sin(expected), 8 * scale * np.cos(expected) * mirror
    assert np.abs(row - expected_row).max() < 1.0 and np.abs(col - expected_col).max() < 1.0
    assert angle.min() < -30 and angle.max() > 30 and scale.min() < 0.8 and scale.max() > 1.2  # both ways
    assert set(mirror) == ({-1.0, 1.0} if flip else {1.0})


def test_what_comes_from_outside_the_image_is_background_without_a_shift():
    """Rotated 45° with no shift, the corners read from outside the image: they must be
    background, not the image's own edge pixels stretched outwards."""
    white = np.full((8, SIDE * SIDE), 255, np.uint8)
    config = AugmentConfig(**OFF | {"rotate": 45.0})
    augmenter = Augmenter(config, (SIDE, SIDE), 8, np.random.default_rng(0))
    out = augmenter(white).reshape(-1, SIDE, SIDE)
    turned = np.abs(drawn_transformations(0, 8, augmenter)[:, 0]) >= 30
    assert (
        turned.any()
        and (out[turned][:, 0, 0] == 0).all()
        and (out[turned][:, SIDE // 2, SIDE // 2] == 255).all()
    )


# Elastic distortions (Simard et al. 2003; docs/equations.md §9): a field (Δy, Δx) per pixel,
# U[-1, 1] smoothed by a Gaussian of width σ and scaled by α, read by bilinear interpolation.


def elastic(pixels: np.ndarray, alpha: float, sigma: float, seed: int = 0, **config) -> np.ndarray:
    return augment(pixels, seed, elastic=ElasticConfig(alpha=alpha, sigma=sigma), **config)


def read_at(images: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Each (n, 28·28) image read at (y + Δy, x + Δx) through Bilinear."""
    return Bilinear((28, 28), len(images))(images, field.astype(np.float32)).reshape(-1, 28, 28)


def test_a_zero_field_is_the_identity(digits):
    np.testing.assert_array_equal(
        read_at(digits, np.zeros((len(digits), 2, 28, 28))), digits.reshape(-1, 28, 28)
    )


@pytest.mark.parametrize("dy, dx", [(1, 0), (0, -2), (3, 5), (-27, 0), (40, 40)])
def test_a_constant_whole_field_is_a_shift_with_background_coming_in(digits, dy, dx):
    field = np.broadcast_to(np.array([dy, dx], float).reshape(1, 2, 1, 1), (len(digits), 2, 28, 28))
    framed = np.zeros((len(digits), 28 + 2 * 70, 28 + 2 * 70), np.uint8)
    framed[:, 70:98, 70:98] = digits.reshape(-1, 28, 28)
    expected = framed[:, 70 + dy : 98 + dy, 70 + dx : 98 + dx]  # output (i, j) = input (i + Δy, j + Δx)
    np.testing.assert_array_equal(read_at(digits, field), expected)


def test_a_half_pixel_field_reads_the_mean_of_two_neighbours(digits):
    field = np.zeros((len(digits), 2, 28, 28))
    field[:, 1] = 0.5  # half a column to the right
    images = digits.reshape(-1, 28, 28).astype(np.float64)
    right = np.concatenate([images[:, :, 1:], np.zeros((len(images), 28, 1))], axis=2)
    np.testing.assert_array_equal(read_at(digits, field), np.rint((images + right) / 2))


def test_bilinear_reads_between_four_pixels_with_their_area_weights():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (20, 28 * 28), dtype=np.uint8)
    field = rng.uniform(-3, 3, (20, 2, 28, 28))
    at = np.indices((28, 28)) + field  # where each output pixel reads: (y + Δy, x + Δx)
    pictures = images.reshape(-1, 28, 28).astype(float)
    expected = np.zeros((20, 28, 28))
    for n in range(20):
        y, x = at[n]
        top, left = np.floor(y).astype(int), np.floor(x).astype(int)
        for row, wy in ((top, 1 - (y - top)), (top + 1, y - top)):
            for col, wx in ((left, 1 - (x - left)), (left + 1, x - left)):
                inside = (row >= 0) & (row < 28) & (col >= 0) & (col < 28)  # outside: background, 0
                expected[n] += np.where(inside, wy * wx * pictures[n, row.clip(0, 27), col.clip(0, 27)], 0)
    out = read_at(images, field)
    assert np.abs(out - np.rint(expected)).max() <= 1  # float32 weights may round a .5 the other way
    assert np.mean(out != np.rint(expected)) < 0.001


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.0, 6.0])
def test_the_smoothing_is_a_gaussian_of_width_sigma(sigma):
    size = 101
    impulse = np.zeros((size, size), np.float32)
    impulse[50, 50] = 1.0
    G = gaussian_smoother(size, sigma)
    response = smooth(impulse[None], G, G)[0].astype(np.float64)
    assert response.sum() == pytest.approx(1.0, rel=1e-5)
    offsets = np.arange(size) - 50
    for profile in (response.sum(axis=0), response.sum(axis=1)):  # along each axis
        assert (profile * offsets).sum() == pytest.approx(0.0, abs=1e-5)
        assert np.sqrt((profile * offsets**2).sum()) == pytest.approx(sigma, rel=0.01)
    # separable: the 2-D response is the outer product of the 1-D one
    one_d = response.sum(axis=0)
    np.testing.assert_allclose(response, np.outer(one_d, one_d), atol=1e-7)


def test_each_field_is_alpha_times_the_gaussian_smoothed_uniform_noise_the_seed_draws(digits):
    """The augmented batch against the definition written out here: the same draws from the
    seed's generator, smoothed by a direct 2-D convolution sum, read bilinearly."""
    alpha, sigma, n = 34.0, 4.0, 16
    out = elastic(digits[:n], alpha, sigma, seed=5)
    # Augmenter spawns nothing: with affine moves off, the generator's first draw is the noise
    noise = np.random.default_rng(5).random((n, 2, 28, 28), dtype=np.float32) * 2.0 - 1.0
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    kernel = np.outer(taps, taps) / taps.sum() ** 2
    padded = np.pad(noise.astype(np.float64), ((0, 0), (0, 0), (radius, radius), (radius, radius)))
    field = np.zeros((n, 2, 28, 28))
    for i in range(2 * radius + 1):
        for j in range(2 * radius + 1):
            field += kernel[i, j] * padded[:, :, i : i + 28, j : j + 28]
    expected = read_at(digits[:n], alpha * field)
    assert np.abs(out.reshape(-1, 28, 28).astype(int) - expected).max() <= 1
    assert np.mean(out.reshape(-1, 28, 28) != expected) < 0.001


def test_elastic_moves_ink_by_about_what_alpha_and_sigma_say(digits):
    """Displacements: each component's spread is α Σ_k g(k)² / √3 (U[-1, 1] has variance 1/3),
    about 1 pixel at α 36, σ 6, away from the borders; so the ink moves, but stays."""
    moved = elastic(digits, 36, 6)
    assert not np.array_equal(moved, digits)
    ink = moved.sum(axis=1) / digits.sum(axis=1)
    assert np.all((ink > 0.5) & (ink < 1.5))  # stretched or squeezed locally, never lost
    fields = Elastic(ElasticConfig(alpha=36, sigma=6), (28, 28), 4000, np.random.default_rng(0))
    noise = np.random.default_rng(1).uniform(-1, 1, (4000, 2, 28, 28)).astype(np.float32)
    field = smooth(noise, *fields.smoothers)  # the fields the augmenter draws, from other noise
    taps = np.exp(-(np.arange(-24, 25) ** 2) / 72)  # g_6 within 4σ
    expected = 36 * ((taps / taps.sum()) ** 2).sum() / np.sqrt(3)  # §9a
    assert field[:, :, 14, 14].std() == pytest.approx(expected, rel=0.05)
    assert 0.9 < expected < 1.1


def test_elastic_comes_after_the_affine_moves_from_the_same_generator(digits):
    config = {"shift": 2, "rotate": 15, "scale": 0.15}
    both = elastic(digits, 36, 6, seed=4, **config)
    affine = Augmenter(AugmentConfig(**OFF | config), (28, 28), len(digits), np.random.default_rng(4))
    moved = affine(digits)  # the affine draws first, then the fields, from one generator
    then = Elastic(ElasticConfig(alpha=36, sigma=6), (28, 28), len(digits), affine.rng)(moved)
    np.testing.assert_array_equal(both, then)


def test_a_smaller_batch_reads_nothing_of_the_last_one(digits):
    """The last batch of an epoch is smaller: its images and fields are its own, not what the
    buffers kept of the batch before."""
    config = AugmentConfig(**OFF | {"elastic": ElasticConfig(alpha=36, sigma=6)})
    first, later = (Augmenter(config, (28, 28), 64, np.random.default_rng(0)) for _ in range(2))
    five = first(digits[:5]).copy()
    later(digits[64:128])  # a full batch of other digits fills every buffer first
    fresh = Augmenter(config, (28, 28), 5, np.random.default_rng(0))
    assert np.abs(five.astype(int) - fresh(digits[:5])).max() <= 1  # the same draws; BLAS may round
    again = later(digits[:5])
    assert again.shape == (5, 784) and np.abs(again.astype(int) - five).max() > 1  # new fields


def test_elastic_after_the_affine_moves_is_seeded_and_on_by_alpha(digits):
    assert is_off(AugmentConfig(**OFF | {"elastic": ElasticConfig(alpha=0, sigma=4)}))
    assert not is_off(AugmentConfig(**OFF | {"elastic": ElasticConfig(alpha=1, sigma=4)}))
    a, b = (
        elastic(digits, 34, 4, seed=1, shift=2, rotate=10),
        elastic(digits, 34, 4, seed=1, shift=2, rotate=10),
    )
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, elastic(digits, 34, 4, seed=2, shift=2, rotate=10))
    assert not np.array_equal(a, augment(digits, seed=1, shift=2, rotate=10))
