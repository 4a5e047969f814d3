"""The documentation a newcomer reads: a one-page README and the site built from docs/ (mkdocs.yml).

- the README stays one page (<= 1,200 words) with the result figure and the two commands on its first
  screen, and its generated line (the commands' run times) is what docs/generate.py makes of the
  committed benchmark files;
- every `tests/...::name` and every `make` target the README and the pages show exists;
- the parameter reference, generated from the schemas, covers every key of params.yaml and of every
  preset, each with a meaning;
- the site builds with `mkdocs build --strict` (a broken link or anchor fails), fills in every
  generated marker, and opens offline: headless Chromium with the network shut off draws its
  navigation and text and fetches no font, script or style from outside.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO
from test_plots_offline import by_id, chromium, parse

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = REPO / "README.md"


def generate_module():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the README -------------------------------------------------------------------------------

def test_the_readme_is_one_page_with_the_result_figure_and_the_two_commands_first():
    text = README.read_text(encoding="utf-8")
    words = len(text.split())
    assert words <= 1200, f"README.md has {words} words: move detail into docs/"
    first_screen = "\n".join(text.splitlines()[:40])
    figures = re.findall(r"!\[[^\]]*\]\((plots/report/[\w.-]+\.png)\)", first_screen)
    assert figures, "no figure of plots/report/ in the README's first 40 lines"
    assert all((REPO / f).is_file() for f in figures), figures  # one that `dvc repro` writes
    assert "make repro" in first_screen and "make test" in first_screen


def test_the_readme_generated_line_is_current():
    """The run times of `make repro` and `make test` come from benchmarks/pipeline.csv and suite.csv
    (`python docs/generate.py readme`, run by `make docs`), never typed."""
    generate = generate_module()
    text = README.read_text(encoding="utf-8")
    assert generate.readme_block(text) == generate.readme_timings(), "run: python docs/generate.py readme"


def test_no_figure_the_benchmarks_hold_is_typed_into_the_readme():
    """Minutes, test counts and img/s belong to the files that measured them."""
    text = README.read_text(encoding="utf-8")
    typed = text.replace(generate_module().readme_block(text), "")
    found = re.findall(r"\b\d[\d.,]*\s*(?:min(?:utes)?|s|seconds|hours?|h|tests|img/s)\b", typed)
    assert not found, f"README types figures a committed file holds: {found}"


# --- what the documentation names exists -----------------------------------------------------

def documents() -> dict[str, str]:
    return {p.relative_to(REPO).as_posix(): p.read_text(encoding="utf-8") for p in [README, *PAGES]}


def test_every_test_and_make_target_the_docs_name_exists():
    """A promise names the test that shows it: `tests/test_x.py::name` names a test of that file; a
    bare `::name` that follows in the same paragraph or table row names one of the last file. Every
    `make <target>` shown in code exists in the Makefile (a renamed target must not leave the docs
    pointing at nothing)."""
    defined: dict[str, set[str]] = {}
    missing, checked = [], 0
    for doc, text in documents().items():
        for block in re.split(r"\n\s*\n|\n(?=\|)", text):  # paragraphs and table rows
            current = None
            for file_ref, name in re.findall(r"(tests/test_\w+\.py)?(?:::(\w+))?", block):
                if file_ref:
                    current = file_ref
                    if not (REPO / file_ref).is_file():
                        missing.append(f"{doc}: {file_ref}")
                        continue
                if not name:
                    continue
                assert current, f"{doc}: ::{name} names no file before it"
                if current not in defined:
                    tree = ast.parse((REPO / current).read_text(encoding="utf-8"))
                    defined[current] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
                checked += 1
                if name not in defined[current]:
                    missing.append(f"{doc}: {current}::{name}")
    assert checked > 30  # the scan reads the docs' references (they name far more)
    assert not missing, f"the docs name tests that do not exist: {missing}"

    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, re.MULTILINE))
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE).group(1).split())
    shown = {}
    for doc, text in documents().items():
        code = re.findall(r"```.*?```", text, re.DOTALL) + re.findall(r"`[^`\n]+`", text)
        for snippet in code:
            for target in re.findall(r"(?:^|[\s`(])make ([a-z][\w-]*)", snippet, re.MULTILINE):
                shown.setdefault(target, doc)
    assert {"repro", "test", "test-fast", "docs", "check", "review", "decide", "prune", "bench"} <= set(shown)
    unknown = {t: doc for t, doc in shown.items() if t not in targets}
    assert not unknown, f"the docs show make targets the Makefile lacks: {unknown}"
    assert "docs" in phony and "$(BIN)/mkdocs build --strict" in makefile


def test_ci_builds_the_docs_strictly():
    from test_quick_start import script_commands

    assert script_commands(REPO / ".ci" / "run") == ["make test", "make docs"]
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    # --strict turns every one of these into a failure: a missing page, a broken link or anchor.
    assert {config["validation"][k] for k in ("not_found", "anchors", "unrecognized_links")} == {"warn"}
    assert config["theme"]["font"] is False  # no Google Fonts
    assert config["hooks"] == ["docs/hooks.py"]


# --- the parameter reference -----------------------------------------------------------------

def leaf_keys(params: dict) -> set[str]:
    """Dotted keys of every value of params, `models.<name>.*` made generic."""
    out = set()

    def walk(value, path):
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(inner, [*path, str(key)])
        else:
            out.add(".".join(path))

    walk(params, [])
    return {re.sub(r"^models\.[^.]+\.", "models.<name>.", k) for k in out}


def covered(key: str, documented: set[str]) -> bool:
    parts = key.split(".")
    minimum = 3 if key.startswith("models.") else 1  # a section name alone covers nothing
    return any(".".join(parts[:i]) in documented for i in range(len(parts), minimum, -1)) or key in documented


def test_the_parameter_reference_covers_every_key_of_params_and_of_every_preset():
    sys.path.insert(0, str(REPO))
    from stages.preflight import compose

    generate = generate_module()
    documented = generate.reference_keys()
    experiments = {"params.yaml": yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))}
    cwd = os.getcwd()
    os.chdir(REPO)  # compose() reads conf/ relative to the working directory
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for preset in sorted((REPO / "conf" / "experiment").glob("*.yaml")):
                target = Path(tmp) / f"{preset.stem}.yaml"
                compose([f"+experiment={preset.stem}"], target)
                experiments[preset.stem] = yaml.safe_load(target.read_text(encoding="utf-8"))
    finally:
        os.chdir(cwd)
    assert len(experiments) > 3
    for name, params in experiments.items():
        missing = sorted(k for k in leaf_keys(params) if not covered(k, documented))
        assert not missing, f"{name}: keys the parameter reference does not document: {missing}"

    reference = generate.params_reference()
    rows = re.findall(r"^\| `([\w.<>]+)` \|.*\| ([^|]*) \|$", reference, re.MULTILINE)
    assert len(rows) > 40
    no_meaning = [key for key, meaning in rows if not meaning.strip()]
    assert not no_meaning, f"keys with no meaning: add a Field description, a conf/ comment or docs/params_meanings.yaml: {no_meaning}"
    stale = [k for k in generate.meanings() if (k.replace("options.", "models.<name>.", 1)) not in documented]
    assert not stale, f"docs/params_meanings.yaml explains keys no schema has: {stale}"


def test_the_benchmark_tables_are_generated_from_their_csv():
    """A row of each CSV shows up in its generated table (so a rerun of the benchmark changes the page)."""
    import csv

    generate = generate_module()
    with (REPO / "benchmarks" / "memory.csv").open(newline="") as f:
        first = next(csv.DictReader(f))
    assert f"{float(first['main_peak_rss_mb']):.0f} / {float(first['tree_peak_pss_mb']):.0f} MiB" in generate.memory_table()
    with (REPO / "benchmarks" / "pipeline.csv").open(newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["stage"] == "total")
    assert f"{float(total['seconds']):.0f}" in generate.pipeline_table()
    for marker in ("pipeline", "memory", "input_pipeline", "frozen_features", "gpu_training", "study_runtime"):
        assert f"<!-- gen:{marker} -->" in (DOCS / "performance.md").read_text(encoding="utf-8"), marker
    with (REPO / "benchmarks" / "scale_out.csv").open(newline="") as f:
        two = next(r for r in csv.DictReader(f) if r["workers"] == "2")
    assert f"**{float(two['speedup']):.2f}x**" in generate.scale_out_table()
    assert "<!-- gen:scale_out -->" in (DOCS / "cluster.md").read_text(encoding="utf-8")


# --- the built site ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site as `make docs` builds it (mkdocs build --strict), into a scratch folder."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return out


@pytest.mark.slow  # builds the site (~30 s: it imports the schemas and collects the test suite)
@pytest.mark.xdist_group("docs_site")  # the two site tests share one build
def test_the_site_builds_strictly_and_fills_in_every_generated_part(site):
    for page in PAGES:
        html = (site / page.with_suffix(".html").name).read_text(encoding="utf-8")
        assert "<!-- gen:" not in html, f"{page.name}: a generated marker was left in"
        assert "--8<--" not in html, f"{page.name}: a snippet was not included"
    parameters = (site / "parameters.html").read_text(encoding="utf-8")
    assert "balance.source" in parameters and "models.&lt;name&gt;.learning_rate" in parameters
    getting_started = (site / "getting-started.html").read_text(encoding="utf-8")
    total, _ = generate_module().test_counts()
    assert f"<strong>{total} tests</strong>" in getting_started
    assert (site / "plots" / "report" / "data_size.png").is_file()  # the home page's figure
    # Nothing the pages load comes from outside: scripts, styles, fonts.
    external = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        loads = [m.group(0) for m in external.finditer(text) if "<link" not in m.group(0).lower()
                 or re.search(r"rel=[\"']?(?:stylesheet|preload|preconnect|icon|modulepreload)", m.group(0), re.I)]
        assert not loads, f"{path.name} loads from outside: {loads[:3]}"
    for path in site.rglob("*.css"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"@import\s+(?:url\()?[\"']?(?:https?:)?//|url\([\"']?(?:https?:)?//", text), path


def chromium_run(browser: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium that can reach no network (as tests/test_plots_offline.py renders)."""
    return subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000", *extra, url],
        capture_output=True, text=True, timeout=180,
    )


FETCHED = re.compile(r'"url":"((?:https?|wss?):[^"]+)"')
RESOURCE = re.compile(r"\.(?:js|mjs|css|woff2?|ttf|otf|eot)(?:[?#]|$)|fonts\.|unpkg|jsdelivr|cdnjs|polyfill", re.I)


def fetched_resources(net_log: Path) -> list[str]:
    """Scripts, styles and fonts the page asked the network for (Chromium's own update and account
    pings, which no page causes, are not resources of these kinds)."""
    return sorted({u for u in FETCHED.findall(net_log.read_text(encoding="utf-8", errors="replace"))
                   if RESOURCE.search(u)})


@pytest.mark.slow  # the site build above, then three headless Chromium runs (~10 s)
@pytest.mark.xdist_group("docs_site")
def test_the_built_site_opens_offline_with_navigation_and_text_drawn(site, tmp_path):
    browser = chromium()
    home = site / "index.html"

    # The check can see a fetch: a page loading a script from a CDN shows up in the net log.
    control = tmp_path / "control.html"
    control.write_text('<html><body><p>x</p><script src="https://cdn.jsdelivr.net/npm/vega@5"></script></body></html>')
    proc = chromium_run(browser, control.as_uri(), tmp_path / "p0", f"--log-net-log={tmp_path / 'control.json'}",
                        "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert fetched_resources(tmp_path / "control.json"), "the net log does not show a page's fetch"

    # The home page, network shut off: its DOM after the scripts ran, and what it asked for.
    proc = chromium_run(browser, home.as_uri(), tmp_path / "p1", f"--log-net-log={tmp_path / 'net.json'}",
                        "--dump-dom")
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-3000:]
    assert not fetched_resources(tmp_path / "net.json"), "the site fetched from outside"
    dom = parse(proc.stdout)
    nav = [n for n in dom.iter() if n.tag == "nav" and "md-nav--primary" in n.classes()]
    assert nav, "no navigation"
    links = {n.text_content().strip() for n in nav[0].iter() if n.tag == "a"}
    nav_titles = [next(iter(item)) for item in yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]]
    assert all(any(title in link for link in links) for title in nav_titles), (nav_titles, links)
    article = by_id(dom, "vit-vs-cnn-a-reproducible-dvc-pipeline")
    assert "Vision Transformer" in article.parent.text_content()
    # The theme's own script ran offline: it marks <html> "js" (not "no-js") and adds code-block buttons.
    html = next(n for n in dom.iter() if n.tag == "html")
    assert "js" in html.classes() and "no-js" not in html.classes(), "the site's script did not run"
    assert any("md-code__button" in n.classes() for n in dom.iter()), "the site's script did not run"
    images = [n.attrs.get("src") for n in dom.iter() if n.tag == "img"]
    assert "plots/report/data_size.png" in images

    # Drawn: a screenshot of the first screen holds text (many dark pixels), not a blank page.
    shot = tmp_path / "home.png"
    proc = chromium_run(browser, home.as_uri(), tmp_path / "p2", f"--screenshot={shot}", "--window-size=1280,900",
                        "--hide-scrollbars")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-3000:]
    from PIL import Image

    gray = Image.open(shot).convert("L")
    dark = sum(1 for value in gray.getdata() if value < 128)
    assert dark > 0.01 * gray.width * gray.height, f"only {dark} dark pixels: nothing drawn"


def test_the_mutation_table_marks_a_score_stale_when_its_module_changed_after_it(monkeypatch):
    """docs/development.md: an old mutation score never passes for a current one."""
    generate = generate_module()
    first = generate.rows("mutation.csv")[0]
    monkeypatch.setattr(generate, "last_changed", lambda path: "9999-12-31")
    assert f"`{first['module']}`" in generate.mutation_table() and "**stale**: module changed 9999-12-31" in generate.mutation_table()
    monkeypatch.setattr(generate, "last_changed", lambda path: "2000-01-01")
    assert "stale**" not in generate.mutation_table()
