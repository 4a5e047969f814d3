"""Stage `digits`: write scikit-learn's bundled handwritten digits as an image folder.

This is the embedded default dataset: 1,797 real 8x8 scans in 10 classes that
ship inside scikit-learn, so the whole pipeline runs offline on a fresh clone.
Writing them as ``data/raw/digits/<class>/<file>.png`` means every later stage
treats them exactly like a user's own image folder.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from stages.core.errors import run_stage
from stages.core.files import atomic_output

OUT = "data/raw/digits"


def write_digits(out: str = OUT) -> int:
    digits = load_digits()
    # Pixel values are 0..16 (4-bit); stretch to 0..255 for an ordinary 8-bit PNG.
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    with atomic_output(out) as tmp:
        for index, (image, target) in enumerate(zip(pixels, digits.target)):
            folder = tmp / f"digit_{target}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="L").save(folder / f"{index:04d}.png")
    return len(pixels)


def main() -> None:
    count = write_digits()
    print(f"digits: wrote {count} images to {OUT}")


if __name__ == "__main__":
    run_stage(main)
