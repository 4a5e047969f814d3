"""Any folder a user points at: no hang, no loop, no silent mislabelling.

Links: directory symlinks are never followed (a loop would list files again and again; and
``cat/more -> ../dog`` would label dog photos "cat"); a file symlink is followed only to a
regular file inside its own class folder. FIFOs, sockets and devices are never opened. Every
link not followed, and every special file, is reported with its reason in metrics/data.json;
every link followed is listed there too. `dvc repro` itself hashes the source folder before any
stage runs (it waits forever on a FIFO and stops on a dangling link), so preflight lists what it
cannot hash, all at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, make_tree, png_bytes, run
from stages.balance import balance
from stages.lib.image_files import entries_dvc_cannot_hash, list_class_files
from stages.lib.images import BadImage, inspect_image, load_rgb

pytestmark = pytest.mark.timeout(300)  # a hang is a failure, not a stuck CI job


def hostile_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Classes cat/dog/bird (4 images each) plus every kind of link and special file in cat.
    Returns the source root and the reason expected for each skipped entry."""
    root = make_tree(tmp_path / "source", {"cat": 4, "dog": 4, "bird": 4})
    cat = root / "cat"
    names = sorted(p.name for p in cat.iterdir())
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(png_bytes(42))
    os.mkfifo(cat / "fifo.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(cat / "socket.png"))
    sock.close()
    (cat / "loop").symlink_to("..")                       # a directory symlink loop
    (cat / "more_dogs").symlink_to("../dog")              # another class's folder
    (cat / "gone.jpg").symlink_to("nowhere.jpg")          # dangling
    (cat / "escape.png").symlink_to(outside)              # leaves the source folder
    (cat / "dog_photo.png").symlink_to(f"../dog/{sorted(p.name for p in (root / 'dog').iterdir())[0]}")
    (cat / "to_fifo.jpg").symlink_to("fifo.jpg")          # a link to a special file
    (cat / "alias.png").symlink_to(names[0])              # inside its own class: followed
    (root / "all_classes").symlink_to(".")                # a top-level loop: would file everything as a class
    expected = {
        "cat/fifo.jpg": "not a regular file (fifo)",
        "cat/socket.png": "not a regular file (socket)",
        "cat/loop/": "directory symlink: not followed",
        "cat/more_dogs/": "directory symlink: not followed",
        "cat/gone.jpg": "dangling symlink",
        "cat/escape.png": "symlink leaving its class folder",
        "cat/dog_photo.png": "symlink leaving its class folder",
        "cat/to_fifo.jpg": "symlink to something that is not a regular file",
        "all_classes/": "directory symlink: not followed",
    }
    return root, expected


def snapshot(root: Path) -> list[tuple]:
    """Every entry's path, kind, link target and (regular files) content hash, without following links."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            target = os.readlink(path) if path.is_symlink() else None
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not target else None
            out.append((path.relative_to(root).as_posix(), st.st_mode, target, digest))
    return sorted(out)


def test_listing_follows_no_directory_link_and_opens_no_special_file(tmp_path):
    root, expected = hostile_tree(tmp_path)
    start = time.perf_counter()
    images, ignored, links = list_class_files(root, "cat")
    assert time.perf_counter() - start < 10
    assert images == sorted(["cat/alias.png", *(f"cat/{p.name}" for p in (root / "cat").iterdir()
                                                 if p.name.startswith("img_") and not p.is_symlink())])
    reasons = dict(ignored)
    for path, why in expected.items():
        if path.startswith("cat/"):
            assert why in reasons[path], (path, reasons.get(path))
    assert links == [{"path": "cat/alias.png", "target": f"cat/{sorted(p.name for p in (root / 'cat').iterdir() if p.name.startswith('img_'))[0]}"}]


def test_balance_on_a_hostile_read_only_tree_reports_every_kind_and_changes_nothing(tmp_path):
    root, expected = hostile_tree(tmp_path)
    for dirpath, _, filenames in os.walk(root, followlinks=False):  # read-only, as a shared dataset is
        for name in filenames:
            if Path(dirpath, name).is_file() and not Path(dirpath, name).is_symlink():
                os.chmod(Path(dirpath, name), 0o444)
    before = snapshot(root)
    manifest, report = balance(dict(source=str(root), select="all", images_per_class=4, seed=0))
    assert sorted(manifest["class_name"].unique()) == ["bird", "cat", "dog"]  # no class "all_classes"
    # cat's images are cat's: a dog photo reached through a link is never labelled cat
    dog_hashes = set(manifest[manifest["class_name"] == "dog"]["sha256"])
    assert not dog_hashes & set(manifest[manifest["class_name"] == "cat"]["sha256"])
    reasons = {f["path"]: f["reason"] for f in report["ignored_files"]}
    for path, why in expected.items():
        assert why in reasons.get(path, ""), (path, reasons.get(path))
    assert [link["path"] for link in report["links_followed"]] == ["cat/alias.png"]
    assert json.loads(json.dumps(report)) == report
    assert snapshot(root) == before


def test_a_fifo_or_socket_is_refused_unopened_by_the_decoder(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")
    for call in (inspect_image, load_rgb):
        with pytest.raises(BadImage, match=r"not a regular file \(fifo\)"):
            call(tmp_path / "fifo.jpg")


def test_preflight_lists_everything_dvc_cannot_hash(tmp_path):
    root, _ = hostile_tree(tmp_path)
    found = dict(entries_dvc_cannot_hash(root))
    assert set(found) == {"cat/fifo.jpg", "cat/socket.png", "cat/gone.jpg", "cat/to_fifo.jpg"}, found
    assert "dangling" in found["cat/gone.jpg"]


@pytest.mark.slow  # the real stage commands in a repository copy
def test_the_stages_run_on_a_hostile_folder_and_preflight_names_the_blockers(repo_copy, tmp_path):
    root, expected = hostile_tree(tmp_path)
    before = snapshot(root)
    params = repo_copy / "params.yaml"
    import yaml

    values = yaml.safe_load(params.read_text())
    values["balance"].update(source=str(root), select="all", images_per_class=4)
    values["split"].update(train=6, val=3, test=3)
    params.write_text(yaml.safe_dump(values, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(repo_copy))
    # DVC would wait on the FIFO while hashing balance's deps: the stage commands themselves, bounded.
    for stage in ("balance", "split", "prepare"):
        proc = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=repo_copy, env=env,
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, (stage, proc.stderr[-2000:])
    report = json.loads((repo_copy / "metrics/data.json").read_text())
    assert report["num_classes"] == 3 and report["num_images"] == 12
    assert snapshot(root) == before
    proc = subprocess.run([sys.executable, "-m", "stages.preflight"], cwd=repo_copy, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "entries that `dvc repro` cannot hash" in text
    for path in ("cat/fifo.jpg", "cat/socket.png", "cat/gone.jpg", "cat/to_fifo.jpg"):
        assert path in text, text[-3000:]
