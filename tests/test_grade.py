"""convlab.grading: a class of broken and hostile submissions graded together, each failing alone.

The class is lab 1's corpus of bad hand-ins (tests/grading_corpus.py) plus correct ones. Every
protection also has a test in which its attack succeeds with the protection switched off.
"""

from __future__ import annotations

import csv
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

import grading_corpus as corpus  # noqa: E402
from labkit import ROOT, environment, lab_names, nbgrader, read, solution_path  # noqa: E402

from convlab import grading  # noqa: E402

LAB = corpus.LAB
# 30 s per cell: the slowest cell of lab 1 (loading and evaluating the checkpoint) takes a few
# seconds on two busy cores. 8 GiB of address space: torch alone maps about 3.3 GB.
SETTINGS = grading.Settings(cell_timeout=30, notebook_timeout=600, memory_gb=8, max_checkpoint_mb=2)
# Where no network namespace can be made (not root), the class is graded without that
# protection, its own test is skipped, and the grader's warning is tested instead.
NO_NAMESPACE = grading.network_problem()
if NO_NAMESPACE:
    SETTINGS = replace(SETTINGS, protections=SETTINGS.protections - {"network"})
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
    found = grading.scan_for_tampering(code, protected, "vgg_block")
    assert any(finding in line for line in found), found
    assert all(line.startswith("vgg_block, line ") for line in found)


def test_the_scan_finds_nothing_in_any_lab_solution():
    """No false alarm: the reference answers of every lab are ordinary code."""
    for lab in lab_names():
        solution = read(solution_path(lab))
        release = read(ROOT / "labs" / lab / f"{lab}.ipynb")
        assert grading.tampering_findings(solution, release) == [], lab


def test_local_names_inside_an_answer_are_not_tampering():
    code = "def vgg_block(lab, torch=None):\n    check_same_function = 3\n    return lab\n"
    assert grading.scan_for_tampering(code, {"lab", "check_same_function"}, "x") == []


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
    clean = grading.strip_feedback(graded, source)
    text = nbformat.writes(clean)
    assert hidden not in text and "15_087_080" not in text
    assert "expected 57.55 MiB" in text  # the student still learns what was wrong
    assert "further tests run when the notebook is graded" in corpus.cell(clean, test.metadata[
        "nbgrader"]["grade_id"]).source  # fmt: skip


def test_a_checkpoint_that_would_run_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / f"{LAB}.pt"
    path.write_bytes(corpus.malicious_checkpoint(str(marker)))
    assert "holds more than weights" in grading.check_checkpoint(path, max_mb=10)
    assert not marker.exists()
    # protection off: loading it as PyTorch did before weights_only runs the payload
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert marker.exists(), "the payload should run when loaded without weights_only"


def test_a_checkpoint_over_the_cap_is_refused(tmp_path):
    path = tmp_path / f"{LAB}.pt"
    path.write_bytes(b"\0" * 3_000_000)
    assert "over the 2 MB cap" in grading.check_checkpoint(path, max_mb=2)


def test_workers_default_to_the_cores_as_far_as_memory_allows():
    assert 1 <= grading.default_workers(memory_gb=8) <= grading.cores()
    assert grading.default_workers(memory_gb=10**6) == 1  # not even one fits: still one
    assert grading.default_workers(memory_gb=0.001) == grading.cores()


def test_the_commands_users_type_keep_their_names(tmp_path):
    """``python -m convlab.grade`` and ``python -m convlab.autograde`` still run the grader."""
    from convlab import grade

    assert {name: getattr(grade, name) for name in grading.__all__} == {
        name: getattr(grading, name) for name in grading.__all__
    }
    run = subprocess.run(
        [sys.executable, "-m", "convlab.grade", LAB, "--course", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "cannot grade: no release" in run.stderr, run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "convlab.autograde", "--help"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Autograde a notebook" in run.stdout


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
    from ipc_kernel import execute

    work = tmp_path_factory.mktemp("student")
    previous, wanted = dict(os.environ), environment()
    os.environ.clear()
    os.environ.update(wanted)
    try:
        execute(corpus.answered(), work, timeout=600, save_as=f"{LAB}.ipynb")
    finally:
        os.environ.clear()
        os.environ.update(previous)
    return work / f"{LAB}.pt"


def _correct(course: Path, student: str, checkpoint: Path) -> None:
    folder = course / "submitted" / student / LAB
    folder.mkdir(parents=True)
    nbformat.write(corpus.answered(), folder / f"{LAB}.ipynb")
    shutil.copy(checkpoint, folder)


def _grade(course: Path, students, workers: int = 1, **changes) -> dict[str, grading.Result]:
    settings = replace(SETTINGS, **changes)
    previous = dict(os.environ)
    os.environ.update(environment())
    try:
        results = grading.grade(course, LAB, students=students, workers=workers, settings=settings)
    finally:
        os.environ.clear()
        os.environ.update(previous)
    return {r.student: r for r in results}


@pytest.fixture(scope="module")
def alone(course, checkpoint) -> grading.Result:
    _correct(course, "alone", checkpoint)
    return _grade(course, ["alone"])["alone"]


@pytest.fixture(scope="module")
def graded_class(course, checkpoint, alone) -> list[grading.Result]:
    for case in corpus.BAD:
        corpus.write_case(course, case, checkpoint)
    for student in GOOD:
        _correct(course, student, checkpoint)
    students = [case.name for case in corpus.BAD] + list(GOOD)
    previous = dict(os.environ)
    os.environ.update(environment())
    try:
        return grading.grade(course, LAB, students=students, workers=2, settings=SETTINGS)
    finally:
        os.environ.clear()
        os.environ.update(previous)


@pytest.mark.slow
def test_an_lms_download_of_a_hand_in_archive_and_loose_files_grades_each_student(
    course, checkpoint
):
    """Canvas's "download all submissions": one student handed in the archive that the lab's
    last cell (lab.hand_in) wrote, another the notebook and checkpoint as two files (late, a
    resubmission, an accounting cell interrupted); zip_collect files both, and the grader's
    command gives each their score."""
    import zipfile

    archive = checkpoint.parent / f"{LAB}.zip"  # made by the answered notebook's last cell
    assert sorted(zipfile.ZipFile(archive).namelist()) == [f"{LAB}.ipynb", f"{LAB}.pt"]
    downloaded = course / "downloaded" / LAB / "archive"
    downloaded.mkdir(parents=True)
    interrupted = corpus._with_answer("vgg_accounting", "raise KeyboardInterrupt\n")
    with zipfile.ZipFile(downloaded / "submissions.zip", "w") as lms:
        lms.write(archive, f"archivejane_1234_5678_{LAB}.zip")
        lms.writestr(f"loosejohn_LATE_4321_8765_{LAB}-1.ipynb", nbformat.writes(interrupted))
        lms.write(checkpoint, f"loosejohn_LATE_4321_8766_{LAB}-1.pt")
    nbgrader(course, "zip_collect", LAB)
    for student in ("archivejane", "loosejohn"):
        handed = sorted(p.name for p in (course / "submitted" / student / LAB).iterdir())
        assert handed == [f"{LAB}.ipynb", f"{LAB}.pt"], (student, handed)
    command = [sys.executable, "-m", "convlab.grade", LAB, "--workers", "2"]
    command += ["--student", "archivejane", "--student", "loosejohn", "--cell-timeout", "30"]
    command += ["--memory-gb", "8", "--max-checkpoint-mb", "2"]
    command += ["--allow-network"] if NO_NAMESPACE else []
    graded = subprocess.run(
        command, cwd=course, env=environment(), capture_output=True, text=True, timeout=1200
    )
    assert graded.returncode == 0, graded.stdout + graded.stderr
    lines = {line.split()[0]: line.split() for line in graded.stdout.splitlines() if line.strip()}
    assert lines["archivejane"][1:4] == [f"{corpus.FULL:.2f}", "/", f"{corpus.FULL:g}"], lines
    assert lines["loosejohn"][1] == f"{corpus.WITHOUT_ACCOUNTING:.2f}", lines


@pytest.mark.slow
def test_a_correct_submission_graded_alone_gets_full_marks(alone):
    full_marks = (grading.GRADED, corpus.FULL, corpus.FULL)
    assert (alone.status, alone.score, alone.max_score) == full_marks


@pytest.mark.slow
def test_the_class_gets_one_row_per_student(graded_class):
    students = [r.student for r in graded_class]
    assert sorted(students) == sorted([c.name for c in corpus.BAD] + list(GOOD))
    line = grading.summary(graded_class)
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
        elif got.status != grading.GRADED and not got.reason:
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
    assert grading.main([*args, "--student", "missing"]) == 1
    assert "1 missing notebook" in capsys.readouterr().out
    assert grading.main([LAB, "--course", str(course / "nowhere")]) == 2


@pytest.mark.slow
def test_an_unreadable_hand_in_is_exported_with_zero_and_its_reason(course, checkpoint, tmp_path):
    """A notebook cut off mid-file is in the grades file that ``nbgrader export`` writes, with
    zero and the reason, and the correct hand-in graded with it keeps its marks."""
    from nbgrader.api import Gradebook

    cut = "cut_off_reaches_export"
    (course / "submitted" / cut / LAB).mkdir(parents=True)
    (course / "submitted" / cut / LAB / f"{LAB}.ipynb").write_text(
        corpus.cut_off(corpus.answered())
    )
    _correct(course, "graded_beside_it", checkpoint)
    results = _grade(course, [cut, "graded_beside_it"], workers=2)
    assert (results[cut].status, results[cut].score) == (grading.UNREADABLE, 0)
    assert "not valid JSON" in results[cut].reason  # the status line says why
    assert results["graded_beside_it"].score == corpus.FULL, results["graded_beside_it"].line()
    grades = tmp_path / "grades.csv"
    nbgrader(course, "export", "--to", str(grades))
    with grades.open() as table:
        rows = {row["student_id"]: row for row in csv.DictReader(table) if row["assignment"] == LAB}
    assert float(rows[cut]["score"]) == 0 and float(rows[cut]["max_score"]) == corpus.FULL
    assert float(rows["graded_beside_it"]["score"]) == corpus.FULL
    # the reason is in the gradebook too, where the formgrader and feedback show comments
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(LAB, LAB, cut)
        comments = [comment.comment for comment in notebook.comments]
    assert comments and all("not valid JSON" in (text or "") for text in comments), comments


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
    assert attacked["memory_bomb"].status == grading.GRADED


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
        grading.grade(course, LAB, students=["threads"], settings=replace(SETTINGS, threads=3))
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
    unscanned = _grade(course, ["resubmits"], protections=SETTINGS.protections - {"scan"})
    tests_gave = unscanned["resubmits"].score  # what the same notebook earns unflagged
    first = _grade(course, ["resubmits"])["resubmits"]
    assert (first.status, first.score) == (grading.TAMPERING, 0), first.line()
    assert f"the tests gave {tests_gave:g} before zeroing" in first.reason, first.reason
    nbformat.write(corpus.answered(), folder / f"{LAB}.ipynb")
    second = _grade(course, ["resubmits"])["resubmits"]
    assert (second.status, second.score) == (grading.GRADED, corpus.FULL), second.line()


@pytest.mark.slow
def test_feedback_for_students_shows_no_hidden_test(graded_class, course):
    hidden = "15_087_080 * 4 / 2**20"  # a line of lab 1's hidden tests
    # nbgrader's own feedback shows it
    nbgrader(course, "generate_feedback", LAB, "--student", "correct_a", "--force")
    html = course / "feedback" / "correct_a" / LAB / f"{LAB}.html"
    assert hidden in _text(html)
    written = grading.feedback(course, LAB, ["correct_a", "keyboard_interrupt"])
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


# ----------------------------------------------------------------------------------------------
# The notebook's time limit is wall-clock time (issue 14, fault 7)


def _blank_hand_in(course: Path, student: str, first: str = "", last: str = "") -> None:
    """The release left unanswered, with the code ``first`` as its first cell, ``last`` as its
    last (each when given)."""
    notebook = read(course / "labs" / LAB / f"{LAB}.ipynb")
    if first:
        notebook.cells.insert(0, nbformat.v4.new_code_cell(first))
    if last:
        notebook.cells.append(nbformat.v4.new_code_cell(last))
    folder = course / "submitted" / student / LAB
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / f"{LAB}.ipynb")


def _printed(course: Path, student: str, index: int) -> str:
    """The text a cell of a student's autograded notebook printed."""
    graded = read(course / "autograded" / student / LAB / f"{LAB}.ipynb")
    return "".join(o.get("text", "") for o in graded.cells[index].get("outputs", []))


def _gone(pid: int, within: float) -> bool:
    """Whether the process ``pid`` ends (or is a zombie) within ``within`` seconds."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = stat.read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in {"Z", "X"}:
            return True
        time.sleep(0.1)
    return False


SPIN = "sum(range(10**13))  # hours of work in one C call: the kernel never lets go of the GIL"


@pytest.mark.slow
@pytest.mark.parametrize(
    "wait",
    ["time.sleep(3600)", SPIN],
    ids=["sleeps", "spins"],
)
def test_a_notebook_past_the_wall_clock_limit_is_stopped_kernel_and_all(course, tmp_path, wait):
    student = "sleeps" if "sleep" in wait else "spins"
    pid_file = tmp_path / "kernel.pid"
    first = f"import os, time\n\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n{wait}\n"
    _blank_hand_in(course, student, first=first)
    limit = 40
    begin = time.monotonic()
    result = _grade(course, [student], cell_timeout=600, notebook_timeout=limit)[student]
    took = time.monotonic() - begin
    assert result.status == grading.TIMED_OUT, result.line()
    assert f"ran past {limit} s" in result.reason, result.line()
    assert limit <= took < limit + 30  # the notebook's limit, not the cell's (600 s)
    assert pid_file.exists(), "the kernel never reached the first cell"
    pid = int(pid_file.read_text())
    assert _gone(pid, within=3), f"the kernel (pid {pid}) outlived the notebook's time limit"


# Threads that spend CPU seconds faster than wall-clock seconds, for as long as the notebook's
# limit allows: until the kernel has spent more CPU seconds than the limit has wall-clock
# seconds, or until 25 s before the limit. On two idle cores they pass the limit in CPU seconds
# long before it passes in wall-clock time; on a loaded machine they may not, and the kernel's
# CPU limit printed at the end still shows whether it could have stopped them.
BURN = """\
import hashlib
import resource
import threading
import time

began, data = time.monotonic(), bytes(2**20)


def burn():
    while time.time() < {deadline} and time.process_time() < {target}:
        hashlib.sha256(data).digest()  # hashlib lets go of the GIL: threads run side by side


threads = [threading.Thread(target=burn) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
print(f"cpu {{time.process_time():.1f}} s in {{time.monotonic() - began:.1f}} s; cpu limit {{soft}}")
"""


@pytest.mark.slow
def test_threads_that_spend_cpu_faster_than_wall_time_are_not_stopped_within_the_limit(course):
    limit = 90
    deadline = time.time() + limit - 25
    _blank_hand_in(course, "threads_burn", last=BURN.format(deadline=deadline, target=limit + 3))
    result = _grade(course, ["threads_burn"], cell_timeout=limit, notebook_timeout=limit)
    assert result["threads_burn"].status == grading.GRADED, result["threads_burn"].line()
    printed = _printed(course, "threads_burn", -1)
    found = re.search(r"cpu ([\d.]+) s in ([\d.]+) s; cpu limit (-?\d+)", printed)
    assert found, printed
    cap = int(found.group(3))
    # a process spends at most (cores x wall-clock seconds) CPU seconds: a cap above that never
    # stops a notebook that keeps to its wall-clock limit
    assert cap == resource.RLIM_INFINITY or cap > grading.cores() * limit, printed


# ----------------------------------------------------------------------------------------------
# Grading kernels have no network (issue 14, fault 10)

CALL_HOME = """\
import socket

import ipykernel

print("transport:", ipykernel.get_connection_info(unpack=True)["transport"])
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout=10) as line:
        line.sendall(b"the hidden tests")
    print("connected")
except OSError as error:
    print("no network:", error)
"""


@contextmanager
def _listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on this machine's loopback address: its port, and what it received."""
    heard: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(10)
                heard.append(connection.recv(1024))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], heard
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.mark.slow
@pytest.mark.skipif(bool(NO_NAMESPACE), reason=NO_NAMESPACE)
def test_a_grading_kernel_cannot_reach_a_listener_on_the_grading_machine(course):
    student = "calls_home"
    with _listener() as (port, heard):
        _blank_hand_in(course, student, first=CALL_HOME.format(port=port))
        result = _grade(course, [student])[student]
    printed = _printed(course, student, 0).splitlines()
    assert result.status == grading.GRADED, result.line()
    assert "transport: ipc" in printed  # the kernel talks to nbgrader over unix sockets
    assert any(line.startswith("no network:") for line in printed), printed
    assert heard == [], heard
    # the protection off: the same hand-in reaches the listener
    with _listener() as (port, heard):
        _blank_hand_in(course, student, first=CALL_HOME.format(port=port))
        result = _grade(course, [student], protections=SETTINGS.protections - {"network"})
    printed = _printed(course, student, 0).splitlines()
    assert "connected" in printed, printed
    assert heard == [b"the hidden tests"], heard


def _unshare_user_works() -> bool:
    found = shutil.which("unshare")
    return bool(found) and subprocess.run([found, "--user", "true"]).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_user_works(), reason="needs util-linux unshare --user")
def test_where_no_network_namespace_can_be_made_the_grader_says_so_and_grades(course):
    """Under ``unshare --user`` with no user mapping, a process holds no capability over the
    machine's network, so no namespace can be made: the grader's command is the same as where
    one can be, and it grades with kernels that keep the network, saying so in one line first."""
    command = ["unshare", "--user", sys.executable, "-m", "convlab.grade", LAB]
    command += ["--course", str(course), "--student", "no_such_student"]
    for extra in ([], ["--allow-network"]):
        run = subprocess.run([*command, *extra], env=environment(), capture_output=True, text=True)
        assert run.returncode == 1, run.stdout + run.stderr  # a missing notebook, graded
        assert "missing notebook" in run.stdout, run.stdout
        [first, *_] = run.stderr.strip().splitlines()
        assert first.startswith("warning:") and "network" in first, run.stderr
        assert ("root" in first) if not extra else ("--allow-network" in first), first
