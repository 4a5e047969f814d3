"""Decoding images: the one path from a file to RGB pixels, and what counts as a bad file.

:func:`load_rgb` is used both to verify images in ``balance`` (through
:func:`inspect_image`) and to build tensors in ``prepare``, so an image that passes
verification is guaranteed to prepare. Both raise :class:`BadImage` for a file that
cannot be used, and only for that: any other exception is a bug and propagates.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

# What Pillow raises for a file it cannot read or decode, found by fuzzing (truncating and
# flipping bytes of) 33 kinds of file Pillow writes, 33,000 files in all: OSError (truncated data, decoder
# errors, an unreadable file; UnidentifiedImageError is one), ValueError (bad header fields),
# SyntaxError (broken PNG chunks, a corrupt EXIF header) and DecompressionBombError (a
# header claiming billions of pixels). Its plugins' other internal errors (EOFError,
# struct.error, IndexError, ...) surface as one of these, or as UnidentifiedImageError.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

ORIENTATION = ExifTags.Base.Orientation
TRANSPOSE = {  # EXIF orientation -> the transposition that displays the image upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
QUARTER_TURNS = {Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_270, Image.Transpose.TRANSVERSE,
                 Image.Transpose.ROTATE_90}  # they swap width and height


class BadImage(Exception):
    """A file that cannot be used as an image; ``str()`` is the reason, as reported."""


def bad_image(err: BaseException) -> BadImage:
    """A read or decode error as a reason: what failed, the error's type and its message."""
    # An OSError with an errno comes from the file system; Pillow's own have none.
    verb = "cannot read" if isinstance(err, OSError) and err.errno is not None else "cannot decode"
    # Pillow names the source in this one, and a BytesIO's name is a memory address.
    message = "cannot identify image file (unknown format)" if isinstance(err, UnidentifiedImageError) else err
    return BadImage(f"{verb}: {type(err).__name__}: {message}")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB.

    Pillow's own ``convert("RGB")`` clips 16-bit samples instead of scaling them,
    and drops alpha (transparent pixels become whatever colour they hide, often
    black), so those two cases are handled here.
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):  # 16/32-bit integer grayscale, e.g. 16-bit PNG
        arr = np.asarray(img).astype(np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "F":
        arr = np.clip(np.rint(np.asarray(img)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        # Transparent backgrounds are shown on white, as an image viewer does.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def require_regular_file(path: str | Path) -> None:
    """Raise :class:`BadImage` unless ``path`` (links followed) is a regular file: opening a FIFO
    waits for a writer forever, a device or socket is no image."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise bad_image(err) from err
    if not stat.S_ISREG(mode):
        kind = ("fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else
                "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "directory" if stat.S_ISDIR(mode) else "other")
        raise BadImage(f"not a regular file ({kind})")


def load_rgb(source: str | Path | io.BytesIO, draft: int | None = None) -> Image.Image:
    """Fully decode an image, apply its EXIF orientation and return it as RGB.

    ``draft`` lets JPEG decode at a reduced scale that is still at least
    ``draft`` pixels on each side: several times faster for large photos that
    are resized down anyway. Raises :class:`BadImage` for a file that cannot be read or decoded.
    """
    if not isinstance(source, io.BytesIO):
        require_regular_file(source)
    with warnings.catch_warnings():
        # Large photos trigger DecompressionBombWarning; the hard limit (error) stays on.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(source)
        except DECODE_ERRORS as err:
            raise bad_image(err) from err
        with img:
            try:
                if draft and img.format == "JPEG":
                    img.draft("RGB", (draft, draft))
                img.load()  # raises on truncated or corrupt data
                method = TRANSPOSE.get(img.getexif().get(ORIENTATION, 1))
            except DECODE_ERRORS as err:
                raise bad_image(err) from err
            # Not ImageOps.exif_transpose: it also re-encodes the EXIF block, which fails on
            # malformed tags with errors of every kind, for metadata that is dropped here anyway.
            oriented = img.transpose(method) if method is not None else img.copy()
    return to_rgb(oriented)


@dataclass(frozen=True, slots=True)  # one per candidate image: no per-instance dict
class ImageInfo:
    sha256: str
    width: int
    height: int


def inspect_image(path: str | Path) -> ImageInfo:
    """sha256 of the bytes and the oriented size; raises :class:`BadImage` if unusable."""
    require_regular_file(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise bad_image(err) from err
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:  # the header: the stored size and orientation
        with Image.open(io.BytesIO(data)) as head:
            width, height = head.size
            turned = TRANSPOSE.get(head.getexif().get(ORIENTATION, 1)) in QUARTER_TURNS
    except DECODE_ERRORS as err:
        raise bad_image(err) from err
    # Every byte decoded (a truncated or corrupt file fails here), a JPEG at 1/8 scale: a 94-MP
    # photo took 803 MB to verify at full size, which prepare never needs (it resizes down).
    img = load_rgb(io.BytesIO(data), draft=1)
    if width < 1 or height < 1 or img.width < 1 or img.height < 1:
        raise BadImage("image has no pixels")
    if turned:
        width, height = height, width  # displayed upright, as load_rgb returns it
    return ImageInfo(hashlib.sha256(data).hexdigest(), width, height)


def resize(img: Image.Image, size: int, mode: str) -> Image.Image:
    """Resize to size x size.

    squash: stretch to the square (what keras' image_dataset_from_directory does);
    crop: centre-crop to a square first (keeps aspect ratio, loses borders);
    pad: letterbox onto a black square (keeps everything, adds borders).
    """
    if mode == "crop":
        return ImageOps.fit(img, (size, size), Image.Resampling.BILINEAR)
    if mode == "pad":
        return ImageOps.pad(img, (size, size), Image.Resampling.BILINEAR, color=(0, 0, 0))
    return img.resize((size, size), Image.Resampling.BILINEAR)
