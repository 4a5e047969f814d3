"""Finding, verifying and decoding images in an image-folder tree.

The one decoding path (:func:`load_rgb`) is used both to verify images in
``balance`` and to build tensors in ``prepare``, so an image that passes
verification is guaranteed to prepare.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Folders created by archivers / OSes next to real class folders.
JUNK_DIRS = {"__MACOSX"}


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in JUNK_DIRS


def class_folders(root: Path) -> list[str]:
    """Names of the visible sub-folders of ``root``, sorted."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not is_hidden(e.name))


def list_class_files(root: Path, class_name: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Image files under ``root/class_name`` (recursive) and the files ignored, with reasons.

    Paths are POSIX-style and relative to ``root``, sorted so the result does not
    depend on the file system's listing order.
    """
    images, ignored = [], []
    for dirpath, dirnames, filenames in os.walk(root / class_name, followlinks=True):
        dirnames[:] = [d for d in dirnames if not is_hidden(d)]  # prune in place
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if is_hidden(name):
                ignored.append((rel, "hidden file"))
            elif not name.lower().endswith(IMAGE_EXTENSIONS):
                ignored.append((rel, "not an image extension"))
            else:
                images.append(rel)
    return sorted(images), sorted(ignored)


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


def load_rgb(source: str | Path | io.BytesIO, draft: int | None = None) -> Image.Image:
    """Fully decode an image, apply its EXIF orientation and return it as RGB.

    ``draft`` lets JPEG decode at a reduced scale that is still at least
    ``draft`` pixels on each side: several times faster for large photos that
    are resized down anyway.
    """
    with warnings.catch_warnings():
        # Large photos trigger DecompressionBombWarning; the hard limit (error) stays on.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(source) as img:
            if draft and img.format == "JPEG":
                img.draft("RGB", (draft, draft))
            img.load()  # raises on truncated or corrupt data
            oriented = ImageOps.exif_transpose(img)
            return to_rgb(oriented)


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    width: int
    height: int


def inspect_image(path: str | Path) -> ImageInfo:
    """sha256 of the bytes and the oriented size; raises ValueError(reason) if unusable."""
    data = Path(path).read_bytes()
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        img = load_rgb(io.BytesIO(data))
    except Image.UnidentifiedImageError:
        raise ValueError("not a readable image (unknown format)") from None
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors...
        raise ValueError(f"cannot decode: {type(err).__name__}: {err}") from None
    if img.width < 1 or img.height < 1:
        raise ValueError("image has no pixels")
    return ImageInfo(hashlib.sha256(data).hexdigest(), img.width, img.height)


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
