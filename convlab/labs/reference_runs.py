"""The accuracy thresholds of the labs, read from their recorded reference runs.

:func:`~convlab.labs.record.record_reference` trains each lab's reference network at every seed
of :data:`REFERENCE_SEEDS` and writes the runs to ``convlab/recorded/labs.json``; this module
reads them back. Full credit starts :data:`THRESHOLD_MARGIN` below the lowest seed's accuracy,
nothing at chance level, linear in between.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from convlab.labs.settings import lab_settings

__all__ = [
    "RECORD_PATH",
    "REFERENCE_SEEDS",
    "THRESHOLD_MARGIN",
    "mode_name",
    "record_path",
    "recorded",
    "thresholds",
]

# Full credit starts this far below the lowest accuracy of the recorded reference runs: the same
# code trained with another thread count or library version lands a few tenths of a percentage
# point away (lab 2's seed 0: 98.06% with one thread, 98.33% with two).
THRESHOLD_MARGIN = 0.01
# Every lab's reference network is trained once per seed; the thresholds need all of them.
REFERENCE_SEEDS = (0, 1, 2)
# The record every reader and writer uses; ``None``: the one shipped with convlab. Set it to
# another file to record or read elsewhere (the tests do).
RECORD_PATH: Path | None = None


def record_path() -> Path:
    """The record in use: :data:`RECORD_PATH`, else ``convlab/recorded/labs.json``."""
    if RECORD_PATH is not None:
        return Path(RECORD_PATH)
    return Path(str(resources.files("convlab").joinpath("recorded", "labs.json")))


def mode_name(quick: bool) -> str:
    """The record's key of a mode: ``"quick"`` or ``"full"``."""
    return "quick" if quick else "full"


def recorded(lab: str, quick: bool) -> dict[str, Any] | None:
    """The recorded reference runs of a lab in one mode, or None when it was never measured."""
    lab_settings(lab)
    path = record_path()
    table = json.loads(path.read_text()) if path.exists() else {}
    return table.get(lab, {}).get(mode_name(quick))


def thresholds(lab: str, quick: bool) -> tuple[float, float]:
    """``(low, high)`` accuracy thresholds of a lab, from its recorded reference runs.

    ``low`` is chance level, ``high`` one percentage point (:data:`THRESHOLD_MARGIN`) below the
    lowest test accuracy the reference reached over the seeds of :data:`REFERENCE_SEEDS`.

    Raises:
        LookupError: the mode was never recorded, or not for every seed (run or finish
            :func:`record_reference`).
    """
    entry = recorded(lab, quick)
    command = f"python -m convlab.labs reference {lab}{' --quick' if quick else ''}"
    if entry is None:
        raise LookupError(
            f"{lab} has no recorded {mode_name(quick)} reference run, so its accuracy cannot be "
            f"graded yet: run {command}"
        )
    seeds = sorted(run["seed"] for run in entry["runs"])
    if seeds != sorted(REFERENCE_SEEDS):
        raise LookupError(
            f"{lab}'s {mode_name(quick)} reference runs cover seeds {seeds}, not all of "
            f"{list(REFERENCE_SEEDS)}, so its accuracy cannot be graded yet: {command} records "
            "the missing ones"
        )
    low, high = float(entry["low"]), float(entry["high"])
    return low, max(low + THRESHOLD_MARGIN, high - THRESHOLD_MARGIN)
