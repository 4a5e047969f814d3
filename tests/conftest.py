"""Shared fixtures: generated image trees and throw-away git+DVC copies of the repo."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The benchmarks' copy (benchmarks/common.py): tests and benchmarks run on the same files.
from benchmarks.common import copy_repo

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def png_bytes(seed: int, size: int = 12) -> bytes:
    """A small PNG whose pixels (and so bytes) are unique to ``seed``."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_tree(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/img_<i>.png`` with ``counts[class]`` distinct images each."""
    for c, (name, n) in enumerate(sorted(counts.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (folder / f"img_{i:03d}.png").write_bytes(png_bytes(seed * 1_000_003 + c * 10_007 + i))
    return root


def make_prepared_store(tmp: Path, size: int = 16) -> Path:
    """``tmp/prepared``: 3 classes x 12 generated images (8 train, 2 val, 2 test each) at ``size`` px."""
    import pandas as pd

    from stages.prepare import prepare

    root = make_tree(tmp / "images", {"a": 12, "b": 12, "c": 12})
    rows = []
    for label, name in enumerate("abc"):
        for i in range(12):
            split = "train" if i < 8 else "val" if i < 10 else "test"
            rows.append([f"{name}/img_{i:03d}.png", name, label, f"{name}{i}", 12, 12, split])
    splits = pd.DataFrame(rows, columns=["path", "class_name", "label", "sha256", "width", "height", "split"])
    prepare(splits, str(root), [size], "squash", tmp / "prepared")
    return tmp / "prepared"


@pytest.fixture
def tree(tmp_path):
    """Factory: tree(counts) -> path of a generated image-folder tree."""
    def factory(counts: dict[str, int], name: str = "images", seed: int = 0) -> Path:
        return make_tree(tmp_path / name, counts, seed)

    return factory


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", DVC_NO_ANALYTICS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def pytest_collection_modifyitems(items):
    """A test that works in a repository copy runs DVC stages in subprocesses: it is slow by nature.
    `make test-fast` (-m "not slow") leaves those out; `make test` runs everything."""
    for item in items:
        if "repo_copy" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def repo_copy(tmp_path):
    """A fresh git+DVC repository holding this project's tracked and new files (no outputs)."""
    return copy_repo(tmp_path / "repo")


# --- a tree of awkward but real-world files -------------------------------------------------

def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def make_odd_tree(root: Path) -> dict:
    """Two plain classes plus a class ``odd`` holding every awkward case.

    Returns what a correct scan must conclude: the undecodable and ignored paths
    (relative to ``root``) and the decodable odd files with their expected checks.
    """
    make_tree(root, {"plain_a": 4, "plain_b": 4}, seed=7)
    odd = root / "odd"
    odd.mkdir()
    good_jpeg = _encode(Image.new("RGB", (40, 30), (10, 200, 30)), "JPEG", quality=95)
    files = {
        "truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file, not a JPEG\n",
        "cmyk.jpg": _encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95),  # red
        "gray.png": _encode(Image.new("L", (16, 16), 100), "PNG"),
        "rgba.png": _encode(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), "PNG"),  # fully transparent
        "gray16.png": _encode(Image.fromarray(np.full((16, 16), 32896, np.uint16)), "PNG"),  # 50 %
        "UPPER.JPG": good_jpeg,
        "ñandú_日本.png": png_bytes(99),
        ".DS_Store": b"\x00\x00\x00\x01Bud1",
        "._shadow.jpg": b"\x00\x05\x16\x07AppleDouble",
        "readme.txt": b"notes",
    }
    rotated = Image.new("RGB", (20, 10))
    rotated.paste((255, 0, 0), (0, 0, 10, 10))  # stored left half red...
    rotated.paste((0, 0, 255), (10, 0, 20, 10))  # ...right half blue
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": red ends up on top
    files["exif_rotated.jpg"] = _encode(rotated, "JPEG", quality=95, exif=exif)
    for name, data in files.items():
        (odd / name).write_bytes(data)
    (root / ".hidden_class").mkdir()
    (root / ".hidden_class" / "x.png").write_bytes(png_bytes(5))
    (root / "loose.png").write_bytes(png_bytes(6))
    return {
        "undecodable": {"odd/truncated.jpg", "odd/empty.jpg", "odd/notes.jpg"},
        "ignored": {"odd/.DS_Store", "odd/._shadow.jpg", "odd/readme.txt", "loose.png", ".hidden_class/"},
        "decodable": {f"odd/{n}" for n in ("cmyk.jpg", "gray.png", "rgba.png", "gray16.png", "UPPER.JPG",
                                           "ñandú_日本.png", "exif_rotated.jpg")},
    }


@pytest.fixture
def odd_tree(tmp_path):
    root = tmp_path / "odd_images"
    expected = make_odd_tree(root)
    return root, expected
