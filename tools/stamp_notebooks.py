"""Write the course repository's address into every notebook and into the book's Labs page.

The address lives in one place, ``repository.url`` in ``_config.yml``. Every notebook of the
book and of the labs has an install cell under its title, tagged ``install-convlab``, that
installs convlab from that address when it is missing, as on Colab, and leaves PyTorch alone.
This script rewrites that cell from the template below, adding it where it is missing. It also
writes, under each lab's heading of ``book/labs.md``, the line with the lab's *Open in Colab*
link (to the released notebook in ``labs/``) and its points, read from the notebook's nbgrader
metadata, and, once ``python -m convlab.labs time`` has measured it, how long the lab's
full-mode training takes on a CPU.

    python tools/stamp_notebooks.py          # rewrite the cells
    python tools/stamp_notebooks.py --check  # exit 1 and name the notebooks that differ
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("book", "solutions")
TAG = "install-convlab"
TEMPLATE = """\
# Installs convlab when it is missing (on Colab, for instance); PyTorch is left as it is.
import importlib.util

if importlib.util.find_spec("convlab") is None:
    %pip install --quiet "convlab @ git+{url}"\
"""


def repository_url(root: Path = ROOT) -> str:
    """The repository address written in ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    return str(config["repository"]["url"]).rstrip("/")


def repository_branch(root: Path = ROOT) -> str:
    config = yaml.safe_load((root / "_config.yml").read_text())
    return str(config["repository"].get("branch", "main"))


def install_cell_source(url: str) -> str:
    return TEMPLATE.format(url=url)


def notebooks(root: Path = ROOT) -> list[Path]:
    found: list[Path] = []
    for folder in FOLDERS:
        found.extend(
            p
            for p in sorted((root / folder).rglob("*.ipynb"))
            if ".ipynb_checkpoints" not in p.parts
        )
    return found


def stamp(path: Path, url: str, write: bool) -> bool:
    """Bring one notebook's install cell up to date; True when it was (or would be) changed."""
    notebook = nbformat.read(path, as_version=4)
    wanted = install_cell_source(url)
    cells = notebook.cells
    current = next((c for c in cells if TAG in c.get("metadata", {}).get("tags", [])), None)
    others = [c for c in cells if c is not current]
    # right under the title, so that it is the first cell a Colab user runs
    position = 1 if others and others[0].cell_type == "markdown" else 0
    if current is not None and current.source == wanted and cells.index(current) == position:
        return False
    if current is not None:
        cells.remove(current)
    cell = nbformat.v4.new_code_cell(wanted)
    cell.metadata["tags"] = [TAG, "remove-cell"]  # runs on Colab, hidden in the book
    cells.insert(position, cell)
    if write:
        nbformat.write(notebook, path)
    return True


COLAB = "https://colab.research.google.com/github"
LABS_PAGE = Path("book", "labs.md")
LINK_LINE = re.compile(r"^\[Open in Colab\]\(.*$")


def colab_url(url: str, branch: str, notebook: str) -> str:
    """The Colab address that opens ``notebook`` (a path in the repository) from GitHub."""
    repository = url.removeprefix("https://github.com/")
    return f"{COLAB}/{repository}/blob/{branch}/{notebook}"


def lab_line(root: Path, notebook: Path, url: str, branch: str) -> str:
    """The Labs page's line for one released lab: its Colab link and its points."""
    cells = nbformat.read(notebook, as_version=4).cells
    graded = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    points = sum(c.metadata["nbgrader"].get("points", 0) for c in graded)
    trained = sum(
        c.metadata["nbgrader"].get("points", 0) for c in graded if "accuracy_points(" in c.source
    )
    link = colab_url(url, branch, notebook.relative_to(root).as_posix())
    line = (
        f"[Open in Colab]({link}) · {points:g} points, {trained:g} of them for the accuracy of "
        f"the network you train (its last cell packs the notebook and `{notebook.stem}.pt` into "
        f"`{notebook.stem}.zip`, the file you hand in)."
    )
    timing = cpu_timing(root, notebook.stem)
    if timing:
        line += (
            f" Full-mode training on a CPU: about {timing['minutes']:g} minutes on a "
            f"{timing['machine']['cores']}-core {timing['machine']['cpu']} "
            f"({timing['threads']} threads; measured {timing['date']})."
        )
    return line


def cpu_timing(root: Path, lab: str) -> dict | None:
    """The full-mode timing recorded for ``lab`` by ``python -m convlab.labs time``, if any."""
    record = root / "convlab" / "recorded" / "labs.json"
    table = json.loads(record.read_text()) if record.exists() else {}
    return table.get(lab, {}).get("full", {}).get("timing")


def stamp_labs_page(root: Path, url: str, write: bool) -> bool:
    """Bring the Colab lines of ``book/labs.md`` up to date; True when it was (or would be) changed.

    Each released lab ``labs/labN_*/labN_*.ipynb`` gets its line right under the heading
    ``## Lab N: ...``.
    """
    page = root / LABS_PAGE
    lines = page.read_text().splitlines()
    branch = repository_branch(root)
    for notebook in sorted((root / "labs").glob("lab*/lab*.ipynb")):
        number = re.match(r"lab(\d+)_", notebook.stem)
        if number is None or notebook.parent.name != notebook.stem:
            continue
        heading = f"## Lab {number.group(1)}:"
        where = [i for i, line in enumerate(lines) if line.startswith(heading)]
        if len(where) != 1:
            raise SystemExit(f"{LABS_PAGE}: write one heading '{heading} ...' for {notebook.stem}")
        line = lab_line(root, notebook, url, branch)
        below = where[0] + 2
        if below < len(lines) and LINK_LINE.match(lines[below]):
            lines[below] = line
        else:
            lines[where[0] + 1 : where[0] + 1] = ["", line]
    text = "\n".join(lines) + "\n"
    if text == page.read_text():
        return False
    if write:
        page.write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not write")
    args = parser.parse_args(argv)
    url = repository_url()
    changed = [p for p in notebooks() if stamp(p, url, write=not args.check)]
    if stamp_labs_page(ROOT, url, write=not args.check):
        changed.append(ROOT / LABS_PAGE)
    for path in changed:
        verb = "needs stamping" if args.check else "stamped"
        print(f"{path.relative_to(ROOT)}: {verb}")
    if args.check and changed:
        print("run: python tools/stamp_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
