"""Stage `prepare`: decoded pixels are right for every awkward input, at every size, all or nothing."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from stages.core.errors import DataError
from stages.core.prepared import open_split, read_meta
from stages.prepare import prepare


def splits_for(root, paths: list[str]) -> pd.DataFrame:
    """A splits table putting every given image in every split (enough to test decoding)."""
    rows = [[p, p.split("/")[0], 0, "x", 1, 1, s] for s in ("train", "val", "test") for p in paths]
    return pd.DataFrame(rows, columns=["path", "class_name", "label", "sha256", "width", "height", "split"])


@pytest.fixture
def prepared_odd(odd_tree, tmp_path):
    root, expected = odd_tree
    paths = sorted(expected["decodable"])
    out = tmp_path / "prepared"
    prepare(splits_for(root, paths), str(root), [16, 8], "squash", out)
    return out, paths


def pixel_of(prepared, paths, name, size=16):
    split = open_split("test", size, prepared)
    return split.images[split.paths.index(f"odd/{name}")]


def test_shapes_meta_and_row_order(prepared_odd):
    out, paths = prepared_odd
    meta = read_meta(out)
    assert meta["image_sizes"] == [8, 16] and meta["rows"] == {"train": 7, "val": 7, "test": 7}
    for size in (8, 16):
        split = open_split("train", size, out)
        assert isinstance(split.images, np.memmap)
        assert split.images.shape == (7, size, size, 3) and split.images.dtype == np.uint8
        assert split.paths == paths


def test_awkward_images_decode_to_the_right_rgb(prepared_odd):
    out, paths = prepared_odd
    px = lambda name: pixel_of(out, paths, name).reshape(-1, 3).mean(axis=0)  # noqa: E731
    np.testing.assert_allclose(px("cmyk.jpg"), [255, 0, 0], atol=6)  # CMYK red -> RGB red
    np.testing.assert_allclose(px("gray.png"), [100, 100, 100], atol=0.5)
    np.testing.assert_allclose(px("rgba.png"), [255, 255, 255], atol=0.5)  # transparent -> white
    np.testing.assert_allclose(px("gray16.png"), [128, 128, 128], atol=0.5)  # scaled, not clipped to 255
    np.testing.assert_allclose(px("UPPER.JPG"), [10, 200, 30], atol=6)


def test_exif_orientation_is_applied(prepared_odd):
    out, paths = prepared_odd
    img = pixel_of(out, paths, "exif_rotated.jpg").astype(int)
    top, bottom = img[:6].reshape(-1, 3).mean(0), img[-6:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 50  # red on top
    assert bottom[2] > 200 and bottom[0] < 50  # blue at the bottom


def test_resize_modes_keep_or_stretch_the_aspect_ratio(tmp_path):
    from PIL import Image

    root = tmp_path / "wide"
    (root / "a").mkdir(parents=True)
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red left quarter
    img.save(root / "a" / "x.png")
    frames = {}
    for mode in ("squash", "crop", "pad"):
        prepare(splits_for(root, ["a/x.png"]), str(root), [20], mode, tmp_path / mode)
        frames[mode] = open_split("test", 20, tmp_path / mode).images[0].astype(int)
    assert frames["squash"][10, 2, 0] > 200  # the red quarter is still there, stretched
    assert frames["crop"][10, 2, 0] < 50  # the centre crop cut it off
    assert frames["pad"][0, 10].sum() == 0 and frames["pad"][10, 2, 0] > 200  # black bars, red kept


@pytest.mark.parametrize("name, reason", [
    ("notes.jpg", "cannot decode: UnidentifiedImageError: cannot identify image file (unknown format)"),
    ("truncated.jpg", "cannot decode: OSError: "),
    ("gone.png", "cannot read: FileNotFoundError: "),
])
def test_a_file_that_no_longer_decodes_fails_cleanly(odd_tree, tmp_path, name, reason):
    root, expected = odd_tree
    out = tmp_path / "prepared"
    with pytest.raises(DataError, match=re.escape(f"{root / 'odd' / name}: {reason}")):
        prepare(splits_for(root, ["odd/gray.png", f"odd/{name}"]), str(root), [8], "squash", out)
    assert not out.exists()
    assert not list(tmp_path.glob(".prepared*"))  # no temporary left behind


def test_a_bug_inside_decoding_fails_instead_of_reading_as_a_bad_file(odd_tree, tmp_path, monkeypatch):
    import stages.data.images as images

    def broken(img):
        raise TypeError("a bug in the conversion")

    root, expected = odd_tree
    out = tmp_path / "prepared"
    monkeypatch.setattr(images, "to_rgb", broken)
    with pytest.raises(TypeError, match="a bug"):
        prepare(splits_for(root, ["odd/gray.png"]), str(root), [8], "squash", out)
    assert not out.exists() and not list(tmp_path.glob(".prepared*"))


def test_many_images_stream_through_the_pool(tree, tmp_path):
    root = tree({"a": 300, "b": 300})  # above the size at which a process pool is used
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    prepare(splits_for(root, paths), str(root), [12], "squash", tmp_path / "p")
    split = open_split("val", 12, tmp_path / "p")
    from PIL import Image

    for i in (0, 299, 599):  # 12 px images at 12 px: bytes identical to the source pixels
        np.testing.assert_array_equal(split.images[i], np.asarray(Image.open(root / split.paths[i])))


def test_image_sizes_have_an_upper_bound_that_names_the_key():
    from stages.core.errors import ParamError
    from stages.prepare import MAX_IMAGE_SIZE, parse_params

    assert parse_params({"image_sizes": [32, MAX_IMAGE_SIZE], "resize": "squash"})["image_sizes"] == [32, 2048]
    with pytest.raises(ParamError) as err:
        parse_params({"image_sizes": [32, 100000], "resize": "squash"})
    assert err.value.key.startswith("prepare.image_sizes")


def test_a_store_larger_than_the_free_disk_is_refused_before_writing(odd_tree, tmp_path, monkeypatch):
    import shutil as real_shutil

    from stages.core.errors import ParamError

    root, expected = odd_tree
    splits = splits_for(root, sorted(expected["decodable"]))
    free = 3 * len(splits) * 64 * 64 * 3 // 4 // 3  # three quarters of what 64 px needs
    monkeypatch.setattr(real_shutil, "disk_usage", lambda path: real_shutil._ntuple_diskusage(10**12, 10**12, free))
    out = tmp_path / "prepared"
    with pytest.raises(ParamError, match=r"prepare.image_sizes: \[64\] px for \d+ images needs .* GB free"):
        prepare(splits, str(root), [64], "squash", out)
    assert not out.exists() and not list(tmp_path.glob(".prepared.tmp-*"))
    prepare(splits, str(root), [32], "squash", out)  # a quarter of that fits
    assert read_meta(out)["image_sizes"] == [32]
