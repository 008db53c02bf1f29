"""Every lab's full mode on the real Fashion-MNIST: recorded, kept and graded.

A student on Colab trains in full mode and hands in the checkpoint; the instructor grades it on a
CPU against the real test split. For every lab:

* the full-mode reference runs are recorded at every seed (``convlab/recorded/labs.json``);
* the checkpoint kept in ``tests/fullmode/`` (the solution notebook run in full mode at seed 0,
  by ``tools/fullmode_checkpoints.py``) gives the accuracy recorded for it when evaluated again,
  and the solution notebook at seed 0 still starts from the reference's seed-0 weights and batch
  order, so that the kept checkpoints and the records cannot drift apart unnoticed;
* ``python -m convlab.grade`` in full mode gives the solution with that checkpoint full marks, the
  blank release zero, and a checkpoint trained for only a hundred steps what the thresholds'
  formula gives for the accuracy measured here, outside the grader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

import fullmode_checkpoints as kept  # noqa: E402 (tools/ is on the tests' path)
import labkit  # noqa: E402
from labkit import ROOT, nbgrader, read  # noqa: E402

from convlab import data as datasets  # noqa: E402
from convlab import labs  # noqa: E402

LABS = labkit.lab_names()
per_lab = pytest.mark.parametrize("lab", LABS)


@pytest.fixture(scope="module", autouse=True)
def real_data():
    if not Path(datasets.SYSTEM_FASHION_MNIST).is_dir():
        message = "the real Fashion-MNIST is missing: make test installs dataset-fashion-mnist"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def full_mode(monkeypatch):
    for name in (labs.QUICK_ENV, labs.DATA_ENV, "NBGRADER_EXECUTION"):
        monkeypatch.delenv(name, raising=False)


def record(lab: str) -> dict:
    table = json.loads(kept.RECORD.read_text()) if kept.RECORD.exists() else {}
    assert lab in table, f"no kept checkpoint for {lab}: python tools/fullmode_checkpoints.py {lab}"
    return table[lab]


@per_lab
def test_full_mode_thresholds_are_recorded_at_every_seed(lab):
    low, high = labs.thresholds(lab, quick=False)
    entry = labs.recorded(lab, quick=False)
    assert entry["recipe"] == labs.recipe(lab, quick=False)
    assert low == 0.1 and 0.5 < high < 1  # Fashion-MNIST: far above chance, short of perfect
    for run in entry["runs"]:
        assert run["machine"]["cpu"] and len(run["load"]["before"]) == 3 and run["seconds"] > 0


@per_lab
def test_the_kept_checkpoint_gives_its_recorded_accuracy_again(lab, full_mode):
    entry = record(lab)
    state = torch.load(kept.FOLDER / f"{lab}.pt", weights_only=True)
    assert int(state["epoch"]) == labs.LABS[lab].epochs and "optimizer" not in state
    accuracy = kept.checkpoint_accuracy(lab, state["model"])
    assert accuracy == pytest.approx(entry["accuracy"], abs=2e-4)  # two images of 10,000
    # the notebook's own evaluation after its last epoch saw the same network
    assert accuracy == pytest.approx(state["history"][-1]["test_accuracy"], abs=2e-4)
    _, high = labs.thresholds(lab, quick=False)
    assert accuracy >= high, f"the solution's run scores {accuracy:.2%}, under {high:.2%}"


@per_lab
def test_the_solution_starts_where_the_recorded_seed_0_started(lab, full_mode):
    model, data, _ = labs.reference_start(lab, quick=False, seed=0)
    mark = labs.fingerprint(labs.recipe(lab, quick=False), model, data)
    seed0 = [run for run in labs.recorded(lab, quick=False)["runs"] if run["seed"] == 0]
    assert seed0 and seed0[0]["fingerprint"] == mark, (
        "the record is of another recipe: record again"
    )
    assert record(lab)["reference_fingerprint"] == mark, "the kept checkpoint is of another run"
    solution, session = kept.solution_network(lab)
    assert torch.equal(session.data().train.indices(0), data.train.indices(0))  # batch order
    ours, theirs = list(solution.named_parameters()), list(model.named_parameters())
    assert len(ours) == len(theirs)
    for (name, a), (key, b) in zip(ours, theirs, strict=True):
        assert torch.equal(a, b), (
            f"the solution's {name} and the reference's {key} differ at seed 0"
        )


# ----------------------------------------------------------------------------------------------
# Grading in full mode


def full_environment() -> dict[str, str]:
    env = labkit.environment()
    env.pop(labs.QUICK_ENV, None)
    env.pop(labs.DATA_ENV, None)
    return env


@pytest.fixture(scope="module")
def graded(request, tmp_path_factory):
    """Grade one lab's class in full mode: the solution, the blank release, an early stop."""
    lab = request.param
    course = tmp_path_factory.mktemp(f"full_{lab}")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / lab, course / "solutions" / lab)
    nbgrader(course, "generate_assignment", lab, "--force")
    hand_ins = {
        "solution": (labkit.solution_path(lab), f"{lab}.pt"),
        "blank": (labkit.release_path(lab), None),
        "early": (labkit.solution_path(lab), f"{lab}_100steps.pt"),
    }
    for student, (notebook, checkpoint) in hand_ins.items():
        folder = course / "submitted" / student / lab
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / f"{lab}.ipynb")
        if checkpoint is not None:
            shutil.copy(kept.FOLDER / checkpoint, folder / f"{lab}.pt")
    result = subprocess.run(
        [sys.executable, "-m", "convlab.grade", lab, "--workers", "2"],
        cwd=course,
        env=full_environment(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr

    from nbgrader.api import Gradebook

    grades = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in hand_ins:
            notebook = gradebook.find_submission_notebook(lab, lab, student)
            grades[student] = {g.name: g.score for g in notebook.grades}
            grades[student]["total"] = notebook.score
            grades[student]["max"] = notebook.max_score
    return lab, grades, result.stdout


graded_labs = pytest.mark.parametrize(
    "graded",
    [
        pytest.param(
            lab,
            marks=[pytest.mark.xdist_group(f"full_{lab}"), pytest.mark.slow],
        )
        for lab in LABS
    ],
    indirect=True,
)


@graded_labs
def test_full_mode_grading_gives_the_solution_full_marks_and_the_blank_zero(graded):
    _, grades, output = graded
    assert grades["solution"]["total"] == grades["solution"]["max"], (grades["solution"], output)
    assert grades["blank"]["total"] == 0, grades["blank"]


@graded_labs
def test_an_early_stop_gets_what_the_formula_gives_for_its_accuracy(graded, full_mode):
    lab, grades, output = graded
    state = torch.load(kept.FOLDER / f"{lab}_100steps.pt", weights_only=True)
    accuracy = kept.checkpoint_accuracy(lab, state["model"])  # evaluate(), outside the grader
    assert accuracy == pytest.approx(record(lab)["partial_accuracy"], abs=2e-4)
    low, high = labs.thresholds(lab, quick=False)
    points = accuracy_points(lab)
    expected = round(points * min(1.0, max(0.0, (accuracy - low) / (high - low))), 2)
    assert 0 < expected < points, f"100 steps reach {accuracy:.2%}: pick another step count"
    assert grades["early"]["test_accuracy"] == pytest.approx(expected, abs=0.011), output
    others = grades["solution"]["total"] - grades["solution"]["test_accuracy"]
    assert grades["early"]["total"] == pytest.approx(others + expected, abs=0.011)


def accuracy_points(lab: str) -> float:
    for cell in read(labkit.solution_path(lab)).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "test_accuracy":
            return float(meta["points"])
    raise AssertionError(f"{lab} has no test_accuracy cell")
