"""convlab.grade: a class of broken and hostile submissions graded together, each failing alone.

The class is lab 1's corpus of bad hand-ins (tests/grading_corpus.py) plus correct ones. Every
protection also has a test in which its attack succeeds with the protection switched off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

import grading_corpus as corpus  # noqa: E402
from labkit import ROOT, environment, lab_names, nbgrader, read, solution_path  # noqa: E402

from convlab import grade  # noqa: E402

LAB = corpus.LAB
# 30 s per cell: the slowest cell of lab 1 (loading and evaluating the checkpoint) takes a few
# seconds on two busy cores. 8 GiB of address space: torch alone maps about 3.3 GB.
SETTINGS = grade.Settings(cell_timeout=30, notebook_timeout=600, memory_gb=8, max_checkpoint_mb=2)
GOOD = ("correct_a", "correct_b")


# ----------------------------------------------------------------------------------------------
# Without a kernel: the scan, feedback stripping, checkpoints


@pytest.mark.parametrize(
    ("code", "finding"),
    [
        ("get_ipython().input_transformers_cleanup.append(f)", "input transformers"),
        ("ip = get_ipython()\nip.events.register('pre_run_cell', f)", "event hooks"),
        ("import IPython\nIPython.get_ipython().showtraceback = f", "traceback display"),
        ("import sys\nsys.excepthook = f", "exception hook"),
        ("import sys\nsys.modules['convlab.check'] = fake", "sys.modules"),
        ("check_same_function = lambda *a, **k: None", "rebinds check_same_function"),
        ("def check_output_shape(*args):\n    pass", "redefines check_output_shape"),
        ("import convlab.check\nconvlab.check.check_output_shape = print", "assigns convlab.check"),
        ("torch.allclose = lambda *a, **k: True", "assigns torch.allclose"),
        ("nn.Module.__eq__ = lambda a, b: True", "assigns nn.Module.__eq__"),
        ("exec('x = 1')", "exec"),
        ("import builtins\nbuiltins.print = None", "builtins"),
        ("%load_ext something", "magic"),
        ("!cat ../../solutions/lab1_vgg/lab1_vgg.ipynb", "shell command"),
    ],
)
def test_the_scan_names_what_an_answer_reaches_into(code, finding):
    protected = {"check_same_function", "check_output_shape", "torch", "nn", "lab"}
    found = grade.scan_for_tampering(code, protected, "vgg_block")
    assert any(finding in line for line in found), found
    assert all(line.startswith("vgg_block, line ") for line in found)


def test_the_scan_finds_nothing_in_any_lab_solution():
    """No false alarm: the reference answers of every lab are ordinary code."""
    for lab in lab_names():
        solution = read(solution_path(lab))
        release = read(ROOT / "labs" / lab / f"{lab}.ipynb")
        assert grade.tampering_findings(solution, release) == [], lab


def test_local_names_inside_an_answer_are_not_tampering():
    code = "def vgg_block(lab, torch=None):\n    check_same_function = 3\n    return lab\n"
    assert grade.scan_for_tampering(code, {"lab", "check_same_function"}, "x") == []


def test_feedback_keeps_the_outcome_but_not_the_hidden_tests():
    source = read(solution_path(LAB))
    graded = read(solution_path(LAB))
    test = corpus.cell(graded, "test_vgg16_memory")
    [hidden] = [line for line in test.source.splitlines() if "15_087_080 * 4" in line]
    test.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="AssertionError",
            evalue="expected 57.55 MiB",
            traceback=["\x1b[31mAssertionError\x1b[39m", f"\x1b[32m----> 7\x1b[39m {hidden}"],
        )
    ]
    clean = grade.strip_feedback(graded, source)
    text = nbformat.writes(clean)
    assert hidden not in text and "15_087_080" not in text
    assert "expected 57.55 MiB" in text  # the student still learns what was wrong
    assert "further tests run when the notebook is graded" in corpus.cell(clean, test.metadata[
        "nbgrader"]["grade_id"]).source  # fmt: skip


def test_a_checkpoint_that_would_run_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / f"{LAB}.pt"
    path.write_bytes(corpus.malicious_checkpoint(str(marker)))
    assert "holds more than weights" in grade.check_checkpoint(path, max_mb=10)
    assert not marker.exists()
    # protection off: loading it as PyTorch did before weights_only runs the payload
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert marker.exists(), "the payload should run when loaded without weights_only"


def test_a_checkpoint_over_the_cap_is_refused(tmp_path):
    path = tmp_path / f"{LAB}.pt"
    path.write_bytes(b"\0" * 3_000_000)
    assert "over the 2 MB cap" in grade.check_checkpoint(path, max_mb=2)


def test_workers_default_to_the_cores_as_far_as_memory_allows():
    assert 1 <= grade.default_workers(memory_gb=8) <= grade.cores()
    assert grade.default_workers(memory_gb=10**6) == 1  # not even one fits: still one
    assert grade.default_workers(memory_gb=0.001) == grade.cores()


def test_the_corpus_holds_at_least_twenty_kinds_of_bad_submission():
    names = [case.name for case in corpus.BAD]
    assert len(names) >= 20 and len(set(names)) == len(names)


# ----------------------------------------------------------------------------------------------
# A class graded with nbgrader


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("grading")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / LAB, course / "solutions" / LAB)
    nbgrader(course, "generate_assignment", LAB, "--force")
    return course


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The checkpoint a student gets by running the answered notebook (quick mode)."""
    from nbclient import NotebookClient

    work = tmp_path_factory.mktemp("student")
    previous, wanted = dict(os.environ), environment()
    os.environ.clear()
    os.environ.update(wanted)
    try:
        NotebookClient(
            corpus.answered(), timeout=600, resources={"metadata": {"path": str(work)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(previous)
    return work / f"{LAB}.pt"


def _correct(course: Path, student: str, checkpoint: Path) -> None:
    folder = course / "submitted" / student / LAB
    folder.mkdir(parents=True)
    nbformat.write(corpus.answered(), folder / f"{LAB}.ipynb")
    shutil.copy(checkpoint, folder)


def _grade(course: Path, students, workers: int = 1, **changes) -> dict[str, grade.Result]:
    settings = replace(SETTINGS, **changes)
    previous = dict(os.environ)
    os.environ.update(environment())
    try:
        results = grade.grade(course, LAB, students=students, workers=workers, settings=settings)
    finally:
        os.environ.clear()
        os.environ.update(previous)
    return {r.student: r for r in results}


@pytest.fixture(scope="module")
def alone(course, checkpoint) -> grade.Result:
    _correct(course, "alone", checkpoint)
    return _grade(course, ["alone"])["alone"]


@pytest.fixture(scope="module")
def graded_class(course, checkpoint, alone) -> list[grade.Result]:
    for case in corpus.BAD:
        corpus.write_case(course, case, checkpoint)
    for student in GOOD:
        _correct(course, student, checkpoint)
    students = [case.name for case in corpus.BAD] + list(GOOD)
    previous = dict(os.environ)
    os.environ.update(environment())
    try:
        return grade.grade(course, LAB, students=students, workers=2, settings=SETTINGS)
    finally:
        os.environ.clear()
        os.environ.update(previous)


@pytest.mark.slow
def test_a_correct_submission_graded_alone_gets_full_marks(alone):
    assert (alone.status, alone.score, alone.max_score) == (grade.GRADED, corpus.FULL, corpus.FULL)


@pytest.mark.slow
def test_the_class_gets_one_row_per_student(graded_class):
    students = [r.student for r in graded_class]
    assert sorted(students) == sorted([c.name for c in corpus.BAD] + list(GOOD))
    line = grade.summary(graded_class)
    assert line.startswith(f"{len(students)} submissions: ")


@pytest.mark.slow
def test_correct_submissions_score_in_a_class_what_they_score_alone(graded_class, alone):
    for result in graded_class:
        if result.student in GOOD:
            assert (result.status, result.score) == (alone.status, alone.score), result.line()


@pytest.mark.slow
def test_every_bad_submission_gets_its_status_score_and_a_reason(graded_class):
    results = {r.student: r for r in graded_class}
    wrong = []
    for case in corpus.BAD:
        got = results[case.name]
        if (got.status, got.score) != (case.status, case.score):
            wrong.append(f"{got.line()}   expected: {case.status}, {case.score}")
        elif got.status != grade.GRADED and not got.reason:
            wrong.append(f"{got.line()}   no reason given")
    assert not wrong, "\n".join(wrong)


@pytest.mark.slow
def test_tampering_is_zero_in_the_gradebook_and_flagged_for_a_person(course, graded_class):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(LAB, LAB, "input_transformer")
        assert notebook.score == 0
        assert all(g.needs_manual_grade for g in notebook.grades)


@pytest.mark.slow
def test_the_exit_code_says_whether_a_person_is_needed(course, graded_class, capsys):
    args = [LAB, "--course", str(course), "--workers", "1"]
    assert grade.main([*args, "--student", "missing"]) == 1
    assert "1 missing notebook" in capsys.readouterr().out
    assert grade.main([LAB, "--course", str(course / "nowhere")]) == 2


# ----------------------------------------------------------------------------------------------
# Each protection off: its attack succeeds


@pytest.mark.slow
def test_without_the_scan_an_input_transformer_scores_full_marks_unanswered(graded_class, course):
    attacked = _grade(course, ["transformer_on_blank"], protections=frozenset({"stage", "limits"}))
    assert attacked["transformer_on_blank"].score == corpus.FULL  # every later cell became `pass`


@pytest.mark.slow
def test_without_staging_a_torch_py_beside_the_notebook_is_imported(graded_class, course):
    attacked = _grade(course, ["torch_py_beside"], protections=frozenset({"limits", "scan"}))
    assert attacked["torch_py_beside"].score < corpus.FULL


@pytest.mark.slow
def test_without_limits_the_memory_bomb_gets_its_memory(graded_class, course):
    attacked = _grade(course, ["memory_bomb"], protections=frozenset({"stage", "scan"}))
    assert attacked["memory_bomb"].score == corpus.FULL
    assert attacked["memory_bomb"].status == grade.GRADED


@pytest.mark.slow
def test_without_limits_a_printing_loop_fills_the_graders_memory(graded_class, course, alone):
    capped = {r.student: r for r in graded_class}["printing_loop"]
    loud = read(course / "autograded" / "megabytes_of_output" / LAB / f"{LAB}.ipynb")
    notes = [
        o.get("data", {}).get("text/plain", "") for o in corpus.cell(loud, "vgg_accounting").outputs
    ]
    assert any("output past 8 MB was not kept by the grader" in note for note in notes), notes
    attacked = _grade(course, ["printing_loop"], protections=frozenset({"stage", "scan"}))
    uncapped = attacked["printing_loop"].grader_mb
    # everything printed in 30 s is held: several GB (about 4.4 on an idle machine)
    assert uncapped > 2 * alone.grader_mb and uncapped > capped.grader_mb, (
        uncapped, capped.grader_mb, alone.grader_mb)  # fmt: skip


@pytest.mark.slow
def test_the_grading_benchmark_prints_both_worker_counts():
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_grading.py"), "--students", "2"],
        env=environment(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if "s per submission" in line]
    assert [line.split()[:2] for line in lines] == [["1", "worker"], ["2", "workers"]], run.stdout


@pytest.mark.slow
def test_each_kernel_gets_its_share_of_the_threads(course, checkpoint):
    folder = course / "submitted" / "threads" / LAB
    folder.mkdir(parents=True)
    shutil.copy(checkpoint, folder)
    notebook = corpus.answered()
    show = "import os\n\nprint('threads:', os.environ.get('OMP_NUM_THREADS'))\n"
    corpus.cell(notebook, "vgg_block").source = show + corpus.cell(notebook, "vgg_block").source
    nbformat.write(notebook, folder / f"{LAB}.ipynb")
    previous = dict(os.environ)
    os.environ.update(environment())
    os.environ.pop("OMP_NUM_THREADS", None)
    try:
        grade.grade(course, LAB, students=["threads"], settings=replace(SETTINGS, threads=3))
    finally:
        os.environ.clear()
        os.environ.update(previous)
    graded = read(course / "autograded" / "threads" / LAB / f"{LAB}.ipynb")
    printed = "".join(o.get("text", "") for o in corpus.cell(graded, "vgg_block").outputs)
    assert "threads: 3" in printed


@pytest.mark.slow
def test_a_clean_resubmission_after_a_tampering_flag_gets_its_own_score(course, checkpoint):
    folder = course / "submitted" / "resubmits" / LAB
    folder.mkdir(parents=True)
    shutil.copy(checkpoint, folder)
    cheat = corpus.answered()
    corpus.cell(cheat, "vgg_block").source += "\n\ncheck_same_function = print\n"
    nbformat.write(cheat, folder / f"{LAB}.ipynb")
    first = _grade(course, ["resubmits"])["resubmits"]
    assert (first.status, first.score) == (grade.TAMPERING, 0), first.line()
    assert "the tests gave 11 before zeroing" in first.reason
    nbformat.write(corpus.answered(), folder / f"{LAB}.ipynb")
    second = _grade(course, ["resubmits"])["resubmits"]
    assert (second.status, second.score) == (grade.GRADED, corpus.FULL), second.line()


@pytest.mark.slow
def test_feedback_for_students_shows_no_hidden_test(graded_class, course):
    hidden = "15_087_080 * 4 / 2**20"  # a line of lab 1's hidden tests
    # nbgrader's own feedback shows it
    nbgrader(course, "generate_feedback", LAB, "--student", "correct_a", "--force")
    html = course / "feedback" / "correct_a" / LAB / f"{LAB}.html"
    assert hidden in _text(html)
    written = grade.feedback(course, LAB, ["correct_a", "keyboard_interrupt"])
    assert html in written
    for path in written:
        assert hidden not in _text(path)
    assert "test accuracy" in _text(html)  # the results are still there


def _text(html: Path) -> str:
    """What a browser shows of a feedback page (code is split into highlighting spans)."""
    import html as markup
    import re

    return markup.unescape(re.sub(r"<[^>]+>", "", html.read_text()))


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root")
def test_a_kernel_run_as_nobody_cannot_read_the_solutions(graded_class, course, checkpoint):
    secret = course / "solutions" / LAB / f"{LAB}.ipynb"
    notebook = corpus.answered()
    peek = f"try:\n    print(open({str(secret)!r}).read()[:60])\nexcept OSError as error:\n"
    peek += "    print(type(error).__name__)\n"
    corpus.cell(notebook, "vgg_block").source = peek + corpus.cell(notebook, "vgg_block").source
    folder = course / "submitted" / "peeker" / LAB
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{LAB}.ipynb")
    shutil.copy(checkpoint, folder)

    def printed() -> str:
        graded = read(course / "autograded" / "peeker" / LAB / f"{LAB}.ipynb")
        return "".join(o.get("text", "") for o in corpus.cell(graded, "vgg_block").outputs)

    as_grader = _grade(course, ["peeker"])["peeker"]  # the protection off: root's kernel
    assert '"cells"' in printed() and as_grader.score == corpus.FULL
    as_nobody = _grade(course, ["peeker"], user="nobody")["peeker"]
    assert "PermissionError" in printed() and '"cells"' not in printed()
    assert as_nobody.score == corpus.FULL, as_nobody.line()
