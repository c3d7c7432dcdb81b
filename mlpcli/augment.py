"""Training-time data augmentation: every training batch, as uint8 pixels before normalisation,
is moved image by image at random (translated by up to `shift` whole pixels; optionally
rotated, scaled, mirrored), in a few whole-batch NumPy operations with no loop over images.

Each transformation is a map "output pixel ← source pixel" (nearest neighbour, as
torchvision's RandomAffine samples by default). A bank of these maps, one per combination of
a rotation in whole degrees, a scale in steps of 1 % and a mirror, is computed once, as flat
indices into the image framed by a zero margin. A batch then costs a gather of maps, an add
(a translation by (dy, dx) moves every flat index by dy·width + dx) and a gather of pixels.
Sources outside the image read the margin: background. Validation and test images are never
augmented.
"""

import numpy as np

from mlpcli.config import AugmentConfig
from mlpcli.errors import ConfigError

# The bank's maps take transformations × pixels × 8 bytes: 2.6 MiB for the default (21 rotations
# × 21 scales of 28×28), 859 MiB at the largest settings (rotate 180, scale 0.99, flip)
MAX_BANK_BYTES = 256 * 2**20


def is_off(config: AugmentConfig) -> bool:
    """Whether `config` leaves every image as it is."""
    return not (config.shift or config.rotate or config.scale or config.flip)


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
        return np.take(framed.reshape(-1), index, out=self.out[:n])


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
