"""The limits of one grading run (:class:`Settings`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GIB", "Settings", "cores", "tools_first_on_path"]

GIB = 2**30


def cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def tools_first_on_path(
    env: Mapping[str, str] | None = None, python: str | os.PathLike[str] = sys.executable
) -> dict[str, str]:
    """A copy of ``env`` (default: this process's) with ``python``'s folder first on ``PATH``.

    nbgrader runs ``alembic``, and the grader ``jupyter``, by name: the ones of the environment
    that grades must be found first, whatever the shell's ``PATH`` says.
    """
    copy = dict(os.environ if env is None else env)
    copy["PATH"] = os.pathsep.join([str(Path(python).parent), copy.get("PATH", "")])
    return copy


@dataclass(frozen=True)
class Settings:
    """Limits of one grading run.

    Attributes:
        cell_timeout: seconds a cell may run before nbgrader interrupts it.
        notebook_timeout: seconds a whole notebook may take, wall-clock time from the start of
            its nbgrader run: past it, nbgrader and the kernel are killed. Sleeping counts as
            much as computing, and threads do not make the time run out sooner.
        memory_gb: address-space limit of the kernel, GiB (``import torch`` alone maps about
            3.3 GB, so keep it well above that).
        max_checkpoint_mb: largest checkpoint accepted, MB.
        max_file_mb: largest file the kernel may write, MB.
        max_output_mb: output the grader keeps from one cell, MB of text (the rest is dropped
            as it arrives, so a printing loop cannot fill the grading machine's memory).
        user: run the kernel as this (unprivileged) user; None keeps the grader's user.
        threads: CPU threads of each kernel (OpenMP, MKL); None shares the machine's cores
            among the workers. Kernels that each take every core slow each other down many
            times over; an ``OMP_NUM_THREADS`` set for the grader wins over both.
        protections: the protections switched on (all by default; tests switch one off to show
            the attack it stops): ``stage`` (grade a copy of the notebook and checkpoint only),
            ``limits`` (the kernel's resource limits, the output cap), ``scan`` (the tamper
            scan), ``checkpoint`` (checkpoints load as plain weights, under the size cap) and
            ``network``: each kernel runs in a network namespace of its own, with no network
            at all, not even the grading machine's loopback address, so a hand-in cannot send
            the hidden tests out while they run (it talks to nbgrader over unix sockets).
            Making the namespace takes root (with the capability CAP_SYS_ADMIN, which
            containers may withhold). Where it cannot be made, grading goes on without it and
            says so in one line at the start; ``--allow-network`` switches it off anywhere,
            which the grader also says in one line.
    """

    cell_timeout: int = 300
    notebook_timeout: int = 1200
    memory_gb: float = 8.0
    max_checkpoint_mb: float = 200.0
    max_file_mb: float = 512.0
    max_output_mb: float = 8.0
    user: str | None = None
    threads: int | None = None
    protections: frozenset[str] = frozenset({"stage", "limits", "scan", "checkpoint", "network"})

    @property
    def cpu_backstop(self) -> int:
        """The kernel's CPU-seconds limit: a backstop for a kernel that escaped the wall-clock
        limit, never reached before it (a process spends at most cores x wall-clock seconds)."""
        return self.notebook_timeout * (cores() + 1)
