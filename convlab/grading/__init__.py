"""Grade every submission of a lab with nbgrader, one at a time or in parallel, each in a box.

    python -m convlab.grade lab1_vgg                  # from the course directory
    python -m convlab.grade lab1_vgg --workers 2 --memory-gb 8 --cell-timeout 300

Built on ``nbgrader autograde``, run once per student, so that one submission can never stop
the others. Each run works on a staged copy of the submission (the submitted files are never
changed): only the lab's notebook and checkpoint are copied, so a ``torch.py`` or ``convlab.py``
handed in beside the notebook is never imported. The kernel starts under resource limits
(address space, file size, a CPU-seconds backstop), with a time limit per cell (nbgrader
interrupts the cell, the student loses that cell's points) and per notebook, in wall-clock time
(nbgrader and the kernel are killed, the submission scores zero with the status ``timed
out``); it has no network (a network namespace of its own, which takes root: where none can
be made, grading goes on with the network and says so in one line) and talks to nbgrader
over unix sockets; it runs as an unprivileged user when ``--user`` is given (see
:func:`kernel_main`). The grading process keeps only the first megabytes of each cell's
output (:mod:`convlab.grading.autograde`).

Before grading, every notebook is read and checked: missing, unreadable, empty, handed in
under another name, test cells edited, deleted, duplicated or with edited points (nbgrader
restores them; the status says so), and code that reaches into the IPython shell, the
checkers or the test machinery (``tampering suspected``: graded, then set to zero for a
person to review, every grade marked as needing manual grading). A checkpoint must load as
plain weights (``torch.load(weights_only=True)``) and stay under the size cap.

A submission that gets no grades (missing, unreadable or empty notebook, timed out, kernel
died, grading failed) gets zero in the gradebook, with the reason as its comments, so that
``nbgrader export`` lists every student who handed in anything.

The command ends with one line per student (score, status, reason), a summary line counting
each status, and exit code 0 when every submission was graded without anything to review, 1
when a person needs to look at something, 2 when grading itself could not start.

One module per part:

    settings    Settings, the limits of a run
    result      Result, the statuses, the summary line
    preflight   reading the notebook, comparing it with the release, checking the checkpoint
    scan        the tamper scan
    sandbox     the staging folder, the kernel under limits, its kernelspec, another user
    course      grading one submission and a class (workers, retries, the gradebook)
    feedback    feedback pages without the hidden tests
    autograde   nbgrader autograde with capped output, run as its own process per student
                (``python -m convlab.grading.autograde``; not imported here: it imports nbgrader)
    cli         the command line; ``python -m convlab.grading`` runs it, and so does the
                ``python -m convlab.grade`` that users type (convlab/grade.py)

The library, :mod:`convlab.labs` and :mod:`convlab.check` never import this package: students
get the course without it.
"""

from convlab.grading.cli import main
from convlab.grading.course import Course, default_workers, grade, grade_one
from convlab.grading.feedback import HIDDEN_TESTS, feedback, strip_feedback
from convlab.grading.preflight import check_checkpoint, compare_with_release
from convlab.grading.result import (
    CELL_TIMEOUT,
    CHECKPOINT_REJECTED,
    EMPTY,
    FAILED,
    GRADED,
    KERNEL_DIED,
    MISSING,
    NEEDS_A_PERSON,
    OUT_OF_MEMORY,
    PEAK_LINE,
    RENAMED,
    RESTORED,
    TAMPERING,
    TIMED_OUT,
    UNGRADED,
    UNREADABLE,
    Result,
    summary,
)
from convlab.grading.sandbox import KERNEL_NAME, kernel_main, network_problem, portable_python
from convlab.grading.scan import scan_for_tampering, tampering_findings
from convlab.grading.settings import GIB, Settings, cores, tools_first_on_path

__all__ = [
    "CELL_TIMEOUT",
    "CHECKPOINT_REJECTED",
    "EMPTY",
    "FAILED",
    "GIB",
    "GRADED",
    "HIDDEN_TESTS",
    "KERNEL_DIED",
    "KERNEL_NAME",
    "MISSING",
    "NEEDS_A_PERSON",
    "OUT_OF_MEMORY",
    "PEAK_LINE",
    "RENAMED",
    "RESTORED",
    "TAMPERING",
    "TIMED_OUT",
    "UNGRADED",
    "UNREADABLE",
    "Course",
    "Result",
    "Settings",
    "check_checkpoint",
    "compare_with_release",
    "cores",
    "default_workers",
    "feedback",
    "grade",
    "grade_one",
    "kernel_main",
    "main",
    "network_problem",
    "portable_python",
    "scan_for_tampering",
    "strip_feedback",
    "summary",
    "tampering_findings",
    "tools_first_on_path",
]
