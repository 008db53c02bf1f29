"""The book builds from a clean state, executes every page, and contains only its own pages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    stack = list(toc.get("chapters", [])) + [c for p in toc.get("parts", []) for c in p["chapters"]]
    while stack:
        entry = stack.pop()
        files.append(entry["file"])
        stack.extend(entry.get("sections", []))
    return files


def test_book_config_builds_only_the_toc_and_never_labs_or_solutions():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] in {"cache", "force"}
    for page in _toc_files():
        assert page.startswith("book/"), page
        assert any((ROOT / f"{page}{ext}").exists() for ext in (".md", ".ipynb")), page


@pytest.mark.slow
def test_book_builds_with_warnings_as_errors(tmp_path):
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    assert jupyter_book, (
        "jupyter-book is not installed in this environment (pip install -e .[book])"
    )
    result = subprocess.run(
        [
            jupyter_book,
            "build",
            str(ROOT),
            "--path-output",
            str(tmp_path),
            "-W",
            "-n",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    built = {p.relative_to(html).as_posix() for p in html.rglob("*.html")}
    for page in _toc_files():
        assert f"{page}.html" in built
    assert not [p for p in built if p.startswith(("labs/", "solutions/", "tests/"))]
    # executed: the quick-start page shows the summary's totals, produced at build time
    assert "Parameters:" in (html / "book" / "quickstart.html").read_text()
