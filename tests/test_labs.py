"""The nbgrader labs, graded end to end in a temporary course directory.

For lab 1: ``nbgrader generate_assignment`` reproduces ``labs/`` exactly (cell sources) and
leaves no solution or hidden test in it; autograding gives the solution full marks, the
unanswered release zero without crashing, and realistic wrong answers lose points with a
message that names the mistake. The solution's checkpoint comes from running the solution
notebook as a student would (quick mode, on the CPU).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab1_vgg"
LAB1_POINTS = 11.0

# one worker makes the course directory and grades it once for every test
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("labs")]

# Wrong answers a student could hand in: (name, text in the solution, replacement, the failing
# test cells, the cell whose message is read, what that message must contain).
MISTAKES = [
    (
        "no_relu",
        "        layers.append(nn.ReLU())\n    layers.append(nn.MaxPool2d",
        "    layers.append(nn.MaxPool2d",
        {"test_vgg_block_function"},
        "test_vgg_block_function",
        "activation (relu) missing",
    ),
    (
        "pool_stride_1",
        "nn.MaxPool2d(kernel_size=2, stride=2)",
        "nn.MaxPool2d(kernel_size=2, stride=1)",
        {"test_vgg_block_shape", "test_vgg_block_function"},
        "test_vgg_block_shape",
        "pooling layer is missing",
    ),
    (
        "no_padding",
        "kernel_size=3, padding=1)",
        "kernel_size=3)",
        {"test_vgg_block_shape", "test_vgg_block_function"},
        "test_vgg_block_shape",
        "padding=1 for 3x3",
    ),
]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    # nbgrader runs `alembic` from PATH; the kernel must see quick mode
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["CONVLAB_QUICK"] = "1"
    env.pop("NBGRADER_EXECUTION", None)
    return env


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def sources(path: Path) -> list[tuple[str, str]]:
    notebook = nbformat.read(path, as_version=4)
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    nbgrader(course, "generate_assignment", LAB, "--force")
    return course


def test_release_is_what_generate_assignment_makes(course):
    made = course / "labs" / LAB / f"{LAB}.ipynb"
    committed = ROOT / "labs" / LAB / f"{LAB}.ipynb"
    assert committed.exists(), f"run: nbgrader generate_assignment {LAB} --force"
    assert sources(made) == sources(committed), (
        f"labs/{LAB} is out of date: nbgrader generate_assignment {LAB} --force"
    )
    assert sorted(p.name for p in made.parent.iterdir()) == [f"{LAB}.ipynb"]


def test_release_holds_no_solution_and_no_hidden_test(course):
    text = "\n".join(source for _, source in sources(ROOT / "labs" / LAB / f"{LAB}.ipynb"))
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "_expected_rows"):
        assert marker not in text
    solution = "\n".join(source for _, source in sources(ROOT / "solutions" / LAB / f"{LAB}.ipynb"))
    hidden = re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", solution, re.S)
    answers = re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", solution, re.S)
    assert len(hidden) == 5 and len(answers) == 4
    lines = {line.strip() for block in hidden + answers for line in block.splitlines()}
    lines -= {"", "return rows", "layers = []", ")"}
    assert not [line for line in lines if line in text.splitlines() or f"    {line}" in text]
    assert text.count("raise NotImplementedError()") == 4


def submit(course: Path, student: str, notebook, checkpoint: Path | None) -> None:
    folder = course / "submitted" / student / LAB
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{LAB}.ipynb")
    if checkpoint is not None:
        shutil.copy(checkpoint, folder / checkpoint.name)


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    """Autograde the solution, the blank release and the mistakes; grades per cell and timing."""
    from nbclient import NotebookClient

    solution = nbformat.read(course / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    # Train as a student would: run the solution notebook in quick mode, keep its checkpoint.
    work = tmp_path_factory.mktemp("student")
    run = nbformat.read(course / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    previous = dict(os.environ)
    os.environ.update(CONVLAB_QUICK="1")
    os.environ.pop("NBGRADER_EXECUTION", None)
    try:
        NotebookClient(run, timeout=600, resources={"metadata": {"path": str(work)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(previous)
    checkpoint = work / f"{LAB}.pt"
    assert checkpoint.exists()

    submit(course, "solution", solution, checkpoint)
    submit(course, "blank", nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", 4), None)
    for name, old, new, *_ in MISTAKES:
        wrong = nbformat.read(course / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
        cell = next(c for c in wrong.cells if old in c.source)
        cell.source = cell.source.replace(old, new)
        submit(course, name, wrong, checkpoint)
    students = ["solution", "blank"] + [m[0] for m in MISTAKES]

    begin = time.perf_counter()
    nbgrader(course, "autograde", LAB)
    seconds_each = (time.perf_counter() - begin) / len(students)

    from nbgrader.api import Gradebook

    grades: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            notebook = gradebook.find_submission_notebook(LAB, LAB, student)
            grades[student] = {g.name: g.score for g in notebook.grades}
            grades[student]["total"] = notebook.score
    print(f"autograde: {seconds_each:.1f} s per submission ({len(students)} submissions)")
    return course, grades, seconds_each


def outputs(course: Path, student: str) -> dict[str, str]:
    """Text of every graded cell's outputs in a student's autograded notebook."""
    notebook = nbformat.read(course / "autograded" / student / LAB / f"{LAB}.ipynb", 4)
    found = {}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            parts = []
            for out in cell.get("outputs", []):
                error = f"{out.get('ename', '')}: {out.get('evalue', '')}"
                parts.append(out.get("text", "") + (error if "ename" in out else ""))
            found[grade_id] = "\n".join(parts)
    return found


def test_solution_gets_full_marks(graded):
    _, grades, _ = graded
    assert grades["solution"]["total"] == LAB1_POINTS, grades["solution"]


def test_unanswered_release_gets_zero_without_crashing(graded):
    course, grades, _ = graded
    assert grades["blank"]["total"] == 0, grades["blank"]
    assert "NotImplementedError" in outputs(course, "blank")["test_vgg_block_shape"]


@pytest.mark.parametrize(("name", "failing", "cell", "message"), [(m[0], *m[3:]) for m in MISTAKES])
def test_wrong_vgg_blocks_lose_points_with_a_message(graded, name, failing, cell, message):
    course, grades, _ = graded
    lost = {cell for cell, score in grades[name].items() if cell != "total" and score == 0}
    assert failing <= lost, grades[name]
    assert grades[name]["total"] < LAB1_POINTS
    text = outputs(course, name)[cell]
    assert message in text.lower(), text


def test_autograding_one_submission_takes_under_a_minute(graded):
    _, _, seconds_each = graded
    assert seconds_each < 60
