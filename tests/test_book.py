"""The book builds from a clean state, executes every page, contains only its own pages, and
reads correctly in a real browser (headless Chromium): contents, formulas, figures, Colab links."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import publish  # tools/ is on the tests' path (pyproject.toml)
import pytest
import stamp_notebooks
import yaml

ROOT = Path(__file__).resolve().parents[1]

ARTIFACTS = Path(os.environ.get("CONVLAB_ARTIFACTS", ROOT / "test-artifacts"))
pytestmark = pytest.mark.xdist_group("book")  # one worker builds the book once for every test


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    queue = [c for p in toc.get("parts", []) for c in p["chapters"]] + toc.get("chapters", [])
    while queue:  # in reading order: a chapter, then its sections
        entry = queue.pop(0)
        files.append(entry["file"])
        queue[:0] = entry.get("sections", [])
    return files


def _notebook_pages() -> list[Path]:
    return [ROOT / f"{page}.ipynb" for page in _toc_files() if (ROOT / f"{page}.ipynb").exists()]


# One chapter per architecture of the course, in the order of the lectures.
CHAPTERS = (
    "rise", "alexnet", "vgg", "nin", "googlenet", "batchnorm", "resnet", "resnet_views",
    "resnext", "densenet", "nas", "efficientnet", "efficiency",
)  # fmt: skip


def test_every_chapter_is_in_the_book_in_order_and_ends_with_exercises_that_name_a_lab():
    pages = _toc_files()
    positions = [pages.index(f"book/{name}") for name in CHAPTERS]  # ValueError names a gap
    assert positions == sorted(positions), "chapters out of lecture order"
    for name in CHAPTERS:
        notebook = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
        text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
        lines = text.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("## Exercises")]
        assert starts, f"{name}: no Exercises section"
        tail = "\n".join(lines[starts[-1] :])
        assert "<lab-" in tail, f"{name}: the exercises do not point to a lab"


def test_book_config_builds_only_the_toc_and_never_labs_or_solutions():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] in {"cache", "force"}
    for page in _toc_files():
        assert page.startswith("book/"), page
        assert any((ROOT / f"{page}{ext}").exists() for ext in (".md", ".ipynb")), page
    # environments hold notebooks of their own (nbgrader's tests): the build must not read them,
    # even while the compatibility suite's environments are being installed beside it
    for folder in (".venv", ".compat", "build"):
        assert f"{folder}/*" in config["exclude_patterns"], folder


def test_notebooks_are_committed_without_outputs():
    for path in _notebook_pages():
        notebook = nbformat.read(path, as_version=4)
        executed = [c for c in notebook.cells if c.cell_type == "code" and c.get("outputs")]
        assert not executed, f"{path.name}: clear its outputs (the book build executes it)"


def test_every_notebook_installs_convlab_from_the_one_repository_address():
    url = stamp_notebooks.repository_url()
    assert url.startswith("https://"), url
    stale = [p.name for p in stamp_notebooks.notebooks() if stamp_notebooks.stamp(p, url, False)]
    assert not stale, f"run `make stamp`: {stale}"
    first = nbformat.read(_notebook_pages()[0], as_version=4).cells[1]
    assert f"git+{url}" in first.source and "remove-cell" in first.metadata["tags"]


def test_labs_page_opens_every_released_lab_in_colab():
    url = stamp_notebooks.repository_url()
    assert not stamp_notebooks.stamp_labs_page(ROOT, url, write=False), "run `make stamp`"
    text = (ROOT / "book" / "labs.md").read_text()
    released = sorted((ROOT / "labs").glob("lab*/lab*.ipynb"))
    assert released, "labs/ holds no released lab"
    for notebook in released:
        link = stamp_notebooks.colab_url(url, "main", notebook.relative_to(ROOT).as_posix())
        assert text.count(f"[Open in Colab]({link})") == 1, f"{notebook.stem}: no Colab link"
    links = [line for line in text.splitlines() if "colab.research.google.com" in line]
    assert len(links) == len(released), "a Colab link points at a lab that is not released"


@pytest.fixture(scope="module")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The book built from scratch with warnings as errors; the HTML folder."""
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    assert jupyter_book, "jupyter-book is not installed here (pip install -e .[book])"
    assert (ROOT / "book/_static/mathjax/tex-chtml.js").exists(), (
        "MathJax is missing: python tools/fetch_mathjax.py"
    )
    out = tmp_path_factory.mktemp("book")
    # as `make book` does: the notebooks run side by side first, then the build renders them
    executed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "execute_book.py"), "--path-output", str(out)],
        capture_output=True,
        text=True,
    )
    assert executed.returncode == 0, executed.stdout + executed.stderr
    command = [jupyter_book, "build", str(ROOT), "--path-output", str(out), "-W", "-n"]
    result = subprocess.run([*command, "--keep-going"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]
    return out / "_build" / "html"


@pytest.mark.slow
def test_book_builds_with_warnings_as_errors(built_book: Path):
    built = {p.relative_to(built_book).as_posix() for p in built_book.rglob("*.html")}
    for page in _toc_files():
        assert f"{page}.html" in built
    assert not [p for p in built if p.startswith(("labs/", "solutions/", "tests/"))]
    # executed: the quick-start page shows the summary's totals, produced at build time
    assert "Parameters:" in (built_book / "book" / "quickstart.html").read_text()


@pytest.mark.slow
def test_the_built_book_holds_no_solution_and_no_hidden_test(built_book: Path):
    import html
    import re

    secret = publish.all_secrets()
    assert secret, "no lab has solution lines: this test would have nothing to find"
    leaks = []
    for path in built_book.rglob("*"):
        if path.suffix in {".html", ".ipynb", ".txt", ".py", ".js"} and path.is_file():
            text = path.read_text(errors="replace")
            if path.suffix == ".html":  # code is split into highlighting spans
                text = html.unescape(re.sub(r"<[^>]+>", "", text))
            leaks += [f"{path.relative_to(built_book)}: {w}" for w in publish.quoted(text, secret)]
    assert not leaks, leaks


def test_the_scan_for_solutions_finds_one_in_highlighted_html():
    import html
    import re

    secret = publish.all_secrets()
    planted = "\n".join(next(iter(sorted(secret))))
    page = "<pre>" + "\n".join(
        f"<span class='n'>{html.escape(x)}</span>" for x in planted.split("\n")
    )
    assert publish.quoted(html.unescape(re.sub(r"<[^>]+>", "", page)), secret)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail("chromium is missing although `make install` installs it here: rerun it")
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")


@pytest.mark.slow
def test_the_built_book_reads_correctly_in_a_browser(built_book: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    url = stamp_notebooks.repository_url()
    notebooks = [p for p in _notebook_pages() if p.name != "quickstart.ipynb"] or _notebook_pages()
    chapter = notebooks[0]  # the first chapter after the quick start
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            # index.html only redirects to the root page: open the root page itself
            page.goto((built_book / f"{_toc_files()[0]}.html").as_uri())
            page.wait_for_load_state("networkidle")
            listed = page.eval_on_selector_all("nav.bd-links a", "a => a.map(x => x.href)")
            for entry in _toc_files()[1:]:
                assert any(h.endswith(f"{entry}.html") for h in listed), f"{entry} not in contents"

            formulas = 0
            for path in notebooks:
                html = built_book / "book" / f"{path.stem}.html"
                page.goto(html.as_uri())
                page.wait_for_load_state("networkidle")
                colab = page.eval_on_selector_all(
                    "a[href*='colab.research.google.com']", "a => a.map(x => x.href)"
                )
                repository = url.removeprefix("https://github.com/")
                expected = f"/github/{repository}/blob/main/book/{path.name}"
                assert any(h.endswith(expected) for h in colab), (path.name, colab)
                images = page.eval_on_selector_all(
                    "article img", "i => i.map(x => [x.getAttribute('src'), x.naturalWidth])"
                )
                assert all(width > 0 for _, width in images), f"{path.name}: broken {images}"
                raw = page.eval_on_selector_all("span.math, div.math", "m => m.length")
                formulas += raw
                if raw:
                    page.wait_for_selector("mjx-container", state="attached", timeout=15000)
                    typeset = page.eval_on_selector_all("mjx-container", "m => m.length")
                    assert typeset >= raw, f"{path.name}: {typeset} of {raw} formulas typeset"
            assert formulas > 0, "no page of the book has a formula"
            page.goto((built_book / "book" / f"{chapter.stem}.html").as_uri())
            page.wait_for_load_state("networkidle")
            figures = page.eval_on_selector_all("article img", "i => i.length")
            assert figures > 0 or chapter.stem in {"quickstart", "training"}, chapter.name
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{chapter.stem}.png"), full_page=False)
        finally:
            browser.close()
    assert (ARTIFACTS / f"{chapter.stem}.png").stat().st_size > 10_000
