"""A picture of a digit (or a garment), brought to the form of an MNIST image as MNIST itself
was made: grayscale, light ink on a dark background, cropped to the ink, scaled so that its
longer side is 20 pixels (keeping the aspect ratio, grey levels from the resampling), and
placed in a 28×28 field with its centre of mass at the centre (row 14, column 14: where the
centres of MNIST's own digits lie). Pillow decodes and resamples; the rest is NumPy.
"""

from pathlib import Path

import numpy as np

from mlpcli.errors import ImageError

FIELD, BOX = 28, 20  # MNIST's image side, and the box its digits are scaled to fit
MIN_CONTRAST = 32  # grey levels between background and ink below which an image counts as blank
INK = 0.25  # share of the ink's full strength from which a pixel counts when cropping


def read_image(path: str | Path) -> np.ndarray:
    """The image at `path` as grey levels (rows, cols) in 0–255, float; transparency is white."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # only the commands that read images

    path = Path(path)
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                white = Image.new("RGBA", image.size, "white")
                image = Image.alpha_composite(white, image.convert("RGBA"))
            return np.asarray(image.convert("L"), dtype=np.float64)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or damaged files
        raise ImageError(f"{path}: cannot read the image ({e})") from None


def to_mnist(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """`grey` (rows, cols) in 0–255 as a 28×28 uint8 MNIST image: ink light on black."""
    ink = _ink(grey, name)
    rows, cols = np.nonzero(ink >= INK)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return _centred(_fit(ink))


def _ink(grey: np.ndarray, name: str) -> np.ndarray:
    """How much ink each pixel holds, 0 (background) … 1 (the darkest or lightest stroke).
    The background is the border's median: light paper is inverted, so ink is always light."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    ink = 255.0 - grey if background > 127 else grey
    background = 255.0 - background if background > 127 else background
    contrast = float(ink.max()) - background
    if contrast < MIN_CONTRAST:
        raise ImageError(f"{name}: no digit found (the image is blank or has almost no contrast)")
    return np.clip((ink - background) / contrast, 0.0, 1.0)


def _fit(ink: np.ndarray) -> np.ndarray:
    """Resample so that the longer side is BOX pixels, keeping the aspect ratio; 0–255 floats."""
    from PIL import Image

    rows, cols = ink.shape
    scale = BOX / max(rows, cols)
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    image = Image.fromarray(np.round(ink * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float64)


def _centred(digit: np.ndarray) -> np.ndarray:
    """`digit` in a FIELD × FIELD black image, shifted so its centre of mass is at the centre."""
    rows, cols = np.indices(digit.shape)
    total = digit.sum()
    centre_row, centre_col = (digit * rows).sum() / total, (digit * cols).sum() / total
    top, left = round(FIELD / 2 - centre_row), round(FIELD / 2 - centre_col)
    top = min(max(top, 0), FIELD - digit.shape[0])  # a lopsided digit stays whole in the field
    left = min(max(left, 0), FIELD - digit.shape[1])
    field = np.zeros((FIELD, FIELD))
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.round(field).astype(np.uint8)
