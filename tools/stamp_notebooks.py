"""Write the course repository's address into the install cell of every notebook.

The address lives in one place, ``repository.url`` in ``_config.yml``. Every notebook of the
book (and, once they exist, of the labs) has an install cell under its title, tagged ``install-convlab``,
that installs convlab from that address when it is missing, as on Colab, and leaves PyTorch
alone. This script rewrites that cell from the template below, adding it where it is missing.

    python tools/stamp_notebooks.py          # rewrite the cells
    python tools/stamp_notebooks.py --check  # exit 1 and name the notebooks that differ
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not write")
    args = parser.parse_args(argv)
    url = repository_url()
    changed = [p for p in notebooks() if stamp(p, url, write=not args.check)]
    for path in changed:
        verb = "needs stamping" if args.check else "stamped"
        print(f"{path.relative_to(ROOT)}: {verb}")
    if args.check and changed:
        print("run: python tools/stamp_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
