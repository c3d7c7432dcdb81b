"""Training-time data augmentation: every training batch, as uint8 pixels before normalisation,
is moved image by image at random (translated by up to `shift` whole pixels; optionally
rotated, scaled, mirrored), in a few whole-batch NumPy operations with no loop over images.

Each transformation is a map "output pixel ← source pixel" (nearest neighbour, as
torchvision's RandomAffine samples by default). A bank of these maps, one per combination of
a rotation in whole degrees, a scale in steps of 1 % and a mirror, is computed once, as flat
indices into the image framed by a zero margin. A batch then costs a gather of maps, an add
(a translation by (dy, dx) moves every flat index by dy·width + dx) and a gather of pixels.
Sources outside the image read the margin: background.

Elastic distortions (Simard et al. 2003; docs/equations.md §9) come after those moves: each
image gets a field of displacements (Δy, Δx) per pixel, drawn uniformly from [-1, 1], smoothed
by a Gaussian of width σ and scaled by α, and is read at (y + Δy, x + Δx) by bilinear
interpolation. Validation and test images are never augmented.
"""

import numpy as np

from mlpcli.config import AugmentConfig, ElasticConfig
from mlpcli.errors import ConfigError

# The bank's maps take transformations × pixels × 8 bytes: 2.6 MiB for the default (21 rotations
# × 21 scales of 28×28), 859 MiB at the largest settings (rotate 180, scale 0.99, flip)
MAX_BANK_BYTES = 256 * 2**20


def is_off(config: AugmentConfig) -> bool:
    """Whether `config` leaves every image as it is."""
    return not (config.shift or config.rotate or config.scale or config.flip or config.elastic.alpha)


def check(config: AugmentConfig, image_shape: tuple[int, int]) -> None:
    """The ConfigError of data.augment keys that cannot work together on images of `image_shape`."""
    rows, cols = image_shape
    if config.shift >= min(rows, cols):
        raise ConfigError(
            f"data.augment.shift = {config.shift} could move a {rows}×{cols} image out of its frame:"
            f" it must be below {min(rows, cols)}"
        )
    transformations = _size_of_bank(config)
    bank_bytes = transformations * rows * cols * np.dtype(np.intp).itemsize
    if bank_bytes > MAX_BANK_BYTES:
        raise ConfigError(
            f"data.augment: rotate {config.rotate:g}, scale {config.scale:g}"
            f"{' and flip' if config.flip else ''} make {transformations:,} transformations, whose maps"
            f" would take {bank_bytes / 2**20:,.0f} MiB (at most {MAX_BANK_BYTES // 2**20} MiB):"
            " lower data.augment.rotate or data.augment.scale"
        )


class Augmenter:
    """Random transformations of uint8 batches of images (rows, cols) flattened to rows."""

    def __init__(
        self, config: AugmentConfig, image_shape: tuple[int, int], batch_size: int, rng: np.random.Generator
    ):
        rows, cols = image_shape
        check(config, image_shape)
        self.shift, self.image_shape, self.rng = config.shift, image_shape, rng
        # every source pixel lies within the image or at most shift + 1 outside it, where the
        # frame is background; after a shift of up to `shift` it still lies within the frame
        self.margin = 2 * config.shift + 1
        self.framed = np.zeros((batch_size, rows + 2 * self.margin, cols + 2 * self.margin), dtype=np.uint8)
        frame_rows, frame_cols = self.framed.shape[1:]
        self.transformations = _bank(config)  # (angle in degrees, scale, mirror) of each map
        source_rows, source_cols = (
            _source_pixels(self.transformations, config.shift, image_shape) + self.margin
        )
        self.maps = source_rows * frame_cols + source_cols  # (transformations, rows·cols) into a frame
        self.frame_starts = np.arange(batch_size) * (frame_rows * frame_cols)
        self.index = np.empty((batch_size, rows * cols), dtype=self.maps.dtype)
        self.out = np.empty((batch_size, rows * cols), dtype=np.uint8)
        self.elastic = None
        if config.elastic.alpha:
            self.elastic = Elastic(config.elastic, image_shape, batch_size, rng)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """A random transformation of each image of `pixels` (n, rows·cols), in a buffer reused
        by the next call."""
        n, (rows, cols), margin = len(pixels), self.image_shape, self.margin
        framed, index = self.framed[:n], self.index[:n]
        framed[:, margin : margin + rows, margin : margin + cols] = pixels.reshape(n, rows, cols)
        if len(self.maps) > 1:
            np.take(self.maps, self.rng.integers(len(self.maps), size=n), axis=0, out=index)
        else:
            index[...] = self.maps[0]
        offsets = self.frame_starts[:n]
        if self.shift:
            dy, dx = self.rng.integers(-self.shift, self.shift + 1, size=(2, n))
            offsets = offsets + dy * framed.shape[2] + dx  # read (dy, dx) away: the image moves by (-dy, -dx)
        index += offsets[:, None]
        moved = np.take(framed.reshape(-1), index, out=self.out[:n])
        return moved if self.elastic is None else self.elastic(moved)


class Elastic:
    """Elastic distortions of uint8 batches of images (rows, cols) flattened to rows: a
    displacement field per image, α·(G_σ ∗ U[-1, 1]), read by bilinear interpolation."""

    def __init__(
        self, config: ElasticConfig, image_shape: tuple[int, int], batch_size: int, rng: np.random.Generator
    ):
        rows, cols = image_shape
        self.rng = rng
        # α folded into the row pass: α·(G_rows U G_colsᵀ) = (α·G_rows) U G_colsᵀ
        self.smoothers = (
            config.alpha * gaussian_smoother(rows, config.sigma),
            gaussian_smoother(cols, config.sigma),
        )
        self.noise, self.half, self.field = (
            np.empty((batch_size, 2, rows, cols), np.float32) for _ in range(3)
        )
        self.sampler = Bilinear(image_shape, batch_size)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Each image of `pixels` (n, rows·cols) along a field of its own, in a buffer reused by
        the next call."""
        n = len(pixels)
        noise = self.rng.random(dtype=np.float32, out=self.noise[:n])
        noise *= 2.0
        noise -= 1.0  # U[-1, 1)
        field = smooth(noise, *self.smoothers, half=self.half[:n], out=self.field[:n])
        return self.sampler(pixels, field)


def gaussian_smoother(size: int, sigma: float) -> np.ndarray:
    """The (size, size) matrix G for which G f is f convolved with the Gaussian of standard
    deviation σ, g(k) ∝ exp(-k²/2σ²) for whole k within 4σ (as scipy.ndimage.gaussian_filter
    truncates it), normalised so that the whole kernel sums to 1, f being zero beyond its ends:
    so near the ends a row of G sums to less, and the fields are smaller there."""
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    offsets = np.abs(np.subtract.outer(np.arange(size), np.arange(size)))
    weights = np.where(offsets <= radius, np.exp(-(offsets**2) / (2 * sigma**2)), 0.0) / taps.sum()
    return weights.astype(np.float32)


def smooth(
    fields: np.ndarray,
    smooth_rows: np.ndarray,
    smooth_cols: np.ndarray,
    half: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Fields (..., rows, cols) convolved with a 2-D Gaussian, which is separable:
    G_rows F G_colsᵀ, a pass down the columns and one along the rows (into `half` and `out`)."""
    cols = fields.shape[-1]
    half = np.matmul(smooth_rows, fields, out=half)
    out = np.empty_like(fields) if out is None else out
    np.matmul(half.reshape(-1, cols), smooth_cols.T, out=out.reshape(-1, cols))
    return out


class Bilinear:
    """Images (rows, cols) read at displaced positions by bilinear interpolation; a position
    outside the image reads background (0). Every step writes into buffers kept between calls."""

    MARGIN = 2  # of zeros around each image: a position clipped to [-1, rows] reads within it

    def __init__(self, image_shape: tuple[int, int], batch_size: int):
        rows, cols = image_shape
        m = self.MARGIN
        self.image_shape, self.width = image_shape, cols + 2 * m
        self.framed = np.zeros((batch_size, rows + 2 * m, self.width), dtype=np.float32)
        self.grid = np.indices(image_shape, dtype=np.float32)  # (y, x) of each pixel
        # the flat index of each image's (0, 0) in the framed batch
        self.origins = (np.arange(batch_size) * self.framed[0].size + m * self.width + m)[:, None, None]
        shape = (batch_size, rows, cols)
        self.y, self.x, self.upper, self.lower, self.read = (np.empty(shape, np.float32) for _ in range(5))
        self.corner, self.step = np.empty(shape, np.intp), np.empty(shape, np.intp)
        self.out = np.empty((batch_size, rows * cols), dtype=np.uint8)

    def __call__(self, pixels: np.ndarray, field: np.ndarray) -> np.ndarray:
        """Each image of `pixels` (n, rows·cols) read at (y + Δy, x + Δx), field (n, 2, rows,
        cols) holding (Δy, Δx): rounded to uint8, in a buffer reused by the next call."""
        n, (rows, cols), m = len(pixels), self.image_shape, self.MARGIN
        framed = self.framed[:n]
        framed[:, m : m + rows, m : m + cols] = pixels.reshape(n, rows, cols)
        y, x, upper, lower, read = self.y[:n], self.x[:n], self.upper[:n], self.lower[:n], self.read[:n]
        corner, step = self.corner[:n], self.step[:n]
        np.clip(np.add(self.grid[0], field[:, 0], out=y), -1, rows, out=y)
        np.clip(np.add(self.grid[1], field[:, 1], out=x), -1, cols, out=x)
        # the top-left neighbour's flat index; y and x become the next row's and column's weights
        # (upper holds ⌊y⌋, then ⌊x⌋, before the interpolated values; step ⌊x⌋, then corner + 1)
        np.copyto(corner, np.floor(y, out=upper), casting="unsafe")
        y -= upper
        corner *= self.width
        np.copyto(step, np.floor(x, out=upper), casting="unsafe")
        x -= upper
        corner += step
        corner += self.origins[:n]
        flat = framed.reshape(-1)
        _between(np.take(flat, corner, out=upper), np.take(flat, np.add(corner, 1, out=step), out=read), x)
        corner += self.width
        _between(np.take(flat, corner, out=lower), np.take(flat, np.add(corner, 1, out=step), out=read), x)
        _between(upper, lower, y)
        out = self.out[:n]
        np.copyto(out, np.rint(upper, out=upper).reshape(n, -1), casting="unsafe")
        return out


def _between(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> None:
    """a ← a + t·(b − a), linear interpolation in place (b is overwritten)."""
    b -= a
    b *= t
    a += b


def _size_of_bank(config: AugmentConfig) -> int:
    """How many transformations the bank holds: rotations × scales × mirrors."""
    return len(_steps(config.rotate, 1.0)) * len(_steps(config.scale, 0.01)) * (2 if config.flip else 1)


def _bank(config: AugmentConfig) -> np.ndarray:
    """Every combination of a rotation (degrees), a scale and a mirror (1, or -1 for left-right)
    the config allows, as rows (transformations, 3)."""
    mirrors = np.array([1.0, -1.0] if config.flip else [1.0])
    grid = np.meshgrid(_steps(config.rotate, 1.0), 1.0 + _steps(config.scale, 0.01), mirrors, indexing="ij")
    return np.stack([axis.ravel() for axis in grid], axis=1)


def _source_pixels(transformations: np.ndarray, shift: int, image_shape: tuple[int, int]) -> np.ndarray:
    """For every transformation (angle in degrees, scale, mirror) the (row, col) each output
    pixel is read from, (2, transformations, rows·cols): the output is the image rotated by the
    angle (from the column axis towards the row axis: clockwise on screen), scaled about the
    centre and then mirrored. A source farther outside the image than shift + 1 (any pixel
    there is background) is brought to shift + 1 outside."""
    angle, scale, mirror = (np.reshape(column, (-1, 1)) for column in transformations.T)
    angle = np.radians(angle)
    rows, cols = image_shape
    centre = ((rows - 1) / 2, (cols - 1) / 2)
    y, x = np.indices(image_shape).reshape(2, 1, -1) - np.reshape(centre, (2, 1, 1))  # about the centre
    x = x * mirror
    # the inverse of "rotate by θ, scale by s": source = R(-θ) (y, x) / s
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    source_y = np.rint(cos * y - sin * x + centre[0]).astype(np.intp)
    source_x = np.rint(sin * y + cos * x + centre[1]).astype(np.intp)
    outside = shift + 1
    np.clip(source_y, -outside, rows - 1 + outside, out=source_y)
    np.clip(source_x, -outside, cols - 1 + outside, out=source_x)
    return np.stack([source_y, source_x])


def _steps(limit: float, step: float) -> np.ndarray:
    """-limit … limit in 2n equal steps of about `step` (at least one each way when limit > 0;
    0 always among them)."""
    n = max(1, round(limit / step)) if limit > 0 else 0
    return np.linspace(-limit, limit, 2 * n + 1) if n else np.zeros(1)
