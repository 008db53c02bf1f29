"""Reading and checking a submission before it runs.

A notebook that cannot be read, or was handed in under another name, gets its status without a
kernel; the test cells a student changed are named and put back as released (nbgrader restores
their sources, these functions the rest); a checkpoint must load as plain weights under a cap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "check_checkpoint",
    "compare_with_release",
    "deduplicate",
    "find_notebook",
    "nbgrader_cells",
    "read_notebook",
    "restore_metadata",
]


def read_notebook(path: Path) -> tuple[Any | None, str]:
    """The notebook (nbformat 4) or None, and a reason."""
    import nbformat

    try:
        raw = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"{path.name} is not valid JSON ({error}); ask for the file again"
    if not isinstance(raw, dict) or ("cells" not in raw and "worksheets" not in raw):
        return None, f"{path.name} is JSON but not a notebook"
    try:
        notebook = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as error:  # nbformat raises several kinds for bad structure
        return None, f"{path.name} is not a readable notebook ({type(error).__name__}: {error})"
    return notebook, ""


def find_notebook(folder: Path, name: str) -> tuple[Path | None, str]:
    """The submitted notebook ``name`` in ``folder``, and a note when it has another name."""
    wanted = folder / name
    if wanted.exists():
        return wanted, ""
    others = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if len(others) == 1:
        return others[0], f"handed in as {others[0].name}, graded as {name}"
    return None, ""


def nbgrader_cells(notebook: Any) -> dict[str, list[Any]]:
    """The cells of each nbgrader grade id, in notebook order."""
    cells: dict[str, list[Any]] = {}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id:
            cells.setdefault(grade_id, []).append(cell)
    return cells


def compare_with_release(submitted: Any, release: Any) -> list[str]:
    """What the student changed in the cells they may not change (nbgrader restores them)."""
    found = []
    mine = nbgrader_cells(submitted)
    for grade_id, [cell] in nbgrader_cells(release).items():
        meta = cell.metadata["nbgrader"]
        if not (meta.get("grade") or meta.get("locked")):
            continue
        theirs = mine.get(grade_id, [])
        if not theirs:
            found.append(f"{grade_id} deleted")
            continue
        if len(theirs) > 1:
            found.append(f"{grade_id} duplicated")
        other = theirs[0]
        if other.cell_type != cell.cell_type:
            found.append(f"{grade_id} turned into {other.cell_type}")
        elif other.source != cell.source:
            found.append(f"{grade_id} edited")
        their_meta = other.metadata.get("nbgrader", {})
        for key in ("points", "grade", "locked", "solution", "schema_version"):
            if their_meta.get(key) != meta.get(key):
                found.append(f"{grade_id} metadata {key} changed")
    return found


def restore_metadata(notebook: Any, release: Any) -> None:
    """Put the release's nbgrader metadata back on the graded and locked cells.

    nbgrader restores their sources and points itself, but stops at an edited schema version.
    """
    wanted = {
        grade_id: cell.metadata["nbgrader"] for grade_id, [cell] in nbgrader_cells(release).items()
    }
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in wanted:
            cell.metadata["nbgrader"] = dict(wanted[grade_id])


def deduplicate(notebook: Any) -> None:
    """Keep the first cell of each grade id (nbgrader 0.9's own deduplication then crashes)."""
    seen: set[str] = set()
    kept = []
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in seen:
            continue
        if grade_id:
            seen.add(grade_id)
        kept.append(cell)
    notebook.cells = kept


def check_checkpoint(path: Path, max_mb: float) -> str:
    """Why a checkpoint is refused ("" when it loads as plain weights, under the size cap)."""
    import pickle

    import torch

    size = path.stat().st_size / 1e6
    if size > max_mb:
        return f"{path.name} is {size:.0f} MB, over the {max_mb:g} MB cap"
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0][:160]
        return f"{path.name} holds more than weights and was not loaded ({first})"
    except Exception as error:  # a truncated or foreign file
        return f"{path.name} cannot be read as a checkpoint ({type(error).__name__})"
    return ""
