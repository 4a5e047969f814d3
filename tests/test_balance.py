"""Stage `balance`: class-selection rules, determinism, awkward files, params errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import stages.balance as stage_module
from stages.balance import balance, parse_params
from stages.core.errors import ParamError, run_stage
import stages.data.images as images


def params(source, **over):
    base = dict(source=str(source), select="fewest", num_classes=2, class_names=[], images_per_class=3, seed=0)
    base.update(over)
    return base


# Counts shaped like Stanford Dogs at small scale: K=4 plays the role of 150.
DOGS_LIKE = {"a4": 4, "b4": 4, "c4": 4, "d5": 5, "e5": 5, "f6": 6, "g9": 9, "h3": 3, "i2": 2}


def test_fewest_takes_the_smallest_classes_that_still_have_k(tree):
    root = tree(DOGS_LIKE)
    manifest, report = balance(params(root, num_classes=3, images_per_class=4))
    assert sorted(manifest["class_name"].unique()) == ["a4", "b4", "c4"]  # h3, i2 too small
    # N=5 adds the two classes with the next-smallest counts, downsampled to K.
    manifest, report = balance(params(root, num_classes=5, images_per_class=4))
    assert sorted(manifest["class_name"].unique()) == ["a4", "b4", "c4", "d5", "e5"]
    assert manifest.groupby("class_name").size().tolist() == [4] * 5
    assert report["classes"]["d5"]["decodable"] == 5
    assert report["num_images"] == 20


def test_fewest_breaks_ties_by_name(tree):
    root = tree({"b": 5, "a": 5, "c": 5, "z": 4})
    manifest, _ = balance(params(root, num_classes=2, images_per_class=5))
    assert sorted(manifest["class_name"].unique()) == ["a", "b"]


def test_names_and_all(tree):
    root = tree(DOGS_LIKE)
    manifest, _ = balance(params(root, select="names", class_names=["g9", "d5"], images_per_class=5))
    assert sorted(manifest["class_name"].unique()) == ["d5", "g9"]
    assert manifest.groupby("class_name").size().tolist() == [5, 5]
    manifest, _ = balance(params(root, select="all", images_per_class=5))
    assert sorted(manifest["class_name"].unique()) == ["d5", "e5", "f6", "g9"]


def test_manifest_columns_labels_and_hashes(tree):
    root = tree({"cat": 3, "dog": 4})
    manifest, _ = balance(params(root, select="all", images_per_class=3))
    assert list(manifest.columns) == ["path", "class_name", "label", "sha256", "width", "height"]
    assert dict(zip(manifest["class_name"], manifest["label"])) == {"cat": 0, "dog": 1}
    for row in manifest.itertuples():
        assert row.path.startswith(f"{row.class_name}/")
        assert row.sha256 == hashlib.sha256((root / row.path).read_bytes()).hexdigest()
        assert (row.width, row.height) == (12, 12)


def test_same_seed_same_manifest_other_seed_differs(tree):
    root = tree({"a": 30, "b": 30})
    first, _ = balance(params(root, images_per_class=10))
    again, _ = balance(params(root, images_per_class=10))
    other, _ = balance(params(root, images_per_class=10, seed=1))
    assert first.to_csv(index=False) == again.to_csv(index=False)
    assert set(first["path"]) != set(other["path"])
    assert len(other) == 20


def test_selection_is_stable_when_an_image_is_added(tree):
    root = tree({"a": 30, "b": 30})
    before, _ = balance(params(root, images_per_class=10))
    (root / "a" / "zz_new.png").write_bytes((root / "b" / "img_000.png").read_bytes()[:-1] + b"\x00")
    after, _ = balance(params(root, images_per_class=10))
    assert len(set(before["path"]) ^ set(after["path"])) <= 2


def test_awkward_files_are_handled_and_reported(odd_tree):
    root, expected = odd_tree
    manifest, report = balance(params(root, select="names", class_names=["odd", "plain_a"], images_per_class=4))
    odd_rows = manifest[manifest["class_name"] == "odd"]
    assert len(odd_rows) == 4
    assert set(odd_rows["path"]) <= expected["decodable"]
    assert report["classes"]["odd"]["decodable"] == len(expected["decodable"])
    reasons = {f["path"]: f["reason"] for f in report["undecodable_files"]}
    assert set(reasons) == expected["undecodable"]
    assert "empty" in reasons["odd/empty.jpg"]
    assert "truncated" in reasons["odd/truncated.jpg"].lower()
    assert set(f["path"] for f in report["ignored_files"]) == expected["ignored"]
    assert report["undecodable"] == 3 and report["ignored"] == 5
    assert json.loads(json.dumps(report, allow_nan=False)) == report  # written as is to metrics/data.json


def test_exif_orientation_sets_width_and_height(odd_tree):
    root, expected = odd_tree
    manifest, _ = balance(params(root, select="names", class_names=["odd", "plain_a"], images_per_class=4, seed=3))
    for seed in range(40):  # find a seed that selects the rotated file
        manifest, _ = balance(params(root, select="names", class_names=["odd", "plain_a"], images_per_class=4, seed=seed))
        row = manifest[manifest["path"] == "odd/exif_rotated.jpg"]
        if len(row):
            break
    assert (int(row["width"].iloc[0]), int(row["height"].iloc[0])) == (10, 20)


def test_source_folder_is_not_modified(odd_tree):
    root, _ = odd_tree
    snapshot = lambda: sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file())  # noqa: E731
    before = snapshot()
    balance(params(root, select="all", images_per_class=4))
    assert snapshot() == before


# --- what counts as an undecodable file: a decode or read error, with its type; never a bug ----

def png_chunk(cid: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + cid + body + struct.pack(">I", zlib.crc32(cid + body))


def png_with_broken_chunk() -> bytes:
    """A PNG whose image data goes on in a chunk with a garbled type: Pillow raises SyntaxError."""
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), (1, 2, 3)).save(buf, format="PNG")
    data, pos, out = buf.getvalue(), 8, buf.getvalue()[:8]
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        cid, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if cid == b"IDAT":  # the image data in two chunks, the second with a garbled type
            out += png_chunk(b"IDAT", body[:length // 2]) + png_chunk(b"\0\1\2\3", body[length // 2:])
        else:
            out += png_chunk(cid, body)
        pos += 12 + length
    return out


def png_header(width: int, height: int, ihdr_size: int = 13) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)[:ihdr_size]
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def jpeg_with_mistyped_exif() -> bytes:
    """20x10 JPEG, EXIF orientation 6 (display rotated: 10x20), and an ImageDescription stored as
    a FLOAT: Pillow reads it but cannot write it back (ImageOps.exif_transpose fails on it)."""
    entries = [(0x010E, 11, 1, b"\1\0\0\0"), (0x0112, 3, 1, struct.pack("<HH", 6, 0))]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", *e[:3]) + e[3] for e in entries)
    exif = b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (0, 0, 255)).save(buf, format="JPEG", quality=95, exif=exif)
    return buf.getvalue()


def test_each_skipped_file_is_reported_with_the_error_type_and_message(tree):
    root = tree({"a": 3, "b": 3})
    good = (root / "a" / "img_000.png").read_bytes()
    files = {
        "a/broken_chunk.png": png_with_broken_chunk(),  # SyntaxError
        "a/huge.png": png_header(100_000, 100_000),  # DecompressionBombError: 10^10 pixels claimed
        "b/short_header.png": png_header(12, 12, ihdr_size=5),  # ValueError
        "b/text.png": b"plain text",  # UnidentifiedImageError
        "b/truncated.png": good[: len(good) // 2],  # OSError
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    os.symlink(root / "nowhere.png", root / "b" / "dangling.png")  # skipped at listing (test_hostile_folders.py)

    manifest, report = balance(params(root, select="all", images_per_class=3))
    reasons = {f["path"]: f["reason"] for f in report["undecodable_files"]}
    assert reasons.pop("a/broken_chunk.png") == \
        r"cannot decode: SyntaxError: broken PNG file (chunk b'\x00\x01\x02\x03')"
    assert reasons.pop("a/huge.png").startswith(
        "cannot decode: DecompressionBombError: Image size (10000000000 pixels) exceeds limit")
    assert reasons.pop("b/short_header.png") == "cannot decode: ValueError: Truncated IHDR chunk"
    assert reasons.pop("b/text.png") == \
        "cannot decode: UnidentifiedImageError: cannot identify image file (unknown format)"
    assert reasons.pop("b/truncated.png").startswith("cannot decode: OSError: ")
    assert reasons == {}
    assert {f["path"]: f["reason"] for f in report["ignored_files"]}["b/dangling.png"].startswith("dangling symlink")
    assert len(manifest) == 6 and report["undecodable"] == 5 and report["files_checked"] == 11


def test_malformed_exif_metadata_does_not_make_an_image_undecodable(tree):
    root = tree({"a": 3, "b": 4})
    (root / "a" / "mistyped_exif.jpg").write_bytes(jpeg_with_mistyped_exif())
    manifest, report = balance(params(root, select="all", images_per_class=4))
    assert report["undecodable"] == 0 and report["classes"]["a"]["decodable"] == 4
    row = manifest[manifest["path"] == "a/mistyped_exif.jpg"]
    assert (int(row["width"].iloc[0]), int(row["height"].iloc[0])) == (10, 20)  # still turned upright


def _raise(error: Exception):
    def broken(*args, **kwargs):
        raise error
    return broken


@pytest.mark.parametrize("where, error", [
    ("open", TypeError("a bug in the decoder")),
    ("load", AttributeError("a bug in the decoder")),
    ("to_rgb", KeyError("a bug in the conversion")),
])
def test_a_bug_inside_decoding_fails_instead_of_skipping_images(tree, monkeypatch, where, error):
    root = tree({"a": 3, "b": 3})
    target = {"open": (Image, "open"), "load": (Image.Image, "load"), "to_rgb": (images, "to_rgb")}[where]
    monkeypatch.setattr(*target, _raise(error))
    with pytest.raises(type(error), match="a bug"):
        balance(params(root, select="all", images_per_class=3))



def test_a_bug_inside_a_worker_process_fails_too(tree, monkeypatch):
    from stages.data.parallel import MIN_ITEMS_FOR_POOL

    root = tree({"a": MIN_ITEMS_FOR_POOL // 2 + 1, "b": MIN_ITEMS_FOR_POOL // 2 + 1})  # decoded in a pool
    monkeypatch.setattr(images, "to_rgb", _raise(AttributeError("a bug in the conversion")))
    with pytest.raises(AttributeError, match="a bug"):
        balance(params(root, select="all", images_per_class=3))

@pytest.mark.parametrize(
    "over, key, words",
    [
        (dict(images_per_class=50), "balance.images_per_class", "larger than every class"),
        (dict(num_classes=9, images_per_class=4), "balance.num_classes", "only 7 of 9"),
        (dict(num_classes=12), "balance.num_classes", "has only 9"),
        (dict(select="names", class_names=["a4", "nope"]), "balance.class_names", "nope"),
        (dict(select="names", class_names=["a4", "g9"], images_per_class=5), "balance.images_per_class", "a4 (4)"),
        (dict(select="sideways"), "balance.select", "fewest"),
        (dict(images_per_class=0), "balance.images_per_class", ">= 1"),
        (dict(images_per_class="ten"), "balance.images_per_class", "integer"),
        (dict(colour="red"), "balance.colour", "unknown key"),
    ],
)
def test_bad_params_name_the_key(tree, over, key, words):
    root = tree(DOGS_LIKE)
    with pytest.raises(ParamError) as err:
        balance(params(root, **over))
    assert err.value.key == key
    assert key in str(err.value) and words in str(err.value)


def test_bad_source_folders(tmp_path, tree):
    with pytest.raises(ParamError, match="balance.source.*folder not found"):
        balance(params(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParamError, match="balance.source.*empty.*no class sub-folders"):
        balance(params(tmp_path / "empty"))
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes(b"x")
    with pytest.raises(ParamError, match="1 loose files.*no class sub-folders"):
        balance(params(flat))


# --- images_per_class: min ----------------------------------------------------------------------

def add_broken(root, cls: str, n: int = 1):
    """``n`` undecodable .png files in ``root/cls``: listed as candidates, never counted."""
    (root / cls).mkdir(exist_ok=True)
    for i in range(n):
        (root / cls / f"broken_{i}.png").write_bytes(b"not a png")


def test_min_with_all_keeps_every_class_at_its_smallest_decodable_count(tree):
    # "about 6 per class": a fixed K=6 would drop b, which has 6 files but only 5 decode.
    root = tree({"a": 6, "b": 5, "c": 7})
    add_broken(root, "b")
    add_broken(root, "nothing", 2)  # no decodable image: not a class
    manifest, report = balance(params(root, select="all", images_per_class="min"))
    assert sorted(manifest["class_name"].unique()) == ["a", "b", "c"]
    assert manifest.groupby("class_name").size().tolist() == [5, 5, 5]
    assert report["images_per_class"] == 5 and report["images_per_class_rule"] == "min"
    same, _ = balance(params(root, select="all", images_per_class=5))
    assert manifest.equals(same)  # min only picks K; selection is the numeric rule's
    fixed, report = balance(params(root, select="all", images_per_class=6))
    assert sorted(fixed["class_name"].unique()) == ["a", "c"]
    assert report["images_per_class_rule"] == 6


def test_min_with_names_is_the_smallest_named_class(tree):
    root = tree(DOGS_LIKE)
    manifest, report = balance(params(root, select="names", class_names=["g9", "f6", "d5"], images_per_class="min"))
    assert sorted(manifest["class_name"].unique()) == ["d5", "f6", "g9"]  # i2 / h3 elsewhere do not set K
    assert manifest.groupby("class_name").size().tolist() == [5, 5, 5]
    assert report["images_per_class"] == 5


@pytest.mark.parametrize(
    "over, words",
    [
        (dict(select="fewest", images_per_class="min"), "fewest needs a number"),
        (dict(select="all", images_per_class="max"), "integer >= 1 or 'min'"),
        (dict(select="all", images_per_class="MIN"), "integer >= 1 or 'min'"),
        (dict(select="all", images_per_class=2.5), "integer >= 1 or 'min'"),
    ],
)
def test_min_params_errors(over, words):
    with pytest.raises(ParamError) as err:
        parse_params(params("/nowhere", **over))
    assert err.value.key == "balance.images_per_class" and words in str(err.value)
    assert parse_params(params("/nowhere", select="names", class_names=["a", "b"], images_per_class="min")
                        ).images_per_class == "min"


@pytest.mark.parametrize(
    "counts, broken, over, words",
    [
        ({"a": 5, "b": 2}, {}, dict(select="all"), ["'min' resolves to 2", "b (2 decodable", "train, val and test"]),
        ({"a": 5, "b": 4}, {"c": 3}, dict(select="names", class_names=["a", "c"]), ["resolves to 0", "c (0 decodable"]),
        ({"a": 5}, {"b": 2}, dict(select="all"), ["needs 2 classes", "only 1 of 2 classes has one (a (5))"]),
    ],
)
def test_min_too_small_names_the_class(tree, counts, broken, over, words):
    root = tree(counts)
    for cls, n in broken.items():
        add_broken(root, cls, n)
    with pytest.raises(ParamError) as err:
        balance(params(root, images_per_class="min", **over))
    assert err.value.key == "balance.images_per_class"
    for w in words:
        assert w in str(err.value)


# --- class_name_pattern: the Stanford Dogs layout ---------------------------------------------

DOG_PATTERN = r"^n\d+-(.+)$"


def jpg_bytes(seed: int, size: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_dogs(root, counts: dict[str, int]):
    """Stanford Dogs' layout: ``root/Images/<wordnet id>-<breed>/<id>_<i>.jpg``."""
    for b, (folder, n) in enumerate(sorted(counts.items())):
        (root / "Images" / folder).mkdir(parents=True)
        for i in range(n):
            (root / "Images" / folder / f"{folder.split('-')[0]}_{i}.jpg").write_bytes(jpg_bytes(b * 100 + i))
    return root / "Images"


DOGS = {"n02085620-Chihuahua": 5, "n02085782-Japanese_spaniel": 6, "n02085936-Maltese_dog": 4,
        "n02086079-Pekinese": 3, "n02086240-Shih-Tzu": 7}


def test_dog_breed_folders_fewest_with_pattern(tmp_path):
    images = make_dogs(tmp_path, DOGS)
    manifest, report = balance(params(images, num_classes=3, images_per_class=4, class_name_pattern=DOG_PATTERN))
    # Pekinese (3) has too few; the next three by count are 4, 5 and 6 images.
    assert sorted(manifest["class_name"].unique()) == ["Chihuahua", "Japanese_spaniel", "Maltese_dog"]
    assert manifest.groupby("class_name").size().tolist() == [4, 4, 4]
    for row in manifest.itertuples():  # the path is still the real folder, so `prepare` finds the file
        assert (images / row.path).is_file() and row.path.split("/")[0].endswith(f"-{row.class_name}")
    assert report["classes"]["Chihuahua"] == {"label": 0, "decodable": 5, "renamed_from": "n02085620-Chihuahua"}
    _, unmapped = balance(params(images, num_classes=3, images_per_class=4))
    assert unmapped["classes"]["n02085620-Chihuahua"] == {"label": 0, "decodable": 5}


def test_class_names_refer_to_the_mapped_names(tmp_path):
    images = make_dogs(tmp_path, DOGS)
    manifest, _ = balance(params(images, select="names", class_names=["Shih-Tzu", "Pekinese"], images_per_class=3,
                                 class_name_pattern=DOG_PATTERN))
    assert sorted(manifest["class_name"].unique()) == ["Pekinese", "Shih-Tzu"]
    with pytest.raises(ParamError, match="balance.class_names.*n02086079-Pekinese.*available: Chihuahua"):
        balance(params(images, select="names", class_names=["Shih-Tzu", "n02086079-Pekinese"],
                       class_name_pattern=DOG_PATTERN))


def test_a_name_the_pattern_does_not_match_stays_as_is(tmp_path):
    images = make_dogs(tmp_path, {"n02085620-Chihuahua": 3, "pug": 3})
    manifest, _ = balance(params(images, select="all", class_name_pattern=DOG_PATTERN))
    assert sorted(manifest["class_name"].unique()) == ["Chihuahua", "pug"]


def test_two_folders_mapping_to_one_class_is_an_error(tmp_path):
    images = make_dogs(tmp_path, {"n02085620-Chihuahua": 3, "n09999999-Chihuahua": 3, "n02086240-Shih-Tzu": 3})
    with pytest.raises(ParamError) as err:
        balance(params(images, select="all", class_name_pattern=DOG_PATTERN))
    assert err.value.key == "balance.class_name_pattern"
    assert "n02085620-Chihuahua" in str(err.value) and "n09999999-Chihuahua" in str(err.value)


# --- labels from a CSV: the Flipkart product layout -------------------------------------------

FLIPKART_CSV = "flipkart_com-ecommerce_sample_1050.csv"
TREES = {  # category tree -> number of products
    "Home Furnishing >> Curtains & Accessories >> Curtains": 3,
    "Home Furnishing >> Bed Linen >> Bedsheets": 2,
    "Watches >> Wrist Watches": 4,
    "Baby Care >> Baby Bath & Skin >> Baby Bath Towels": 4,
}


def product_rows(trees: dict[str, int], wrap: bool = True) -> list[dict]:
    rows = []
    for t, (tree, n) in enumerate(trees.items()):
        for i in range(n):
            name = hashlib.md5(f"{t}-{i}".encode()).hexdigest() + ".jpg"
            label = json.dumps([f"{tree} >> Product {t}-{i} (213 cm, Multicolor)"]) if wrap else tree
            rows.append({"image": name, "product_category_tree": label, "description": 'Key "Features",\nnew line'})
    return rows


def make_products(root, rows: list[dict], on_disk: list[str] | None = None):
    """``root/<csv>`` plus ``root/Images/<file>`` for every row (or for ``on_disk``)."""
    (root / "Images").mkdir(parents=True)
    names = on_disk if on_disk is not None else sorted({r["image"] for r in rows})
    for i, name in enumerate(names):
        (root / "Images" / name).write_bytes(jpg_bytes(1000 + i))
    pd.DataFrame(rows).to_csv(root / FLIPKART_CSV, index=False)
    return root


def csv_params(root, level=0, **over):
    labels = dict(csv=FLIPKART_CSV, file_column="image", label_column="product_category_tree", image_dir="Images",
                  separator=">>", level=level)
    labels.update(over.pop("labels", {}))
    return params(root, select="all", labels=labels, **over)


def test_csv_labels_hierarchy_levels_and_json_wrapping(tmp_path):
    rows = product_rows(TREES)
    rows[0]["product_category_tree"] = "Home Furnishing >> Curtains & Accessories >> Curtains"  # not wrapped
    root = make_products(tmp_path / "flipkart", rows)
    snapshot = sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file())

    manifest, report = balance(csv_params(root, level=0, images_per_class=4))
    labels = dict(zip(manifest["class_name"], manifest["label"], strict=True))
    assert labels == {"Baby Care": 0, "Home Furnishing": 1, "Watches": 2}
    assert report["classes"]["Home Furnishing"]["decodable"] == 5
    assert report["labels_csv"] == FLIPKART_CSV and report["missing"] == 0 and report["rejected"] == 0
    for row in manifest.itertuples():  # relative to source, as `prepare` reads <source>/<path>
        assert row.path.startswith("Images/") and row.path.endswith(".jpg")
        assert row.sha256 == hashlib.sha256((root / row.path).read_bytes()).hexdigest()
        assert (row.width, row.height) == (8, 8)

    manifest, _ = balance(csv_params(root, level=1, images_per_class=2))
    assert sorted(manifest["class_name"].unique()) == [
        "Baby Bath & Skin", "Bed Linen", "Curtains & Accessories", "Wrist Watches"
    ]
    # Levels count from the leaf too: the wrapped labels end in a product name, the unwrapped one in "Curtains".
    _, report = balance(csv_params(root, level=-1, images_per_class=1))
    assert len(report["classes"]) == 13
    assert {"Curtains", "Product 2-0 (213 cm, Multicolor)"} <= set(report["classes"])
    with pytest.raises(ParamError, match="balance.images_per_class.*largest has 1 image files"):
        balance(csv_params(root, level=-1, images_per_class=2))
    _, report = balance(csv_params(root, level=-2, images_per_class=2))
    assert set(report["classes"]) == {"Baby Bath Towels", "Bedsheets", "Curtains", "Wrist Watches"}
    assert report["classes"]["Curtains"]["decodable"] == 2  # the unwrapped row is "Curtains & Accessories" here
    assert sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file()) == snapshot


@pytest.mark.parametrize("cell, parts", [
    ('["Computers >> Laptops >> 15.6" Laptop"]', ["Computers", "Laptops", '15.6" Laptop']),  # not JSON
    ('["Watches >> Wrist \\ Watches"]', ["Watches", "Wrist \\ Watches"]),  # a stray backslash, not JSON
    ('["Baby Care >> Soap"]', ["Baby Care", "Soap"]),
])
def test_wrapped_labels_that_are_not_valid_json_still_give_their_levels(cell, parts):
    from stages.data.labels import label_parts

    assert label_parts(cell, ">>") == parts


def test_bracketed_label_that_is_no_list_is_rejected():
    from stages.data.labels import BadLabel, label_parts

    with pytest.raises(BadLabel, match="not valid JSON"):
        label_parts("[Watches >> Wrist Watches]", ">>")


def test_csv_manifest_prepares_unchanged(tmp_path):
    from stages.prepare import prepare

    root = make_products(tmp_path / "flipkart", product_rows(TREES))
    manifest, _ = balance(csv_params(root, images_per_class=4))
    splits = pd.concat([manifest.assign(split=s) for s in ("train", "val", "test")], ignore_index=True)
    meta = prepare(splits, str(root), [8], "squash", tmp_path / "prepared")
    assert meta["rows"] == {"train": 12, "val": 12, "test": 12}


def test_a_listed_symlink_is_read_only_inside_the_source_and_listed(tmp_path):
    """The CSV form, as the folder form: a listed path through a symlink is followed only to a
    regular file inside balance.source (and listed in links_followed); one leaving the source
    (an image DVC does not track as part of the dataset), a dangling one or a FIFO is reported
    as missing with its reason, never read."""
    rows = product_rows({"Watches >> Wrist Watches": 4, "Baby Care >> Soap": 4})
    extra = [{"image": n, "product_category_tree": "Watches >> Wrist Watches"}
             for n in ("inside.jpg", "outside.jpg", "dangling.jpg", "via_folder/x.jpg", "pipe.jpg")]
    root = make_products(tmp_path / "flipkart", rows + extra, on_disk=sorted(r["image"] for r in rows))
    images = root / "Images"
    (images / "inside.jpg").symlink_to(images / rows[0]["image"])
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.jpg").write_bytes(jpg_bytes(7))
    (images / "outside.jpg").symlink_to(tmp_path / "elsewhere" / "x.jpg")
    (images / "dangling.jpg").symlink_to(images / "nothing.jpg")
    (images / "via_folder").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    os.mkfifo(images / "pipe.jpg")

    manifest, report = balance(csv_params(root, images_per_class=4))
    reasons = {m["path"]: m["reason"] for m in report["missing_files"]}
    assert reasons["Images/outside.jpg"] == reasons["Images/via_folder/x.jpg"] == \
        "symlink leaving the source folder (balance.source)"
    assert reasons["Images/dangling.jpg"].startswith("dangling symlink")
    assert reasons["Images/pipe.jpg"] == "not a regular file (fifo): never opened"
    assert report["links_followed"] == [{"path": "Images/inside.jpg", "target": f"Images/{rows[0]['image']}"}]
    assert not set(manifest["path"]) & {"Images/outside.jpg", "Images/via_folder/x.jpg", "Images/dangling.jpg"}


def test_missing_files_and_unusable_rows_are_reported_not_fatal(tmp_path):
    rows = product_rows(TREES, wrap=False)
    listed = sorted(r["image"] for r in rows)
    watch = next(r for r in rows if r["product_category_tree"].startswith("Watches"))
    rows += [
        dict(watch),  # an identical duplicate row: counts once
        {"image": "gone_1.jpg", "product_category_tree": "Watches >> Wrist Watches"},
        {"image": "gone_2.jpg", "product_category_tree": "Baby Care >> Soap"},
        {"image": "../../outside.jpg", "product_category_tree": "Watches"},
        {"image": "/etc/passwd", "product_category_tree": "Watches"},
        {"image": "no_label.jpg", "product_category_tree": "[]"},
        {"image": "", "product_category_tree": "Watches"},
    ]
    root = make_products(tmp_path / "flipkart", rows, on_disk=[*listed, "no_label.jpg", "unlisted.jpg"])

    manifest, report = balance(csv_params(root, images_per_class=4))
    assert report["missing"] == 2
    assert report["missing_files"] == [{"path": "Images/gone_1.jpg", "reason": "not found"},
                                       {"path": "Images/gone_2.jpg", "reason": "not found"}]
    assert report["classes"]["Watches"]["decodable"] == 4  # the duplicate counted once
    reasons = {r["path"]: r["reason"] for r in report["rejected_rows"]}
    assert set(reasons) == {"../../outside.jpg", "/etc/passwd", "Images/no_label.jpg", ""}
    assert "outside" in reasons["../../outside.jpg"] and "absolute" in reasons["/etc/passwd"]
    assert reasons["Images/no_label.jpg"] == "empty label" and reasons[""] == "empty file name"
    assert report["rejected"] == 4 and report["conflicting_files"] == 0
    assert report["unlisted"] == 1 and report["unlisted_files"] == ["Images/unlisted.jpg"]  # named, not counted
    assert set(manifest["path"]) <= {f"Images/{n}" for n in listed}
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_files_listed_with_conflicting_classes_are_left_out(tmp_path):
    rows = product_rows(TREES, wrap=False)
    towel = next(r["image"] for r in rows if r["product_category_tree"].startswith("Baby"))
    curtain = next(r["image"] for r in rows if r["product_category_tree"].endswith("Curtains"))
    rows += [{"image": towel, "product_category_tree": "Watches >> Wrist Watches"},  # another top category
             {"image": curtain, "product_category_tree": "Home Furnishing >> Cushions"}]  # same top, other leaf
    root = make_products(tmp_path / "flipkart", rows)

    _, report = balance(csv_params(root, level=0, images_per_class=3))
    assert report["conflicting_files"] == 1
    conflicts = [r for r in report["rejected_rows"] if "conflicting" in r["reason"]]
    assert [r["path"] for r in conflicts] == [f"Images/{towel}"] * 2
    assert "Baby Care" in conflicts[0]["reason"] and "Watches" in conflicts[0]["reason"]
    assert report["classes"]["Baby Care"]["decodable"] == 3 and report["classes"]["Home Furnishing"]["decodable"] == 5

    _, report = balance(csv_params(root, level=-1, images_per_class=1))  # now the curtain's leaves disagree
    assert report["conflicting_files"] == 2


def test_csv_labels_with_a_pattern(tmp_path):
    rows = [{"image": f"{i}.jpg", "label": f"{code}-{name}"} for i, (code, name) in
            enumerate([("n1", "Pug"), ("n1", "Pug"), ("n2", "Husky"), ("n2", "Husky"), ("x", "y")])]
    root = make_products(tmp_path / "csv", rows)
    labels = dict(file_column="image", label_column="label", separator=None, level=0)
    manifest, report = balance(csv_params(root, labels=labels, images_per_class=2, class_name_pattern=r"^n\d+-(.+)$"))
    assert sorted(manifest["class_name"].unique()) == ["Husky", "Pug"]
    assert report["classes"]["Pug"]["renamed_from"] == "n1-Pug"
    rows.append({"image": "5.jpg", "label": "n3-Pug"})
    root = make_products(tmp_path / "csv2", rows)
    with pytest.raises(ParamError, match="balance.class_name_pattern.*'n1-Pug' and 'n3-Pug'"):
        balance(csv_params(root, labels=labels, images_per_class=2, class_name_pattern=r"^n\d+-(.+)$"))


@pytest.mark.parametrize(
    "labels, key, words",
    [
        (dict(label_column="category"), "balance.labels.label_column", "columns: image, product_category_tree, desc"),
        (dict(file_column="file"), "balance.labels.file_column", "no column 'file'"),
        (dict(csv="labels/other.csv"), "balance.labels.csv", "file not found: "),
        (dict(level=3), "balance.labels.level", "the deepest has 3"),
        (dict(level=-4), "balance.labels.level", "no label"),
        (dict(image_dir="Imgs"), "balance.labels.image_dir", "folder not found"),
        (dict(image_dir="."), "balance.labels.image_dir", "none of the 13 files"),
    ],
)
def test_bad_csv_params_name_the_key(tmp_path, labels, key, words):
    root = make_products(tmp_path / "flipkart", product_rows(TREES, wrap=False))
    with pytest.raises(ParamError) as err:
        balance(csv_params(root, labels=labels))
    assert err.value.key == key
    assert words in str(err.value)
    if key == "balance.labels.csv":
        assert str(root / "labels/other.csv") in str(err.value)


def test_unreadable_csv(tmp_path):
    root = make_products(tmp_path / "flipkart", product_rows(TREES))
    (root / FLIPKART_CSV).write_bytes(b"image,product_category_tree\n\xff\xfe\x00bad,\x81\n")
    with pytest.raises(ParamError, match=r"balance.labels.csv: cannot read .*flipkart_com.*UnicodeDecodeError"):
        balance(csv_params(root))


# --- params are validated without the data ----------------------------------------------------

def test_parse_params_needs_no_data_and_accepts_old_param_dicts():
    old = params("/nowhere/at/all")
    parsed = parse_params(old)
    assert parsed.labels is None and parsed.class_name_pattern is None and parsed.num_classes == 2
    parsed = parse_params(params("/nowhere", labels={"csv": "a/b.csv", "level": -1}, class_name_pattern=DOG_PATTERN))
    assert parsed.labels.csv == "a/b.csv" and parsed.labels.level == -1 and parsed.labels.file_column == "image"
    assert parsed.labels.label_column == "label" and parsed.labels.image_dir == "." and parsed.labels.separator == ">>"
    assert parsed.class_name_pattern.pattern == DOG_PATTERN
    assert parse_params(params("/nowhere", labels={"csv": None, "level": 2})).labels is None  # folder mode


@pytest.mark.parametrize(
    "over, key, words",
    [
        (dict(class_name_pattern="n(\\d+"), "balance.class_name_pattern", "invalid regular expression"),
        (dict(class_name_pattern="^n\\d+-.+$"), "balance.class_name_pattern", "has 0"),
        (dict(class_name_pattern="^(n\\d+)-(.+)$"), "balance.class_name_pattern", "has 2"),
        (dict(class_name_pattern=5), "balance.class_name_pattern", "regular expression"),
        (dict(labels="labels.csv"), "balance.labels", "expected a mapping"),
        (dict(labels={"csv": "l.csv", "colum": "x"}), "balance.labels.colum", "unknown key"),
        (dict(labels={"csv": "l.csv", "level": "leaf"}), "balance.labels.level", "integer"),
        (dict(labels={"csv": "../l.csv"}), "balance.labels.csv", "inside balance.source"),
        (dict(labels={"csv": "/data/l.csv"}), "balance.labels.csv", "inside balance.source"),
        (dict(labels={"csv": None, "image_dir": "/data"}), "balance.labels.image_dir", "inside balance.source"),
        (dict(labels={"csv": "l.csv", "label_column": ""}), "balance.labels.label_column", "empty"),
        (dict(select="all", num_classes="ten"), "balance.num_classes", "integer"),
        (dict(select="names", class_names=["a"]), "balance.class_names", "at least 2"),
        (dict(select="names", class_names=["a", "a"]), "balance.class_names", "more than once"),
    ],
)
def test_parse_params_errors_name_the_key(over, key, words):
    with pytest.raises(ParamError) as err:
        parse_params(params("/nowhere", **over))
    assert err.value.key == key and words in str(err.value)


# --- the stage entry point ----------------------------------------------------------------------

def run_main(monkeypatch, tmp_path, values) -> int:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stage_module, "stage_params", lambda stage: {"balance": values})
    try:
        run_stage(stage_module.main)
    except SystemExit as exit_:
        return exit_.code
    return 0


def test_main_warns_about_missing_files_and_fails_cleanly_on_bad_params(tmp_path, monkeypatch, capsys):
    rows = product_rows(TREES) + [{"image": "gone.jpg", "product_category_tree": '["Watches >> X"]'}]
    root = make_products(tmp_path / "flipkart", rows, on_disk=[r["image"] for r in rows[:-1]])
    out = tmp_path / "run"
    out.mkdir()

    assert run_main(monkeypatch, out, csv_params(root, images_per_class=4)) == 0
    err = capsys.readouterr().err
    assert f"warning: balance: {FLIPKART_CSV}: 1 listed files missing, 0 rows unusable" in err
    assert json.loads((out / "metrics/data_files.json").read_text())["missing_files"][0]["path"] == "Images/gone.jpg"
    counts = json.loads((out / "metrics/data.json").read_text())  # what DVC shows: counts, no file lists
    assert counts["missing"] == 1 and not [v for v in counts.values() if isinstance(v, (dict, list))]
    assert len(pd.read_csv(out / "data/manifest.csv")) == 12

    bad = tmp_path / "bad"
    bad.mkdir()
    assert run_main(monkeypatch, bad, csv_params(root, labels=dict(label_column="category"))) == 2
    *_, error, took = capsys.readouterr().err.strip().splitlines()
    assert error.startswith("error: params.yaml: balance.labels.label_column: no column 'category'")
    assert re.fullmatch(r"\S+: failed after \d+\.\d s", took), took
    assert list(bad.iterdir()) == []  # nothing half-written


def test_main_prints_the_resolved_k(tree, tmp_path, monkeypatch, capsys):
    root = tree({"a": 4, "b": 6})
    assert run_main(monkeypatch, tmp_path, params(root, select="all", images_per_class="min")) == 0
    assert "2 classes x 4 images (images_per_class: min) = 8" in capsys.readouterr().out
    assert json.loads((tmp_path / "metrics/data.json").read_text())["images_per_class"] == 4


def test_a_param_the_rule_does_not_use_is_said_out_loud(tree):
    root = tree({"a": 3, "b": 3, "c": 3})
    _, report = balance(params(root, select="all", num_classes=2))
    assert report["num_classes"] == 3  # all: every class
    assert report["unused_params"] == ["balance.num_classes=2 has no effect with select 'all' (every class is used)"]
    _, report = balance(params(root, select="fewest", num_classes=2))
    assert report["unused_params"] == []
    # class_names outside select: names, and with it num_classes where names decide.
    _, report = balance(params(root, select="all", num_classes=None, class_names=["a", "b"]))
    assert report["unused_params"] == ["balance.class_names has no effect with select 'all'"]
    _, report = balance(params(root, select="names", num_classes=2, class_names=["a", "b"]))
    assert report["unused_params"] == ["balance.num_classes=2 has no effect with select 'names' (class_names decides)"]


@pytest.mark.slow  # a 75-megapixel JPEG, verified in a fresh process
def test_a_huge_jpeg_is_verified_at_reduced_scale_with_its_full_size_and_orientation(tmp_path):
    """Every byte is decoded (truncation still fails), at 1/8 scale: the pixels alone at full size
    are 225 MB (a 94-MP photo took 803 MB per worker); width and height are the upright full size."""
    import subprocess
    import sys

    small = Image.fromarray(np.random.default_rng(0).integers(0, 255, (75, 100, 3), dtype=np.uint8))
    big = small.resize((10000, 7500))
    exif = big.getexif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    big.save(tmp_path / "big.jpg", quality=90, exif=exif)
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "big.jpg").read_bytes()[:3_000_000])
    code = (f"import sys; sys.path.insert(0, {str(Path(stage_module.__file__).parents[1])!r})\n"
            "from stages.data.images import inspect_image, BadImage\n"
            f"info = inspect_image({str(tmp_path / 'big.jpg')!r})\n"
            # VmHWM: this process's peak (ru_maxrss would carry the forking pytest's over the exec)
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print(info.width, info.height, int(hwm) // 1024)\n"
            f"try:\n    inspect_image({str(tmp_path / 'cut.jpg')!r})\nexcept BadImage as err:\n    print('bad', err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    width, height, peak_mb = map(int, out[0].split())
    assert (width, height) == (7500, 10000)
    assert peak_mb < 200, f"peak RSS {peak_mb} MB: decoded at full size?"
    assert out[1].startswith("bad cannot decode")


def test_identical_bytes_under_two_classes_are_rejected_in_both_input_forms(tree, tmp_path):
    """A photo filed under cat and dog: which label is right cannot be told, so every copy goes
    (the default, balance.cross_class_duplicates: reject) and is listed; `keep` keeps each."""
    root = tree({"cat": 4, "dog": 4, "bird": 4})
    (root / "dog" / "same_as_cat.png").write_bytes((root / "cat" / "img_000.png").read_bytes())
    manifest, report = balance(params(root, select="all", images_per_class=3))
    assert "cat/img_000.png" not in set(manifest["path"]) and "dog/same_as_cat.png" not in set(manifest["path"])
    rejected = {r["path"]: r for r in report["cross_class_rejected_files"]}
    assert set(rejected) == {"cat/img_000.png", "dog/same_as_cat.png"} and report["cross_class_rejected"] == 2
    assert rejected["cat/img_000.png"]["reason"] == "identical bytes also in class dog: one file, one label"
    assert report["cross_class_duplicate_groups"] == 0 and report["files_checked"] == 13
    _, report = balance(params(root, select="all", images_per_class=3, cross_class_duplicates="keep"))
    assert report["cross_class_rejected_files"] == [] and report["classes"]["dog"]["decodable"] == 5
    with pytest.raises(ParamError, match="balance.cross_class_duplicates"):
        balance(params(root, select="all", images_per_class=3, cross_class_duplicates="maybe"))

    # The labels-CSV form: two file names, the same bytes, two labels -> both rejected the same way.
    rows = product_rows(TREES)
    products = make_products(tmp_path / "flipkart", rows)
    first, other = rows[0], next(r for r in rows if r["product_category_tree"].split(">>")[0].strip("[\"' ")
                                 != rows[0]["product_category_tree"].split(">>")[0].strip("[\"' "))
    (products / "Images" / other["image"]).write_bytes((products / "Images" / first["image"]).read_bytes())
    _, report = balance(csv_params(products, images_per_class=2))
    assert {r["path"] for r in report["cross_class_rejected_files"]} == {f"Images/{first['image']}",
                                                                         f"Images/{other['image']}"}
