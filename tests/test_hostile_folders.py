"""Any folder a user points at: no hang, no loop, no silent mislabelling.

Links: directory symlinks are never followed (a loop would list files again and again; and
``cat/more -> ../dog`` would label dog photos "cat"); a file symlink is followed only to a
regular file inside its own class folder. FIFOs, sockets and devices are never opened. Every
link not followed, and every special file, is reported with its reason in metrics/data_files.json;
every link followed is listed there too. `dvc repro` itself hashes the source folder before any
stage runs (it waits forever on a FIFO and stops on a dangling link), so preflight lists what it
cannot hash, all at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, make_tree, png_bytes, run
from stages.balance import balance
from stages.data.image_files import entries_dvc_cannot_hash, list_class_files
from stages.data.images import BadImage, inspect_image, load_rgb

pytestmark = pytest.mark.timeout(300)  # a hang is a failure, not a stuck CI job


def hostile_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Classes cat (4 images), dog and bird (5), odd (every awkward image kind); every kind of link and
    special file in cat; a duplicate across classes; hidden files and folders, __MACOSX.
    Returns the source root and the reason expected for each skipped entry."""
    root = make_tree(tmp_path / "source", {"cat": 4, "dog": 5, "bird": 5})
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
    expected_bad = odd_class(root / "odd")
    (root / "bird" / "dup_of_dog.png").write_bytes((root / "dog" / "img_000.png").read_bytes())  # two labels
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._img_000.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (cat / ".thumbnails").mkdir()
    (cat / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
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
        "__MACOSX/": "hidden folder",
        "cat/.thumbnails/": "hidden folder",
        "cat/.DS_Store": "hidden file",
        "odd/readme.txt": "not an image extension",
        **expected_bad,
    }
    return root, expected


def odd_class(odd: Path) -> dict[str, str]:
    """A class folder holding every awkward image kind; returns the reason expected for the bad ones
    (the rest decode: palette, animated GIF, CMYK, 16-bit, RGBA, EXIF-rotated, a 12-MP photo, a PNG
    named .jpg, non-ASCII and shell-metacharacter names)."""
    from PIL import Image

    from test_balance import png_header

    odd.mkdir()

    def encode(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        return buf.getvalue()

    good_jpeg = encode(Image.new("RGB", (40, 30), (10, 200, 30)), "JPEG")
    rotated = Image.new("RGB", (20, 10), (200, 0, 0))
    exif = rotated.getexif()
    exif[0x0112] = 6
    frames = [Image.new("P", (16, 16), i) for i in (1, 2)]
    anim = io.BytesIO()
    frames[0].save(anim, format="GIF", save_all=True, append_images=frames[1:])
    files = {
        "palette.png": encode(Image.new("P", (16, 16), 3), "PNG"),
        "animated.gif": anim.getvalue(),
        "cmyk.jpg": encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"),
        "gray16.png": encode(Image.fromarray(np.full((16, 16), 32896, np.uint16)), "PNG"),
        "rgba.png": encode(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), "PNG"),
        "exif_rotated.jpg": encode(rotated, "JPEG", exif=exif),
        "photo_12mp.jpg": encode(Image.new("RGB", (4000, 3000), (90, 90, 200)), "JPEG"),
        "png_named.jpg": encode(Image.new("RGB", (16, 16), (1, 2, 3)), "PNG"),
        "ñandú 日本.png": encode(Image.new("RGB", (16, 16), (4, 5, 6)), "PNG"),
        "$(touch pwned); rm -rf x & `id` | 'q'.png": encode(Image.new("RGB", (16, 16), (7, 8, 9)), "PNG"),
        "truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file, not a JPEG\n",
        "page.png": b"<!DOCTYPE html><html><body>403 Forbidden</body></html>",
        "bomb.png": png_header(100_000, 100_000),
        "readme.txt": b"notes",
    }
    for name, data in files.items():
        (odd / name).write_bytes(data)
    return {"odd/truncated.jpg": "cannot decode", "odd/empty.jpg": "empty file", "odd/notes.jpg": "cannot",
            "odd/page.png": "cannot", "odd/bomb.png": "DecompressionBombError"}


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
    assert sorted(manifest["class_name"].unique()) == ["bird", "cat", "dog", "odd"]  # no "all_classes"
    # cat's images are cat's: a dog photo reached through a link is never labelled cat
    dog_hashes = set(manifest[manifest["class_name"] == "dog"]["sha256"])
    assert not dog_hashes & set(manifest[manifest["class_name"] == "cat"]["sha256"])
    reasons = {f["path"]: f["reason"] for f in report["ignored_files"] + report["undecodable_files"]}
    for path, why in expected.items():
        assert why in reasons.get(path, ""), (path, reasons.get(path))
    assert [link["path"] for link in report["links_followed"]] == ["cat/alias.png"]
    assert {r["path"] for r in report["cross_class_rejected_files"]} == {"bird/dup_of_dog.png", "dog/img_000.png"}
    assert report["classes"]["odd"]["decodable"] == 10  # every kind that decodes, decodes
    odd = manifest[manifest["class_name"] == "odd"]
    assert len(odd) == 4 and not (set(odd["path"]) & set(expected))
    assert not (root.parent / "pwned").exists() and not Path("pwned").exists()  # a name is never a command
    assert json.loads(json.dumps(report)) == report
    assert snapshot(root) == before


class OpenedSpecialFile(Exception):
    """Raised, by the audit hook below, in place of opening a FIFO, socket or device."""


_WATCH: list = []  # [hook added, (special paths, paths opened) while a block records]


def _audit_opens(event: str, args: tuple) -> None:
    """Every open in this process, by any means (builtins/io.open, os.open, Pillow's, pathlib's),
    raises the "open" audit event first: record its path and refuse the special files, so a
    decoder that opens one fails here instead of hanging on a FIFO."""
    if event != "open" or len(_WATCH) < 2 or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    specials, opened = _WATCH[-1]
    path = os.fsdecode(args[0])
    opened.append(path)
    if path in specials or os.path.realpath(path) in specials:
        raise OpenedSpecialFile(path)


@contextlib.contextmanager
def watching_opens(specials: set[str]):
    """The list of every path opened inside this block; opening one of ``specials`` (or what a
    link resolves to) raises OpenedSpecialFile instead. An audit hook cannot be removed: one is
    added per process, inert outside this block."""
    if not _WATCH:
        _WATCH.append(None)  # _WATCH[0]: the hook is in
        sys.addaudithook(_audit_opens)
    opened: list[str] = []
    _WATCH.append((specials | {os.path.realpath(p) for p in specials}, opened))
    try:
        yield opened
    finally:
        _WATCH.pop()


def test_a_fifo_socket_or_device_is_refused_unopened_by_the_decoder(tmp_path, monkeypatch):
    """Refused from its type alone: never opened -- not even with O_NONBLOCK, which would not hang
    on a FIFO but is still an open (and a socket fails at once with ENXIO, hiding any hang)."""
    from stages.data import verify

    os.mkfifo(tmp_path / "fifo.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "socket.png"))
    sock.close()
    (tmp_path / "null_link.jpg").symlink_to("/dev/null")  # the decoder follows links: a device
    kinds = {"fifo.jpg": "fifo", "socket.png": "socket", "null_link.jpg": "device", "/dev/null": "device"}
    try:  # a device node of its own (root only; a nodev mount still lets it be made, not opened)
        os.mknod(tmp_path / "char_dev.png", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        kinds["char_dev.png"] = "device"
    except PermissionError:
        pass
    paths = {name: str(tmp_path / name) for name in kinds}  # "/dev/null" stays itself
    monkeypatch.setattr(verify, "_ROOT", [tmp_path])  # check_image: what balance reports per file
    outcomes, opened_specials = {}, {}
    for name, path in paths.items():
        for call in (inspect_image, load_rgb, verify.check_image):
            with watching_opens({path}) as opened:
                try:
                    result = call(path)
                    outcome = result if isinstance(result, str) else f"accepted: {result!r}"
                except BadImage as err:
                    outcome = str(err)
                except OpenedSpecialFile as err:
                    outcome = f"opened {err}"
            outcomes[name, call.__name__] = outcome
            opened_specials[name, call.__name__] = [p for p in opened if os.path.realpath(p) == os.path.realpath(path)]
    assert {key: p for key, p in opened_specials.items() if p} == {}  # never opened, by any call
    for (name, call), outcome in outcomes.items():
        assert outcome == f"not a regular file ({kinds[name]})", (name, call, outcome)


# What `dvc repro` cannot hash in a folder, asked of DVC itself: run as a script, in a subprocess.
DVC_ORACLE = r"""
import json, os, sys, threading, time
root, repo_dir = sys.argv[1], sys.argv[2]
opened = []  # every path under root opened, by any thread: the last one is where a hang waits
sys.addaudithook(lambda event, args: opened.append(args[0]) if event == "open" and isinstance(args[0], str)
                 and args[0].startswith(root + os.sep) else None)
from dvc.dependency import loads_from
from dvc.repo import Repo
from dvc.stage import PipelineStage

repo = Repo.init(repo_dir, no_scm=True)
stage = PipelineStage(repo, os.path.join(repo_dir, "dvc.yaml"), cmd="true", name="balance")
(dep,) = loads_from(stage, [root])  # balance's `- ${balance.source}` dep
blocking = {}
for attempt in range(20):  # hash as `dvc repro`/`dvc status` does; remove what stops it; again
    result, new = {}, []
    def hash_dep():
        try:
            result["hash"] = dep.get_hash()
        except Exception as err:
            result["error"] = err
    thread = threading.Thread(target=hash_dep, daemon=True)
    thread.start()
    seen, since = len(opened), time.monotonic()
    while thread.is_alive():
        thread.join(0.1)
        if len(opened) != seen:
            seen, since = len(opened), time.monotonic()
        elif thread.is_alive() and time.monotonic() - since > 2:  # stuck opening one file: a hang
            new.append(opened[-1])
            blocking[os.path.relpath(opened[-1], root)] = "hangs"
            try:  # a FIFO's reader waits for a writer: be one, so DVC goes on (it reads EOF)
                os.close(os.open(os.path.realpath(opened[-1]), os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            seen, since = len(opened), time.monotonic()
    if "error" in result:
        err = result["error"]
        if not getattr(err, "filename", None):
            raise err
        new.append(err.filename)
        blocking[os.path.relpath(err.filename, root)] = f"{type(err).__name__}: {err}"
    if not new:
        break
    for path in new:
        os.unlink(path)
print("BLOCKING " + json.dumps(blocking))
os._exit(0)
"""


@pytest.mark.slow  # ~6 s: DVC in a subprocess, which waits 2 s on each of the two FIFO entries
def test_preflight_lists_everything_dvc_cannot_hash(tmp_path):
    """Preflight's list against DVC's own: in a throw-away DVC repository (tmp_path, holding the
    source), the source is hashed as a dependency, as `dvc repro` hashes balance's deps; each
    entry it fails on (its error's file name) or hangs on (the path it is stuck opening) is
    removed and it hashes again, until it succeeds. A DVC that hashes differently fails here."""
    root, _ = hostile_tree(tmp_path)
    (root / "cat" / "to_null.jpg").symlink_to("/dev/null")  # a device: DVC reads it as empty
    found = dict(entries_dvc_cannot_hash(root))  # before DVC's run removes the blockers
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(tmp_path / "dvc_site_cache"))
    proc = subprocess.run([sys.executable, "-c", DVC_ORACLE, str(root), str(tmp_path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BLOCKING "))
    dvc_blocking = json.loads(line.removeprefix("BLOCKING "))
    assert dvc_blocking, "DVC hashed the hostile folder without a single failure"
    # Preflight refuses every device, though DVC hashes /dev/null (as empty): /dev/zero, a
    # terminal or a disk would read forever, and no device is an image.
    assert set(found) == set(dvc_blocking) | {"cat/to_null.jpg"}, (found, dvc_blocking)
    assert "dangling" in found["cat/gone.jpg"] and "FileNotFoundError" in dvc_blocking["cat/gone.jpg"]


@pytest.mark.slow  # the real stage commands in a repository copy
def test_the_stages_run_on_a_hostile_folder_and_preflight_names_the_blockers(repo_copy, tmp_path):
    root, expected = hostile_tree(tmp_path)
    before = snapshot(root)
    params = repo_copy / "params.yaml"
    import yaml

    values = yaml.safe_load(params.read_text())
    values["balance"].update(source=str(root), select="all", images_per_class=4)
    values["split"].update(train=8, val=4, test=4)  # of 16 images: 2 / 1 / 1 per class
    params.write_text(yaml.safe_dump(values, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(repo_copy))
    # DVC would wait on the FIFO while hashing balance's deps: the stage commands themselves, bounded.
    for stage in ("balance", "split", "prepare"):
        proc = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=repo_copy, env=env,
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, (stage, proc.stderr[-2000:])
    report = json.loads((repo_copy / "metrics/data.json").read_text())
    assert report["num_classes"] == 4 and report["num_images"] == 16
    report = json.loads((repo_copy / "metrics/data_files.json").read_text())
    reasons = {f["path"]: f["reason"] for f in report["ignored_files"] + report["undecodable_files"]}
    assert all(why in reasons.get(path, "") for path, why in expected.items()), reasons
    assert snapshot(root) == before
    proc = subprocess.run([sys.executable, "-m", "stages.preflight"], cwd=repo_copy, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "entries that `dvc repro` cannot hash" in text
    for path in ("cat/fifo.jpg", "cat/socket.png", "cat/gone.jpg", "cat/to_fifo.jpg"):
        assert path in text, text[-3000:]
