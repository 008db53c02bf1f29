"""One student's outcome (:class:`Result`), its statuses, and a class's summary line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "CELL_TIMEOUT",
    "CHECKPOINT_REJECTED",
    "EMPTY",
    "FAILED",
    "GRADED",
    "KERNEL_DIED",
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
    "Result",
    "summary",
]

# statuses: the first word groups them in the summary
GRADED = "graded"
RESTORED = "graded; test cells restored"
MISSING = "missing notebook"
UNREADABLE = "unreadable notebook"
EMPTY = "empty notebook"
RENAMED = "graded; wrong file name"
TAMPERING = "tampering suspected"
TIMED_OUT = "timed out"
OUT_OF_MEMORY = "graded; out of memory in a cell"
CELL_TIMEOUT = "graded; a cell timed out"
KERNEL_DIED = "kernel died"
CHECKPOINT_REJECTED = "graded; checkpoint rejected"
FAILED = "grading failed"
NEEDS_A_PERSON = {MISSING, UNREADABLE, TAMPERING, FAILED, KERNEL_DIED, TIMED_OUT}
# no grades from nbgrader: the grader writes the zero into the gradebook
UNGRADED = {MISSING, UNREADABLE, EMPTY, FAILED, KERNEL_DIED, TIMED_OUT}

# printed by convlab.grading.autograde, read back into Result.grader_mb
PEAK_LINE = "convlab: peak memory of the grading process:"


@dataclass
class Result:
    """One student's outcome."""

    student: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    reason: str = ""
    seconds: float = 0.0
    grader_mb: float = 0.0  # peak memory of the nbgrader process that graded it
    findings: list[str] = field(default_factory=list)

    def line(self) -> str:
        reason = f"  {self.reason}" if self.reason else ""
        return f"{self.student:<24} {self.score:6.2f} / {self.max_score:g}  {self.status}{reason}"


def summary(results: Sequence[Result]) -> str:
    """One line: how many submissions, how many of each status, how many need a person."""
    counts = Counter(r.status for r in results)
    parts = [f"{n} {status}" for status, n in sorted(counts.items(), key=lambda x: -x[1])]
    review = sum(r.status in NEEDS_A_PERSON for r in results)
    return f"{len(results)} submissions: " + ", ".join(parts) + f"; {review} need a person"
