"""A picture of a digit (or a garment), brought to the form of an MNIST image as MNIST itself
was made: grayscale, light ink on a dark background, cropped to the ink, scaled so that its
longer side is 20 pixels (keeping the aspect ratio, grey levels from the resampling, the
strongest stroke at full white), and
placed in a 28×28 field with its centre of mass at the centre (row 14, column 14: where the
centres of MNIST's own digits lie). Two steps MNIST's scans did not need: the background's own
grain (a photo's paper) is taken off before the ink is found, and a stroke far thinner than
MNIST's pen at 28×28 is redrawn with it. Pillow decodes and resamples; the rest is NumPy.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from mlpcli.errors import ImageError, ImageTooLarge, ImageTooSlow

if TYPE_CHECKING:
    from PIL import Image

FIELD, BOX = 28, 20  # MNIST's image side, and the box its digits are scaled to fit
MIN_CONTRAST = 32  # grey levels between background and ink below which an image counts as blank
INK = 0.25  # share of the ink's full strength from which a pixel counts when cropping
NOISE = 4  # standard deviations of the border's noise that count as background, not ink
# MNIST's strokes are 2.0 pixels wide at 28×28 (the median by stroke_width over its 10,000 test
# digits). Measured before resampling, at the box's scale, MNIST's digits enlarged 6-9× are
# 1.74 wide (1 in 100 below 0.98); a stroke thinner than THIN is redrawn PEN pixels wide, which
# the resampling's soft edges bring to 1.9–2.5 as stroke_width measures it at 28×28 (pens of 1
# to 10 pixels on drawings of 200 to 1000 pixels, which measure 0.06–0.45 before)
PEN, THIN = 3.0, 0.9
MIN_LENGTH = 4  # pixels of stroke at the box's scale, below which the ink is specks, not a digit
# the longer side an image is reduced to before its digit is found: a digit filling a tenth of
# it is still 5× the box, and a pen line of 3 pixels on a 2000-pixel drawing moves the 28×28
# input by 4 grey levels in the mean (1024 px is also the side the page shrinks uploads to)
WORK_SIDE = 1024
BLOCK = 4096  # bytes Pillow decodes between two looks at the clock
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "F")  # Pillow's 16- and 32-bit integer and float modes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")


def read_image(
    source: str | Path | IO[bytes],
    name: str | None = None,
    max_pixels: int | None = None,
    formats: tuple[str, ...] | None = None,
    seconds: float | None = None,
) -> np.ndarray:
    """The image at `source` (a path, or an open binary file called `name`) as grey levels
    (rows, cols) in 0–255, float: transparency is white, and 16-bit or floating-point images
    are scaled from their own range. An image larger than WORK_SIDE on its longer side is
    reduced to it (a JPEG decoded at a smaller scale, then box-averaged): to_mnist needs no
    more, and memory and time stay bounded by it. With `max_pixels`, a larger image is refused
    (ImageTooLarge) from its header, before it is decoded; with `seconds`, decoding that takes
    longer is stopped (ImageTooSlow); with `formats`, only those of Pillow's formats are read
    (a server's: no EPS, which Pillow hands to Ghostscript)."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # only the commands that read images

    name = name or str(source)
    try:
        with _opened(source) as file, Image.open(_Timed(file, seconds, name), formats=formats) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ImageTooLarge(
                    f"{name}: this image is {image.width * image.height / 1e6:.0f} MP"
                    f" ({image.width}×{image.height} pixels); mlpcli reads up to {max_pixels / 1e6:.0f} MP"
                )
            image.draft("L", (WORK_SIDE, WORK_SIDE))  # a JPEG: grey, at 1/2, 1/4 or 1/8 scale
            image.decodermaxblock = BLOCK  # Pillow decodes a block at a time: the clock is read between
            image.load()
            return _grey(ImageOps.exif_transpose(image), name)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{name}: too large to read safely ({e})") from None
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read") from None
    except MemoryError:
        raise ImageTooLarge(f"{name}: too large to read in the memory there is") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or damaged files
        raise ImageError(f"{name}: cannot read the image ({e})") from None


@contextmanager
def _opened(source: str | Path | IO[bytes]) -> Iterator[IO[bytes]]:
    """`source` as an open binary file (a path is opened, and closed after)."""
    if hasattr(source, "read"):
        yield source
    else:
        with open(source, "rb") as file:
            yield file


class _Timed:
    """A binary file whose reads fail (ImageTooSlow) once `seconds` have passed since it was
    made: Pillow decodes as it reads, so a file that is slow to decode for its size (a
    progressive JPEG of thousands of scans) is stopped between one block and the next."""

    def __init__(self, file: IO[bytes], seconds: float | None, name: str):
        self.file, self.name = file, name
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.seconds = seconds

    def read(self, size: int = -1) -> bytes:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ImageTooSlow(f"{self.name}: took more than {self.seconds:g} s to decode; is it damaged?")
        return self.file.read(size)

    def __getattr__(self, attribute: str):  # seek, tell, …: the file's own
        return getattr(self.file, attribute)


def _grey(image: "Image.Image", name: str) -> np.ndarray:
    """The decoded `image` as grey levels 0–255 (see read_image), no larger than WORK_SIDE."""
    from PIL import Image

    if image.mode in WIDE_MODES:
        values = np.asarray(_reduced(image.convert("F")), dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageError(f"{name}: holds values that are not numbers (infinity or NaN)")
        return _stretched(values)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.asarray(_reduced(image.convert("L")), dtype=np.float64)


def _reduced(image: "Image.Image") -> "Image.Image":
    """`image` (grey or float) box-averaged by the smallest whole factor that brings its
    longer side to WORK_SIDE or less."""
    factor = -(-max(image.size) // WORK_SIDE)
    return image.reduce(factor) if factor > 1 else image


def to_mnist(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """`grey` (rows, cols) in 0–255 as a 28×28 uint8 MNIST image: ink light on black."""
    ink = _cropped(*_ink(grey, name))
    scale, strokes = BOX / max(ink.shape), ink >= 0.5
    width = stroke_width(strokes)
    if np.count_nonzero(strokes) / width * scale < MIN_LENGTH:  # the strokes' length, at 20×20
        raise ImageError(f"{name}: the ink is too thin or sparse to keep at {BOX}×{BOX} pixels")
    if width * scale < THIN:
        ink = _thickened(ink, width)
    return _centred(_fit(ink, name))


def _ink(grey: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """How much ink each pixel holds, 0 (background) … 1 (the strongest stroke), and the level
    from which a pixel is ink enough to crop to. The background is the border's median; the ink
    is whichever way the image strays farthest from it: darker (pen on paper) or lighter (chalk
    on a board). The border's noise (NOISE times its median absolute deviation, as a standard
    deviation) is background too: on a speckled photo, no grain is taken for faint ink."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    noise = NOISE * 1.4826 * float(np.median(np.abs(border - background)))
    darker, lighter = background - float(grey.min()), float(grey.max()) - background
    deviation = background - grey if darker >= lighter else grey - background
    contrast = max(darker, lighter)
    if contrast - noise < MIN_CONTRAST:
        raise ImageError(f"{name}: no digit found (the image is blank or has almost no contrast)")
    ink = np.where(deviation > noise, np.clip(deviation / contrast, 0.0, 1.0), 0.0)
    return ink, (noise + INK * (contrast - noise)) / contrast


def _cropped(ink: np.ndarray, level: float = INK) -> np.ndarray:
    """`ink` cut to the box of the pixels that hold at least `level` of the ink's strength."""
    rows, cols = np.nonzero(ink >= level)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def stroke_width(mask: np.ndarray) -> float:
    """The mean width in pixels of the strokes of `mask`: a stroke of length L and width w
    covers L·w pixels and has about 2L pixel edges on its outline, so w ≈ 2·area / edges."""
    padded = np.pad(mask, 1).astype(np.int8)
    edges = np.count_nonzero(np.diff(padded, axis=0)) + np.count_nonzero(np.diff(padded, axis=1))
    return 2 * np.count_nonzero(mask) / max(edges, 1)


def _thickened(ink: np.ndarray, width: float) -> np.ndarray:
    """`ink` whose strokes are `width` pixels wide, redrawn with MNIST's pen: at 4× the size of
    the box (area-averaged, so a thin line keeps its mass, then at full strength again), each
    stroke is dilated by a disc to 4·PEN pixels, then cropped anew."""
    from PIL import Image

    factor = 4 * BOX / max(ink.shape)
    large = _resized(ink, factor, Image.Resampling.BOX) / 255
    thinned = min(1.0, width * factor)  # a line thinner than a pixel is averaged down to this
    radius = max(0.0, (4 * PEN - max(width * factor, 1.0)) / 2)
    return _cropped(_dilated(np.clip(large / thinned, 0, 1), radius))


def _resized(ink: np.ndarray, scale: float, resample) -> np.ndarray:
    """`ink` (0 … 1) scaled by `scale` with Pillow's `resample`, as grey levels 0 … 255."""
    from PIL import Image

    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    image = Image.fromarray(np.round(ink * 255).astype(np.uint8)).resize(size, resample)
    return np.asarray(image, dtype=np.float64)


def _dilated(ink: np.ndarray, radius: float) -> np.ndarray:
    """The greatest ink within `radius` pixels of each pixel (a grey dilation by a disc), on a
    frame grown by the radius."""
    r = int(radius)
    framed = np.pad(ink, r)
    out = framed.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if 0 < dy * dy + dx * dx <= radius * radius:
                np.maximum(out, np.roll(framed, (dy, dx), axis=(0, 1)), out=out)
    return out


def _fit(ink: np.ndarray, name: str) -> np.ndarray:
    """Resample so that the longer side is BOX pixels, keeping the aspect ratio; then stretch so
    the strongest pixel is 255 (a thin pen line shrunk from a large photo stays visible)."""
    from PIL import Image

    digit = _resized(ink, BOX / max(ink.shape), Image.Resampling.LANCZOS)
    if digit.max() <= 0:
        raise ImageError(f"{name}: the ink is too thin or sparse to keep at {BOX}×{BOX} pixels")
    return digit * (255.0 / digit.max())


def _stretched(values: np.ndarray) -> np.ndarray:
    """An image of any numeric range as 0–255 grey levels (a flat image: all 0)."""
    low, high = float(values.min()), float(values.max())
    return (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)


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
