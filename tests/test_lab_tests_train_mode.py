"""A lab's tests compare a network in training mode too, where it computes something else.

Dropout is the identity in evaluation mode, so a network whose dropout rate is wrong computes
exactly what the reference computes there; only a comparison in training mode, with the same
random state on both sides, tells them apart. Each case below runs the solution notebook's
cells, with one mistake put in, up to the test cell that must catch it (its hidden tests
included), in a fresh process in quick mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

nbformat = pytest.importorskip("nbformat")

from labkit import ROOT, load_case  # noqa: E402

# The labs' recorded mistakes that change only what a network computes in training mode: lab 1's
# classifier with another dropout rate, lab 7's head ignoring its dropout argument.
CASES = [
    (lab, mistake.cell, mistake.old, mistake.new)
    for lab in ("lab1_vgg", "lab7_efficientnet")
    for mistake in load_case(lab).mistakes
    if mistake.name.startswith("dropout")
]

RUNNER = textwrap.dedent(
    """
    import json, sys, warnings
    cells, target = json.loads(sys.stdin.read())
    namespace = {"__name__": "__main__"}
    with warnings.catch_warnings():
        for index, source in enumerate(cells):
            try:
                exec(compile(source, f"<cell {index}>", "exec"), namespace)
            except Exception as error:
                if index == target:
                    print(f"CAUGHT {type(error).__name__}: {str(error).splitlines()[0]}")
                    sys.exit(0)
                raise
    print("PASSED")
    """
)


def cells_up_to(lab: str, grade_id: str, old: str, new: str) -> tuple[list[str], int]:
    notebook = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or "%pip" in cell.source:
            continue
        cells.append(cell.source)
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            break
    else:
        raise AssertionError(f"{lab} has no test cell {grade_id}")
    wrong = [i for i, source in enumerate(cells) if old in source]
    assert len(wrong) == 1 and cells[wrong[0]].count(old) == 1, f"{old!r} is not in one answer"
    cells[wrong[0]] = cells[wrong[0]].replace(old, new)
    return cells, len(cells) - 1


def run(cells: list[str], target: int) -> str:
    env = {**os.environ, "CONVLAB_QUICK": "1"}
    env.pop("NBGRADER_EXECUTION", None)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps([cells, target]),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("lab", "grade_id", "old", "new"), CASES, ids=[c[0] for c in CASES])
def test_the_solution_passes_and_a_wrong_dropout_rate_fails(lab, grade_id, old, new):
    assert len(CASES) == 2, "lab 1's and lab 7's dropout mistakes are recorded in tests/labcases"
    cells, target = cells_up_to(lab, grade_id, old, old)  # the solution as it is
    assert run(cells, target) == "PASSED"
    cells, target = cells_up_to(lab, grade_id, old, new)
    verdict = run(cells, target)
    assert verdict.startswith("CAUGHT CheckError"), f"{lab}: a wrong dropout rate passes {grade_id}"
