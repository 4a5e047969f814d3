"""Plots render offline: DVC's pages use vendor/vega/page.html, which inlines vega, vega-lite and
vega-embed, instead of DVC's default template, which loads them from a CDN (blank plots offline).

The slow test renders real `dvc plots show` / `dvc plots diff` pages in headless Chromium with
networking disabled and looks for the drawn SVG marks; the default template, under the same
flags, must draw none (the bug this fixes).
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import REPO, run

VEGA = REPO / "vendor" / "vega"
PAGE = VEGA / "page.html"
PACKAGES = ("vega", "vega-lite", "vega-embed")
INSTALL = ("sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium"
           " (Debian/Ubuntu; `make test` does this as root), or set CHROMIUM=/path/to/chromium")
EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=", re.IGNORECASE)


def locked_versions() -> dict[str, str]:
    lock = json.loads((VEGA / "package-lock.json").read_text(encoding="utf-8"))
    return {name: lock["packages"][f"node_modules/{name}"]["version"] for name in PACKAGES}


def test_page_template_is_offline_and_up_to_date():
    html = PAGE.read_text(encoding="utf-8")
    assert "{plot_divs}" in html and "{refresh_tag}" in html
    assert "{scripts}" not in html  # DVC would insert its CDN <script src=...> tags there
    assert not EXTERNAL_SCRIPT.search(html) and "cdn.jsdelivr" not in html
    readme = (VEGA / "README.md").read_text(encoding="utf-8")
    named = dict(re.findall(r'<script data-package="([a-z-]+)" data-version="([^"]+)">', html))
    locked = locked_versions()
    assert named == locked, "page.html is not built from package-lock.json: run python vendor/vega/build_template.py"
    for name, version in locked.items():
        assert f"<!-- {name} {version}, licence BSD-3-Clause" in html
        assert (VEGA / f"LICENSE.{name}").read_text(encoding="utf-8").strip() in html
        in_table = rf"\|\s*{name}\s*\|\s*{re.escape(version)}\s*\|"
        assert re.search(in_table, readme), f"vendor/vega/README.md's table: {name} {version}"
    assert 'renderer: "svg"' in html
    # The repository's DVC config points at it (relative to .dvc/, as DVC resolves it).
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    assert (REPO / ".dvc" / config["plots"]["html_template"]).resolve() == PAGE
    if (VEGA / "node_modules").is_dir():  # npm ci was run: rebuilding gives the same bytes
        spec = importlib.util.spec_from_file_location("build_template", VEGA / "build_template.py")
        builder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(builder)
        try:
            built = builder.build()
        except SystemExit as err:  # node_modules does not hold the locked versions
            pytest.fail(str(err))
        stale = [p.name for p, text in built.items() if p.read_bytes() != text.encode("utf-8")]
        assert not stale, f"{stale} out of date: run python vendor/vega/build_template.py"


# --- a minimal DOM (html.parser) -------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, attrs, parent, [], ""

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text_content(self) -> str:
        return self.text + "".join(c.text_content() for c in self.children)


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text += data


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def by_id(dom: Node, ident: str) -> Node:
    found = [n for n in dom.iter() if n.attrs.get("id") == ident]
    assert found, f"no element #{ident} in the rendered page"
    return found[0]


def marks(div: Node, kind: str) -> list[str]:
    """The non-empty `d` of every path drawn by a data mark of `kind` (line, rect) under `div`."""
    return [p.attrs["d"] for g in div.iter() if g.tag == "g" and {f"mark-{kind}", "role-mark"} <= g.classes()
            for p in g.iter() if p.tag == "path" and p.attrs.get("d")]


def svg_texts(div: Node) -> set[str]:
    return {n.text_content().strip() for n in div.iter() if n.tag == "text"}


# --- rendering in Chromium with no network ---------------------------------------------------

def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(f"Chromium is needed to render the plots pages and was not found: {INSTALL}")
    return found


def render(browser: str, index: Path, profile: Path) -> Node:
    """The DOM of `index` after its scripts ran, in headless Chromium that can reach no network."""
    proc = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}",
         # Every request goes to a proxy that is not there (loopback included), and no name resolves.
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--virtual-time-budget=10000", "--dump-dom", index.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0 and "</html>" in proc.stdout, f"chromium: {proc.returncode}\n{proc.stderr[-3000:]}"
    return parse(proc.stdout)


def vega_div_ids(index_html: str) -> list[str]:
    """The ids of dvc_render's vega divs, as DVC wrote the page (before any script ran)."""
    return re.findall(r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec', index_html)


def write_data(repo: Path, shift: float) -> None:
    (repo / "a.csv").write_text("epoch,loss\n" + "".join(f"{e},{1.0 / (e + 1) - shift:.3f}\n" for e in range(5)))
    (repo / "b.csv").write_text("epoch,loss\n" + "".join(f"{e},{1.2 / (e + 1):.3f}\n" for e in range(5)))
    rows = [("cat", "cat"), ("cat", "dog"), ("dog", "dog"), ("bird", "bird"), ("bird", "cat" if shift else "bird")]
    (repo / "preds.csv").write_text("actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in rows))
    from PIL import Image

    Image.new("RGB", (48, 32), (200, int(100 + 500 * shift), 40)).save(repo / "sample.png")


DVC_YAML = """\
plots:
  - loss:
      x: epoch
      y:
        a.csv: loss
        b.csv: loss
  - preds.csv:
      template: confusion
      x: actual
      y: predicted
  - sample.png
"""


@pytest.mark.slow  # a git+DVC repository, four DVC commands, three headless Chromium pages: ~15 s
def test_plots_show_and_diff_render_with_no_network(tmp_path):
    browser = chromium()
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    write_data(repo, 0.0)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "first"], repo)
    write_data(repo, 0.1)  # the workspace now differs from HEAD: a.csv, preds.csv, sample.png

    # The bug: DVC's default template, under the same no-network flags, draws nothing.
    run(["dvc", "plots", "show", "-o", str(tmp_path / "default")], repo)
    default_html = (tmp_path / "default" / "index.html").read_text()
    assert EXTERNAL_SCRIPT.search(default_html) and "cdn.jsdelivr.net" in default_html
    default_dom = render(browser, tmp_path / "default" / "index.html", tmp_path / "profile0")
    assert sorted(vega_div_ids(default_html)) == ["loss", "preds_csv"]
    for ident in vega_div_ids(default_html):
        div = by_id(default_dom, ident)
        assert not any(n.tag == "svg" for n in div.iter()) and not marks(div, "line") and not marks(div, "rect")

    # The fix: the vendored template (the repository's .dvc/config names it relative to .dvc/).
    run(["dvc", "config", "plots.html_template", str(PAGE)], repo)
    run(["dvc", "plots", "show", "-o", str(tmp_path / "out1")], repo)
    run(["dvc", "plots", "diff", "HEAD", "-o", str(tmp_path / "out2")], repo)  # workspace vs HEAD
    pages = {}
    for out in ("out1", "out2"):
        index = tmp_path / out / "index.html"
        html = index.read_text()
        assert not EXTERNAL_SCRIPT.search(html) and "cdn.jsdelivr" not in html, out
        assert sorted(vega_div_ids(html)) == ["loss", "preds_csv"], out
        dom = render(browser, index, tmp_path / f"profile_{out}")
        assert not [n.attrs["src"] for n in dom.iter() if n.tag == "script" and n.attrs.get("src")], out
        pages[out] = dom

    show, diff = pages["out1"], pages["out2"]
    lines = {}
    for name, dom in pages.items():
        loss = by_id(dom, "loss")
        assert any(n.tag == "svg" for n in loss.iter()), name
        lines[name] = marks(loss, "line")
        assert lines[name] and all("L" in d for d in lines[name]), name  # polylines of several points
        assert {"a.csv", "b.csv"} <= svg_texts(loss), name
        confusion = by_id(dom, "preds_csv")
        assert marks(confusion, "rect"), name  # the confusion matrix's cells
        assert {"cat", "dog", "bird"} <= svg_texts(confusion), name
    # Both revisions are drawn in the diff: every line twice, and the legend names them.
    assert len(lines["out2"]) == 2 * len(lines["out1"]), lines
    assert {"workspace", "HEAD"} <= svg_texts(by_id(diff, "loss"))
    assert "HEAD" not in svg_texts(by_id(show, "loss"))
    assert len(marks(by_id(diff, "preds_csv"), "rect")) > len(marks(by_id(show, "preds_csv"), "rect"))
    assert {"workspace", "HEAD"} <= svg_texts(by_id(diff, "preds_csv"))

    # The image plot: an <img> per revision, pointing at a PNG DVC copied next to the page.
    for out, dom, revs in (("out1", show, ["workspace"]), ("out2", diff, ["workspace", "HEAD"])):
        srcs = sorted(n.attrs.get("src", "") for n in dom.iter() if n.tag == "img")
        assert srcs == sorted(f"static/{rev}_sample.png" for rev in revs), (out, srcs)
        for src in srcs:
            assert (tmp_path / out / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


REVIEW_PLOTS = ("loss", "accuracy", "top3_accuracy", "macro_f1", "confusion", "runs")  # dvc.yaml's top level
REVIEW_DATA = ("plots/review", "metrics/comparison.csv")  # what the report writes for them


def symbols(div: Node) -> list[Node]:
    """Point marks (vega draws them as paths in a `mark-symbol` group)."""
    return [p for g in div.iter() if g.tag == "g" and {"mark-symbol", "role-mark"} <= g.classes()
            for p in g.iter() if p.tag == "path" and p.attrs.get("d")]


def test_the_repository_plots_render_both_revisions_of_every_model(repo_copy, tmp_path):
    """dvc.yaml's top-level plots with the templates of .dvc/plots/, over the report's committed data:
    `dvc plots diff HEAD` draws every model's curves, test crosses, confusion matrix and runs, per revision,
    from a clone (.dvc/config's relative html_template resolves there)."""
    browser = chromium()
    for rel in REVIEW_DATA:
        src = REPO / rel
        assert src.exists(), f"{rel} missing: run `dvc repro report` in the repository"
        (repo_copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo_copy / rel)
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "report data"], repo_copy)
    comparison = (repo_copy / "metrics/comparison.csv").read_text().splitlines()
    models = sorted({line.split(",")[0] for line in comparison[1:]})
    loss = repo_copy / "plots/review/curves/loss.csv"
    lines = loss.read_text().splitlines()
    loss.write_text("\n".join(lines[:1] + [",".join(r.split(",")[:3] + [str(float(r.split(",")[3]) * 0.5)])
                                          for r in lines[1:]]) + "\n")  # the workspace differs from HEAD

    run(["dvc", "plots", "diff", "HEAD", "-o", str(tmp_path / "out")], repo_copy)
    index = tmp_path / "out" / "index.html"
    html = index.read_text()
    assert '<script data-package="vega-embed"' in html and not EXTERNAL_SCRIPT.search(html)
    assert set(REVIEW_PLOTS) <= set(vega_div_ids(html)), vega_div_ids(html)
    dom = render(browser, index, tmp_path / "profile")
    revs = {"workspace", "HEAD"}
    for ident in REVIEW_PLOTS:
        texts = svg_texts(by_id(dom, ident))
        assert revs <= texts and set(models) <= texts, (ident, sorted(texts))
    for metric in REVIEW_PLOTS[:4]:
        div = by_id(dom, metric)
        # a train and a validation line and a test cross per model and revision
        assert len(marks(div, "line")) == 2 * 2 * len(models), metric
        assert len(symbols(div)) == 2 * len(models), metric
        assert {"train", "val"} <= svg_texts(div)
    confusion = by_id(dom, "confusion")
    assert len(marks(confusion, "rect")) >= 2 * len(models) * 2, "cells of each model's matrix, per revision"
    assert len(symbols(by_id(dom, "runs"))) == 2 * (len(comparison) - 1)  # one point per run and revision
    assert marks(by_id(dom, "runs"), "line")
