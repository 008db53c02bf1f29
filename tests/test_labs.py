"""The nbgrader labs, graded end to end in a temporary course directory, one per lab.

For every lab of solutions/ (its expectations in tests/labcases/<lab>.py):
``nbgrader generate_assignment`` reproduces ``labs/`` exactly and leaves no solution or hidden
test in it; autograding gives the solution full marks, the unanswered release zero without
crashing, and realistic wrong answers lose points with a message that names the mistake;
``nbgrader export`` writes the grades to CSV. The solution's checkpoint comes from running the
solution notebook as a student would (quick mode, on the CPU). A mutation test shows that the
tests catch mechanical changes to every solution.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

import labkit  # noqa: E402 (after the skips: it needs nbformat)
from labkit import ROOT, LabCase, environment, nbgrader, read  # noqa: E402

LABS = labkit.lab_names()

# one worker makes a lab's course directory and grades it once for all of that lab's tests
pytestmark = pytest.mark.slow
per_lab = pytest.mark.parametrize(
    "case", [pytest.param(lab, marks=pytest.mark.xdist_group(lab)) for lab in LABS], indirect=True
)


@pytest.fixture(scope="module")
def case(request) -> LabCase:
    return labkit.load_case(request.param)


def sources(path: Path) -> list[tuple[str, str, dict]]:
    return [
        (cell.cell_type, cell.source, cell.metadata.get("nbgrader", {}))
        for cell in read(path).cells
    ]


def test_every_lab_has_a_case_file_and_a_release():
    assert LABS, "solutions/ holds no lab"
    for lab in LABS:
        labkit.load_case(lab)
        assert labkit.release_path(lab).exists(), f"run: nbgrader generate_assignment {lab}"
    released = sorted(p.name for p in (ROOT / "labs").iterdir() if p.is_dir())
    assert released == LABS, "labs/ and solutions/ hold different labs"


@pytest.fixture(scope="module")
def course(case, tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp(f"course_{case.name}")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    nbgrader(course, "generate_assignment", case.name, "--force")
    return course


@per_lab
def test_release_is_what_generate_assignment_makes(case, course):
    made = labkit.release_path(case.name, course)
    committed = labkit.release_path(case.name)
    assert sources(made) == sources(committed), (
        f"labs/{case.name} is out of date: nbgrader generate_assignment {case.name} --force"
    )
    assert sorted(p.name for p in made.parent.iterdir()) == [made.name]


@per_lab
def test_release_holds_no_solution_and_no_hidden_test(case):
    text = "\n".join(source for _, source, _ in sources(labkit.release_path(case.name)))
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
        assert marker not in text
    secret = labkit.secrets(case.name)
    assert secret, "the solution notebook has no solution or hidden-test lines"
    assert not labkit.publish.quoted(text, secret), labkit.publish.quoted(text, secret)
    solution = "\n".join(source for _, source, _ in sources(labkit.solution_path(case.name)))
    assert text.count("raise NotImplementedError()") >= len(labkit.SOLUTION.findall(solution)) - (
        solution.count("= None  # replace")
    )


def submit(course: Path, lab: str, student: str, notebook, checkpoint: Path | None) -> None:
    folder = course / "submitted" / student / lab
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{lab}.ipynb")
    if checkpoint is not None:
        shutil.copy(checkpoint, folder / checkpoint.name)


def train_as_a_student(case: LabCase, course: Path, work: Path) -> Path:
    """Run the solution notebook in quick mode; the checkpoint it writes."""
    from ipc_kernel import execute

    notebook = read(labkit.solution_path(case.name, course))
    previous, wanted = dict(os.environ), environment()
    os.environ.clear()
    os.environ.update(wanted)
    try:
        execute(notebook, work, timeout=600, save_as=f"{case.name}.ipynb")
    finally:
        os.environ.clear()
        os.environ.update(previous)
    checkpoint = work / f"{case.name}.pt"
    assert checkpoint.exists(), f"running {case.name} wrote no {checkpoint.name}"
    with zipfile.ZipFile(work / f"{case.name}.zip") as handed_in:  # the last cell's archive
        assert handed_in.read(checkpoint.name) == checkpoint.read_bytes()
        assert handed_in.read(f"{case.name}.ipynb") == (work / f"{case.name}.ipynb").read_bytes()
    return checkpoint


@pytest.fixture(scope="module")
def graded(case, course, tmp_path_factory):
    """Autograde the solution, the blank release and the mistakes; grades per cell and timing."""
    lab = case.name
    checkpoint = train_as_a_student(case, course, tmp_path_factory.mktemp(f"student_{lab}"))
    submit(course, lab, "solution", read(labkit.solution_path(lab, course)), checkpoint)
    submit(course, lab, "blank", read(labkit.release_path(lab, course)), None)
    for mistake in case.mistakes:
        wrong = read(labkit.solution_path(lab, course))
        cells = [c for c in wrong.cells if mistake.old in c.source]
        assert len(cells) == 1, f"{mistake.name}: its text is in {len(cells)} cells, not one"
        assert cells[0].source.count(mistake.old) == 1, f"{mistake.name}: text occurs twice"
        cells[0].source = cells[0].source.replace(mistake.old, mistake.new)
        submit(course, lab, mistake.name, wrong, checkpoint)
    students = ["solution", "blank"] + [m.name for m in case.mistakes]

    begin = time.perf_counter()
    nbgrader(course, "autograde", lab)
    seconds_each = (time.perf_counter() - begin) / len(students)

    from nbgrader.api import Gradebook

    grades: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            notebook = gradebook.find_submission_notebook(lab, lab, student)
            grades[student] = {g.name: g.score for g in notebook.grades}
            grades[student]["total"] = notebook.score
    print(f"{lab} autograde: {seconds_each:.1f} s per submission ({len(students)} submissions)")
    return grades, seconds_each


def outputs(course: Path, lab: str, student: str) -> dict[str, str]:
    """Text of every graded cell's outputs in a student's autograded notebook."""
    notebook = read(course / "autograded" / student / lab / f"{lab}.ipynb")
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


@per_lab
def test_solution_gets_full_marks(case, graded):
    grades, _ = graded
    assert grades["solution"]["total"] == case.points, grades["solution"]


@per_lab
def test_unanswered_release_gets_zero_without_crashing(case, course, graded):
    grades, _ = graded
    assert grades["blank"]["total"] == 0, grades["blank"]
    texts = outputs(course, case.name, "blank")
    assert any("NotImplementedError" in text for text in texts.values()), texts


@per_lab
def test_wrong_answers_lose_points_with_a_message(case, course, graded):
    grades, _ = graded
    assert len(case.mistakes) >= 2, f"{case.name}: write at least two realistic mistakes"
    for mistake in case.mistakes:
        lost = {cell for cell, score in grades[mistake.name].items() if score == 0}
        assert mistake.failing <= lost, (mistake.name, grades[mistake.name])
        assert grades[mistake.name]["total"] < case.points, mistake.name
        text = outputs(course, case.name, mistake.name)[mistake.cell]
        assert mistake.message in text.lower(), (mistake.name, text)


@per_lab
def test_export_writes_every_grade_to_csv(case, course, graded):
    grades, _ = graded
    nbgrader(course, "export", "--to", "grades.csv")
    with open(course / "grades.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["assignment"] == case.name]
    assert sorted(row["student_id"] for row in rows) == sorted(grades)
    for row in rows:
        assert float(row["max_score"]) == case.points
        assert float(row["raw_score"]) == pytest.approx(grades[row["student_id"]]["total"])


@per_lab
def test_autograding_one_submission_takes_under_a_minute(graded):
    _, seconds_each = graded
    assert seconds_each < 60


@per_lab
def test_every_mutant_of_the_solution_loses_points(case, monkeypatch, tmp_path):
    """Mutation test of the tests: each mechanical change to a solution fails a test cell."""
    monkeypatch.setenv("CONVLAB_QUICK", "1")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.chdir(tmp_path)
    import torch

    # one thread: the other test worker keeps the second core busy (two threads each made
    # these small convolutions many times slower on a 2-core machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _mutants_lose_points(case)
    finally:
        torch.set_num_threads(threads)


def _mutants_lose_points(case: LabCase) -> None:
    notebook = read(labkit.solution_path(case.name))
    assert labkit.failing_tests(notebook, case) == {}, "the solution itself fails a test"
    found = labkit.mutants(notebook)
    assert found, "no mutants: the solution notebook has no solution regions"
    equivalent = {(e.cell, e.mutant) for e in case.equivalent}
    survivors = set()
    for mutant in found:
        if not labkit.failing_tests(notebook, case, {mutant.cell: mutant.source}):
            survivors.add((mutant.grade_id, mutant.description))
    assert survivors - equivalent == set(), (
        f"{len(survivors - equivalent)} of {len(found)} mutants pass every test: "
        f"{sorted(survivors - equivalent)}"
    )
    assert equivalent <= survivors, f"listed as equivalent but caught: {equivalent - survivors}"
