"""``nbgrader autograde`` with a cap on the output the grader keeps from each cell.

    python -m convlab.grading.autograde lab1_vgg --student ada --output-mb 8 [nbgrader's options]

(``--output-mb inf`` keeps everything, as nbgrader does.)
:func:`convlab.grading.grade` runs this once per student instead of ``nbgrader autograde``. It is
nbgrader's own command with one preprocessor swapped: cells run in nbgrader's ``Execute``, but
output past the cap is dropped as it arrives, so an endless ``print`` loop cannot grow the
grading process (not the kernel, which has its own limits) to many gigabytes before the cell
times out. nbgrader keeps only the first thousand lines of an output anyway (``LimitOutput``).

Output that is still arriving when a cell has already answered (a flood the grader has not
caught up with) is left behind with a warning instead of failing the whole notebook.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.apps import NbGraderApp
from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute
from traitlets import Bool, Float
from traitlets.config import Config

from convlab.grading.result import PEAK_LINE

__all__ = ["CappedExecute", "main"]

MB = 1e6


def _size(content: dict[str, Any]) -> int:
    """Characters of text and data in an output message."""
    text = content.get("text", "")
    data = content.get("data") or {}
    return len(text) + sum(len(v) if isinstance(v, str) else len(str(v)) for v in data.values())


class CappedExecute(Execute):
    """nbgrader's ``Execute``, keeping at most ``output_mb`` of output per cell."""

    output_mb = Float(8.0, help="output kept per cell, MB of text").tag(config=True)
    raise_on_iopub_timeout = Bool(False).tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: dict[int, int] = {}

    def output(
        self,
        outs: list[NotebookNode],
        msg: dict[str, Any],
        display_id: str | None,
        cell_index: int,
    ) -> NotebookNode | None:
        if msg["msg_type"] in {"stream", "display_data", "execute_result"}:
            kept = self._kept.get(cell_index, 0)
            cap = int(self.output_mb * MB)
            if kept > cap:
                return None
            kept += _size(msg["content"])
            self._kept[cell_index] = kept
            if kept > cap:
                # not a stream: nbgrader's LimitOutput drops streams past its thousandth line
                note = f"[output past {self.output_mb:g} MB was not kept by the grader]"
                outs.append(new_output("display_data", data={"text/plain": note}))
                return None
        return super().output(outs, msg, display_id, cell_index)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``nbgrader autograde`` with :class:`CappedExecute` in place of ``Execute``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    output_mb = 8.0
    if "--output-mb" in argv:
        at = argv.index("--output-mb")
        output_mb = float(argv[at + 1])
        del argv[at : at + 2]
    config = Config()
    if output_mb != float("inf"):  # otherwise nbgrader exactly as it is
        preprocessors = Autograde.class_traits()["autograde_preprocessors"].default()
        config.Autograde.autograde_preprocessors = [
            CappedExecute if p is Execute else p for p in preprocessors
        ]
        config.CappedExecute.output_mb = output_mb
        config.CappedExecute.iopub_timeout = 30  # let a flood drain before giving up on it
    try:
        NbGraderApp.launch_instance(argv=["autograde", *argv], config=config)
    finally:
        print(f"{PEAK_LINE} {peak_mb():.0f} MB", file=sys.stderr, flush=True)


def peak_mb() -> float:
    """Peak resident memory of this process since it started, MB.

    Linux's ``VmHWM`` starts afresh with the program; ``ru_maxrss`` does not (it keeps the peak
    of the process that forked it, which in a test runner holding PyTorch is gigabytes).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, KiB here


if __name__ == "__main__":
    main()
