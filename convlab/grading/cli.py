"""The command line: ``python -m convlab.grade <lab> [options]``.

It prints one line per student (score, status, reason) and a summary line, and exits with 0
when every submission was graded without anything to review, 1 when a person needs to look at
something, 2 when grading itself could not start. ``python -m convlab.grading kernel ...`` is
the grading kernelspec's command (:func:`~convlab.grading.sandbox.kernel_main`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from convlab.grading.course import default_workers, grade
from convlab.grading.feedback import feedback
from convlab.grading.result import NEEDS_A_PERSON, summary
from convlab.grading.sandbox import kernel_main
from convlab.grading.settings import Settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Grade a lab from the command line (``sys.argv`` by default); the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["kernel"]:
        kernel_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m convlab.grade", description="Grade every submission of a lab."
    )
    parser.add_argument("lab", help="the assignment, for example lab1_vgg")
    parser.add_argument("--course", type=Path, default=Path("."), help="course directory")
    parser.add_argument("--student", action="append", help="grade only these students")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="submissions graded at once (default: one per core, as memory allows)",
    )  # fmt: skip
    parser.add_argument("--cell-timeout", type=int, default=Settings.cell_timeout)
    parser.add_argument("--notebook-timeout", type=int, default=Settings.notebook_timeout)
    parser.add_argument("--memory-gb", type=float, default=Settings.memory_gb)
    parser.add_argument("--max-checkpoint-mb", type=float, default=Settings.max_checkpoint_mb)
    parser.add_argument("--user", default=None, help="run kernels as this unprivileged user")
    parser.add_argument(
        "--allow-network", action="store_true",
        help="let kernels reach the network even where a network namespace can be made",
    )  # fmt: skip
    parser.add_argument("--db-url", default=None, help="gradebook (default: gradebook.db)")
    parser.add_argument("--feedback", action="store_true", help="then write students' feedback")
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = default_workers(args.memory_gb)
    settings = Settings(
        cell_timeout=args.cell_timeout,
        notebook_timeout=args.notebook_timeout,
        memory_gb=args.memory_gb,
        max_checkpoint_mb=args.max_checkpoint_mb,
        user=args.user,
    )
    if args.allow_network:
        settings = replace(settings, protections=settings.protections - {"network"})
        print(
            "warning: grading kernels can reach the network (--allow-network): a hand-in can "
            "send the hidden tests out while they run",
            file=sys.stderr,
        )
    begin = time.perf_counter()
    try:
        results = grade(
            args.course, args.lab, students=args.student, workers=args.workers,
            settings=settings, db_url=args.db_url,
        )  # fmt: skip
    except SystemExit as error:
        print(f"cannot grade: {error}", file=sys.stderr)
        return 2
    for result in results:
        print(result.line())
        for finding in result.findings[1:]:
            print(f"{'':24} {finding}")
    print(summary(results))
    if results:
        wall = time.perf_counter() - begin
        print(
            f"{wall:.0f} s in all: {wall / len(results):.1f} s per submission with "
            f"{args.workers} worker{'s' if args.workers > 1 else ''}"
        )
    if args.feedback:
        written = feedback(args.course, args.lab)
        print(f"feedback without hidden tests: {len(written)} files in feedback/")
    return 1 if any(r.status in NEEDS_A_PERSON for r in results) else 0
