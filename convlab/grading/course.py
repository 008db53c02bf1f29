"""Grading a class: each submission checked, staged and autograded on its own, several at once.

:func:`grade` runs :func:`grade_one` for every student in a pool of workers (one submission
never stops the others; nbgrader failing on its own is retried once), shares the cores among
the kernels that run at once, and reads the scores back from the gradebook, which it also
zeroes and flags for a person when the tamper scan found something.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from convlab.grading.preflight import (
    check_checkpoint,
    compare_with_release,
    deduplicate,
    find_notebook,
    read_notebook,
    restore_metadata,
)
from convlab.grading.result import (
    CELL_TIMEOUT,
    CHECKPOINT_REJECTED,
    EMPTY,
    FAILED,
    GRADED,
    KERNEL_DIED,
    MISSING,
    OUT_OF_MEMORY,
    PEAK_LINE,
    RENAMED,
    RESTORED,
    TAMPERING,
    TIMED_OUT,
    UNGRADED,
    UNREADABLE,
    Result,
)
from convlab.grading.sandbox import (
    KERNEL_NAME,
    kernelspec,
    network_problem,
    protect_course,
    python_for,
    socket_folder,
    socket_problem,
    stage_root,
)
from convlab.grading.scan import tampering_findings
from convlab.grading.settings import GIB, Settings, cores, tools_first_on_path

__all__ = ["Course", "default_workers", "grade", "grade_one", "last_error"]


@dataclass
class Course:
    """The lab being graded: the course directory, the released notebook, the gradebook."""

    root: Path
    lab: str
    release: Any
    db_url: str

    @property
    def notebook_name(self) -> str:
        return f"{self.lab}.ipynb"


def _course(root: Path, lab: str, db_url: str | None) -> Course:
    import nbformat

    release = root / "labs" / lab / f"{lab}.ipynb"
    if not release.exists():
        raise SystemExit(f"no release {release}: run nbgrader generate_assignment {lab} first")
    url = db_url or f"sqlite:///{(root / 'gradebook.db').resolve()}"
    return Course(root, lab, nbformat.read(release, as_version=4), url)


def _grades(course: Course, student: str) -> tuple[float, float] | None:
    """The submission's (score, max score) in the gradebook, or None when it is not there."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url) as gradebook:
        try:
            notebook = gradebook.find_submission_notebook(course.lab, course.lab, student)
        except MissingEntry:
            return None
        return float(notebook.score), float(notebook.max_score)


def _flag_for_review(course: Course, student: str) -> None:
    """Zero every grade of a submission and mark it for manual grading (nbgrader formgrader).

    The automatic scores are zeroed, not the manual ones: nbgrader keeps a manual score through
    every later autograde, so a zero written there would outlive a clean resubmission. A score a
    person gives in the formgrader still overrides, as nbgrader intends.
    """
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        notebook = gradebook.find_submission_notebook(course.lab, course.lab, student)
        for grade in notebook.grades:
            grade.auto_score = 0.0
            grade.needs_manual_grade = True
        gradebook.db.commit()


def _cell_troubles(path: Path, settings: Settings) -> list[tuple[str, str]]:
    """(status, reason) for each cell of an autograded notebook stopped by a limit."""
    import nbformat

    if not path.exists():
        return []
    found = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"
        for output in cell.get("outputs", []):
            text = f"{output.get('ename', '')} {output.get('evalue', '')} {output.get('text', '')}"
            if "CellTimeoutError" in text or "timed out" in text.lower():
                reason = f"{name} ran past {settings.cell_timeout} s and was interrupted"
                found.append((CELL_TIMEOUT, reason))
            elif "MemoryError" in text or "can't allocate memory" in text:
                reason = f"{name} asked for more than the {settings.memory_gb:g} GiB limit"
                found.append((OUT_OF_MEMORY, reason))
    return found


def grade_one(
    course: Course, student: str, settings: Settings, jupyter_path: Path | None
) -> Result:
    """Check, stage and autograde one student's submission.

    A hand-in that got no grades (unreadable, empty, timed out, ...) is written into the
    gradebook with zero and the reason, so that ``nbgrader export`` lists every student who
    handed in anything.
    """
    result = _check_and_autograde(course, student, settings, jupyter_path)
    if result.status in UNGRADED and (course.root / "submitted" / student).is_dir():
        trouble = _record_zero(course, student, result.reason)
        result.reason = "; ".join(filter(None, [result.reason, trouble]))
    return result


def _record_zero(course: Course, student: str, reason: str) -> str:
    """Zero a submission in the gradebook, with the reason as its comments; why it could not
    be ("" when it was).

    Automatic scores and comments only: the next autograde replaces both, and a score a person
    gives in the formgrader stands, as nbgrader intends.
    """
    from nbgrader.api import Gradebook, InvalidEntry, MissingEntry
    from sqlalchemy.exc import SQLAlchemyError

    stamp = course.root / "submitted" / student / course.lab / "timestamp.txt"
    when = {"timestamp": stamp.read_text().strip()} if stamp.is_file() else {}
    try:
        with Gradebook(course.db_url) as gradebook:
            gradebook.update_or_create_student(student)
            try:
                submission = gradebook.find_submission(course.lab, student)
            except MissingEntry:
                with gradebook.db.no_autoflush:  # nbgrader's own add flushes half-made rows
                    submission = gradebook.add_submission(course.lab, student, **when)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.auto_score = 0.0
                    grade.needs_manual_grade = False
                for comment in notebook.comments:
                    comment.auto_comment = f"Not graded: {reason}"
            gradebook.db.commit()
    except (MissingEntry, InvalidEntry, SQLAlchemyError, ValueError) as error:
        return f"its zero is not in the gradebook ({type(error).__name__}: {error})"
    return ""


def _check_and_autograde(
    course: Course, student: str, settings: Settings, jupyter_path: Path | None
) -> Result:
    """:func:`grade_one` up to the gradebook's zero for a submission without grades."""
    import nbformat

    begin = time.perf_counter()
    result = Result(student, GRADED, max_score=_max_score(course))
    folder = course.root / "submitted" / student / course.lab
    path, renamed = find_notebook(folder, course.notebook_name) if folder.is_dir() else (None, "")
    if path is None:
        result.status, result.reason = MISSING, f"no {course.notebook_name} in {folder}"
        return result
    notebook, reason = read_notebook(path)
    if notebook is None:
        result.status, result.reason = UNREADABLE, reason
        return result
    if not any(cell.source.strip() for cell in notebook.cells):
        result.status, result.reason = EMPTY, "the notebook has no content"
        return result
    notes = [renamed] if renamed else []
    changed = compare_with_release(notebook, course.release)
    if changed:
        notes.append("restored: " + ", ".join(changed))
        restore_metadata(notebook, course.release)
        deduplicate(notebook)
    findings = (
        tampering_findings(notebook, course.release) if "scan" in settings.protections else []
    )
    checkpoint = folder / f"{course.lab}.pt"
    refused = ""
    if checkpoint.exists() and "checkpoint" in settings.protections:
        refused = check_checkpoint(checkpoint, settings.max_checkpoint_mb)

    with stage_root() as stage:
        if "stage" in settings.protections:
            submitted = stage / "submitted"
            target = submitted / student / course.lab
            target.mkdir(parents=True)
            nbformat.write(notebook, target / course.notebook_name)
            if checkpoint.exists() and not refused:
                shutil.copy(checkpoint, target / checkpoint.name)
        else:  # nbgrader's own copy of everything the student handed in
            submitted = course.root / "submitted"
        autograded = stage / "autograded"
        output_mb = str(settings.max_output_mb) if "limits" in settings.protections else "inf"
        command = [
            sys.executable, "-m", "convlab.grading.autograde", course.lab,
            "--student", student, "--force", "--output-mb", output_mb,
            f"--CourseDirectory.root={course.root.resolve()}",
            f"--CourseDirectory.submitted_directory={submitted}",
            f"--CourseDirectory.autograded_directory={autograded}",
            f"--CourseDirectory.db_url={course.db_url}",
            f"--Execute.timeout={settings.cell_timeout}",
            "--KernelManager.transport=ipc",
            f"--KernelManager.ip={socket_folder(stage, settings.user) / 'kernel'}",
        ]  # fmt: skip
        env = tools_first_on_path()
        if jupyter_path is not None:
            command.append(f"--Execute.kernel_name={KERNEL_NAME}")
            env["JUPYTER_PATH"] = str(jupyter_path)
        returncode, log = _autograde(command, course.root, env, stage, settings.notebook_timeout)
        logs = course.root / "grading-logs" / course.lab
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{student}.log").write_text(log)
        if returncode is None:
            result.status = TIMED_OUT
            result.reason = f"the notebook ran past {settings.notebook_timeout} s and was stopped"
            result.max_score = _max_score(course)
            result.seconds = time.perf_counter() - begin
            return result
        made = autograded / student / course.lab
        if made.exists():
            final = course.root / "autograded" / student / course.lab
            shutil.rmtree(final, ignore_errors=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(made, final)
        troubles = _cell_troubles(made / course.notebook_name, settings)
    peak = re.search(re.escape(PEAK_LINE) + r" (\d+) MB", log)
    result.grader_mb = float(peak.group(1)) if peak else 0.0
    grades = _grades(course, student)
    result.max_score = grades[1] if grades else _max_score(course)
    result.seconds = time.perf_counter() - begin
    if returncode != 0 or grades is None:
        died = "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log.lower()
        result.status = KERNEL_DIED if died else FAILED
        result.reason = (
            "the kernel stopped while the notebook ran (os._exit, a crash, or killed for "
            "memory); nothing was graded"
            if died
            else last_error(log)
        )
        return result
    result.score = grades[0]
    if findings:
        _flag_for_review(course, student)
        result.status, result.findings = TAMPERING, findings
        result.score = (_grades(course, student) or (0.0, 0.0))[0]  # 0 unless graded by hand
        result.reason = findings[0] + (f" (+{len(findings) - 1} more)" if len(findings) > 1 else "")
        result.reason += f"; the tests gave {grades[0]:g} before zeroing"
        return result
    if refused:
        result.status, result.reason = CHECKPOINT_REJECTED, refused
    elif troubles:
        result.status = troubles[0][0]
        notes.insert(0, "; ".join(reason for _, reason in troubles))
    elif renamed:
        result.status = RENAMED
    elif changed:
        result.status = RESTORED
    result.reason = "; ".join(filter(None, [result.reason, *notes]))
    return result


def _autograde(
    command: list[str], cwd: Path, env: dict[str, str], stage: Path, timeout: float
) -> tuple[int | None, str]:
    """Run nbgrader's autograde for at most ``timeout`` seconds of wall-clock time.

    Returns:
        Its exit code (None when it ran out of time and was killed) and its output.

    nbgrader runs in a process group of its own, killed whole at the limit; its kernel, which
    jupyter_client starts in another session, dies with it (see
    :func:`~convlab.grading.sandbox.kernel_main`). The output goes to a file, not a pipe, which
    a process that outlived the kill would hold open.
    """
    path = stage / "autograde.log"
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            returncode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = None
    return returncode, path.read_text(errors="replace")


def _grade_with_retry(
    course: Course, student: str, settings: Settings, jupyter_path: Path | None
) -> Result:
    """:func:`grade_one`, once more when nbgrader itself failed (not the student's code)."""
    result = grade_one(course, student, settings, jupyter_path)
    if result.status == FAILED:
        first = result.reason
        result = grade_one(course, student, settings, jupyter_path)
        result.reason = "; ".join(filter(None, [result.reason, f"first attempt failed: {first}"]))
    return result


def _max_score(course: Course) -> float:
    return float(
        sum(
            c.metadata["nbgrader"].get("points", 0)
            for c in course.release.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")
        )
    )


def last_error(log: str) -> str:
    """The last error line of an nbgrader log, as the reason grading failed."""
    lines = [line.strip() for line in log.splitlines() if "Error" in line or "error" in line]
    lines = [line for line in lines if "see the the above traceback" not in line]
    return lines[-1][:200] if lines else "nbgrader autograde failed; see grading-logs/"


def default_workers(memory_gb: float) -> int:
    """One worker per core, as long as every kernel could use its whole memory limit at once."""
    try:
        total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (AttributeError, ValueError, OSError):
        return cores()
    return max(1, min(cores(), int(total_gb // (memory_gb + 1))))


def grade(
    root: Path,
    lab: str,
    *,
    students: Sequence[str] | None = None,
    workers: int = 1,
    settings: Settings | None = None,
    db_url: str | None = None,
) -> list[Result]:
    """Grade every submission of ``lab`` in the course directory ``root``; one result each."""
    settings = settings or Settings()
    problem = socket_problem()
    if problem:
        raise SystemExit(problem)
    if "network" in settings.protections:
        problem = network_problem()
        if problem:  # graded as before this protection existed, and said first
            print(f"warning: {problem}", file=sys.stderr)
            settings = replace(settings, protections=settings.protections - {"network"})
    course = _course(root, lab, db_url)
    if students is None:
        base = root / "submitted"
        students = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if settings.threads is None:  # the cores shared among the kernels that run at once
        at_once = max(1, min(workers, len(students)))
        settings = replace(settings, threads=max(1, cores() // at_once))
    jupyter_path = None
    with tempfile.TemporaryDirectory(prefix="convlab-kernelspec-") as spec_dir:
        if settings.user:
            protect_course(root)
        if {"limits", "network"} & settings.protections:
            python, site = python_for(settings.user)
            jupyter_path = kernelspec(Path(spec_dir), settings, python, site)
            os.chmod(spec_dir, 0o755)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [
                pool.submit(_grade_with_retry, course, s, settings, jupyter_path) for s in students
            ]
            results = []
            for student, future in zip(students, futures, strict=True):
                try:
                    results.append(future.result())
                except Exception as error:  # one submission never stops the others
                    results.append(
                        Result(student, FAILED, reason=f"{type(error).__name__}: {error}")
                    )
    return results
