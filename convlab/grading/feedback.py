"""Feedback for students without the hidden tests.

nbgrader's own feedback pages (``nbgrader generate_feedback``) show the hidden tests, since
autograding puts them back into the notebook. :func:`feedback` writes the same pages from
copies of the autograded notebooks with the hidden tests, and the traceback lines that quote
them, taken out (:func:`strip_feedback`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convlab.grading.course import last_error
from convlab.grading.sandbox import stage_root

__all__ = ["HIDDEN_TESTS", "feedback", "strip_feedback"]

# a block of hidden tests in an instructors' notebook; the group is what is between the markers
HIDDEN_TESTS = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS\n?", re.S)


def strip_feedback(notebook: Any, source: Any) -> Any:
    """An autograded notebook fit for students: hidden tests and their traceback lines removed.

    Args:
        notebook: the autograded notebook (nbgrader put the hidden tests back in its cells).
        source: the instructors' notebook, which says which lines are hidden.
    """
    hidden_lines = {
        line.strip()
        for cell in source.cells
        for block in HIDDEN_TESTS.findall(cell.source)
        for line in block.splitlines()
        if line.strip()
    }
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.source = HIDDEN_TESTS.sub(
            "# (further tests run when the notebook is graded)\n", cell.source
        )
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [
                    _redact(line, hidden_lines) for line in output.get("traceback", [])
                ]
            if "text" in output:
                output["text"] = _redact(output["text"], hidden_lines)
    return notebook


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _redact(text: str, hidden: set[str]) -> str:
    kept = []
    for line in text.splitlines(keepends=True):
        plain = _ANSI.sub("", line)
        code = re.sub(r"^\s*(-+>\s*)?\d*\s*", "", plain).strip()
        quoted = code in hidden or any(len(h) >= 12 and h in plain for h in hidden)
        kept.append("    (a line of the graded tests)\n" if code and quoted else line)
    return "".join(kept)


def feedback(root: Path, lab: str, students: Sequence[str] | None = None) -> list[Path]:
    """nbgrader's feedback HTML for students, made from autograded notebooks without hidden tests.

    Writes ``feedback/<student>/<lab>/<lab>.html`` (nbgrader's own layout), never the hidden
    tests or the traceback lines that quote them.
    """
    import nbformat

    source = nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    base = root / "autograded"
    students = students or sorted(p.name for p in base.iterdir() if (p / lab).is_dir())
    written = []
    with stage_root() as stage:
        for student in students:
            path = base / student / lab / f"{lab}.ipynb"
            if not path.exists():
                continue
            clean = strip_feedback(nbformat.read(path, as_version=4), source)
            target = stage / "autograded" / student / lab
            target.mkdir(parents=True)
            nbformat.write(clean, target / path.name)
            for timestamp in (base / student / lab).glob("timestamp.txt"):
                shutil.copy(timestamp, target)
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        command = [
            sys.executable, "-m", "nbgrader", "generate_feedback", lab, "--force",
            f"--CourseDirectory.root={root.resolve()}",
            f"--CourseDirectory.autograded_directory={stage / 'autograded'}",
        ]  # fmt: skip
        run = subprocess.run(
            command,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise SystemExit(
                f"nbgrader generate_feedback failed: {last_error(run.stdout + run.stderr)}"
            )
    for student in students:
        html = root / "feedback" / student / lab / f"{lab}.html"
        if html.exists():
            written.append(html)
    return written
