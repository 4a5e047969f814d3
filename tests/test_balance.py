"""Stage `balance`: class-selection rules, determinism, awkward files, params errors."""

from __future__ import annotations

import hashlib
import json

import pytest

from stages.balance import balance
from stages.lib.errors import ParamError


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
    assert report["undecodable"] == 3 and report["ignored"] == 4
    json.dumps(report)  # the report must be serialisable as written to metrics/data.json


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
