"""What the lab tests share: the cases of tests/labcases/, nbgrader runs, and in-process runs.

Every lab has a case file ``tests/labcases/<lab>.py`` that defines ``CASE``, a :class:`LabCase`:
its points, the wrong answers a student could hand in (:class:`Mistake`), and the mutants of the
mutation test that cannot be caught because they compute the same thing (:class:`Equivalent`).
The case files live here, not in ``solutions/<lab>/``: nbgrader copies every file of that folder
over each submission, and the mistakes quote solution text.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import io
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import publish  # tools/ is on the tests' path (pyproject.toml)

ROOT = Path(__file__).resolve().parents[1]

CASES = Path(__file__).resolve().parent / "labcases"

SOLUTION = publish.SOLUTION
# cells the in-process runs leave out: training, and grading what training produced
TRAINING_MARKERS = ("lab.train(", "accuracy_points(")


@dataclass(frozen=True)
class Mistake:
    """A wrong answer: ``old`` (text of the solution notebook) replaced by ``new``.

    Attributes:
        name: the submission's student id.
        old: text that occurs exactly once in the solution notebook's answer cells.
        new: what the student wrote instead.
        failing: grade ids of the test cells that must score zero.
        cell: the grade id whose output is read for the message.
        message: what that output must contain (lower case), naming the mistake.
    """

    name: str
    old: str
    new: str
    failing: frozenset[str]
    cell: str
    message: str


@dataclass(frozen=True)
class Equivalent:
    """A mutant that computes what the solution computes, so no test can catch it.

    Attributes:
        cell: grade id of the answer cell.
        mutant: the mutant's description, as :func:`mutants` writes it.
        why: why it is equivalent.
    """

    cell: str
    mutant: str
    why: str


@dataclass(frozen=True)
class LabCase:
    """One lab's expectations.

    Attributes:
        name: the assignment (``lab1_vgg``).
        points: the notebook's total points.
        mistakes: at least two wrong answers, each losing points with a message.
        equivalent: mutants the mutation test may leave alive, each with its reason.
        skip: extra substrings marking cells the in-process runs leave out (slow cells that
            need a trained network); the training and accuracy cells are always left out.
    """

    name: str
    points: float
    mistakes: tuple[Mistake, ...]
    equivalent: tuple[Equivalent, ...] = ()
    skip: tuple[str, ...] = field(default=())


def lab_names() -> list[str]:
    """The labs, as folders of solutions/."""
    return sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())


def load_case(lab: str) -> LabCase:
    """``CASE`` of ``tests/labcases/<lab>.py``."""
    path = CASES / f"{lab}.py"
    if not path.exists():
        raise FileNotFoundError(f"lab {lab} has no case file: write {path}")
    spec = importlib.util.spec_from_file_location(f"labcase_{lab}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    case = module.CASE
    assert case.name == lab, f"{path} describes {case.name}"
    return case


def environment() -> dict[str, str]:
    """The environment of nbgrader and of the kernels it starts: quick mode, tools on PATH."""
    from convlab.grading import tools_first_on_path

    env = tools_first_on_path()  # nbgrader runs `alembic` from PATH; the kernel needs quick mode
    env["CONVLAB_QUICK"] = "1"
    # one thread per kernel: the test workers already keep every core busy, and two threads
    # per kernel on a busy 2-core machine made small convolutions a hundred times slower
    env["OMP_NUM_THREADS"] = "1"
    env.pop("NBGRADER_EXECUTION", None)
    return env


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an nbgrader command in ``course``; fail the test with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def read(path: Path) -> Any:
    import nbformat

    return nbformat.read(path, as_version=4)


def solution_path(lab: str, root: Path = ROOT) -> Path:
    return root / "solutions" / lab / f"{lab}.ipynb"


def release_path(lab: str, root: Path = ROOT) -> Path:
    return root / "labs" / lab / f"{lab}.ipynb"


def secrets(lab: str) -> set[tuple[str, ...]]:
    """Fingerprints of a lab's solutions and hidden tests (see tools/publish.py)."""
    return publish.secrets(solution_path(lab), _library())


@functools.cache
def _library() -> frozenset[tuple[str, ...]]:
    return frozenset(publish.public_text(ROOT, released=False))


# ----------------------------------------------------------------------------------------------
# Running a notebook's cells in this process, for the mutation test


class CellTimeout(BaseException):
    """A cell ran past its time limit (as nbgrader's timeout would stop it)."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise CellTimeout(f"cell ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def graded_cells(notebook: Any, case: LabCase) -> list[tuple[int, Any]]:
    """(index, cell) of the code cells an in-process run executes."""
    markers = TRAINING_MARKERS + case.skip
    return [
        (i, cell)
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and "install-convlab" not in cell.metadata.get("tags", [])
        and not any(marker in cell.source for marker in markers)
    ]


def failing_tests(notebook: Any, case: LabCase, replace: dict[int, str] | None = None) -> dict:
    """Run the notebook's cells (``replace``: index -> new source); failing test cells.

    Cells run in order in one namespace and go on after an error, as nbgrader runs them. A test
    cell fails when it raises; the result maps its grade id to the error.
    """
    replace = replace or {}
    namespace: dict[str, Any] = {"__name__": "__main__"}
    failed: dict[str, str] = {}
    for i, cell in graded_cells(notebook, case):
        source = replace.get(i, cell.source)
        meta = cell.metadata.get("nbgrader", {})
        try:
            code = compile(source, f"<cell {i}>", "exec")
            with time_limit(60), contextlib.redirect_stdout(io.StringIO()):
                exec(code, namespace)
        except (Exception, CellTimeout) as error:  # every failure is a result
            if meta.get("grade") and meta.get("points", 0) > 0:
                failed[meta["grade_id"]] = f"{type(error).__name__}: {error}"
    return failed


@dataclass(frozen=True)
class Mutant:
    cell: int
    grade_id: str
    description: str
    source: str


def _solution_spans(source: str) -> list[tuple[int, int]]:
    """1-based line ranges strictly inside ``### BEGIN SOLUTION`` / ``### END SOLUTION``."""
    spans, begin = [], None
    for number, line in enumerate(source.splitlines(), 1):
        if line.strip() == "### BEGIN SOLUTION":
            begin = number
        elif line.strip() == "### END SOLUTION" and begin is not None:
            spans.append((begin + 1, number - 1))
            begin = None
    return spans


def mutants(notebook: Any) -> list[Mutant]:
    """Mechanical mutants of every solution region: each statement deleted, each int + 1.

    A deleted statement becomes ``pass``; docstrings are left alone. Integer literals are
    replaced by the next integer, one at a time.
    """
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "### BEGIN SOLUTION" not in cell.source:
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index}")
        lines = cell.source.splitlines()
        spans = _solution_spans(cell.source)

        def inside(node: ast.AST, spans: list[tuple[int, int]] = spans) -> bool:
            return any(a <= node.lineno and node.end_lineno <= b for a, b in spans)

        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt) and inside(node):
                if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                    continue  # a docstring
                indent = lines[node.lineno - 1][: node.col_offset]
                new = [*lines[: node.lineno - 1], indent + "pass", *lines[node.end_lineno :]]
                text = lines[node.lineno - 1].strip()
                found.append(
                    Mutant(index, grade_id, f"delete line {node.lineno}: {text}", "\n".join(new))
                )
            elif (
                isinstance(node, ast.Constant)
                and type(node.value) is int
                and inside(node)
                and node.lineno == node.end_lineno
            ):
                line = lines[node.lineno - 1]
                literal = line[node.col_offset : node.end_col_offset]
                changed = (
                    line[: node.col_offset] + str(node.value + 1) + line[node.end_col_offset :]
                )
                new = [*lines[: node.lineno - 1], changed, *lines[node.lineno :]]
                found.append(
                    Mutant(
                        index,
                        grade_id,
                        f"line {node.lineno}:{node.col_offset}: {literal} -> {node.value + 1} in {line.strip()}",
                        "\n".join(new),
                    )
                )
    return found
