"""MkDocs hook (mkdocs.yml `hooks:`): the pages' generated parts and the figures they show.

- every ``<!-- gen:NAME [ARG] -->`` marker of a page is replaced by what docs/generate.py renders
  from the committed file that holds it (schemas, benchmark CSVs, pytest's collection, the report);
- the report's figures (plots/report/*.png, written by `dvc repro`) and the offline plots screenshot
  are copied into the site under their repository paths, so a page shows the committed figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).parent))
import generate  # noqa: E402

FIGURES = ("plots/report/*.png", "plots/explain/*.png", "vendor/vega/screenshot.png")


def on_files(files, config):
    for pattern in FIGURES:
        for path in sorted(generate.REPO.glob(pattern)):
            uri = path.relative_to(generate.REPO).as_posix()
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    return generate.expand(markdown)
