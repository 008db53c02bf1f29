"""Handing a lab in: one archive holding the notebook and its checkpoint, checked first.

:meth:`convlab.labs.Lab.hand_in` calls :func:`hand_in` at the end of every lab. It reads the
checkpoint as the grader will (weights only), makes sure it holds the whole run and fits the
network in memory, evaluates it once so that the student sees the accuracy the grader will
measure, and writes ``<lab>.zip`` with ``<lab>.ipynb`` and ``<lab>.pt`` inside. On Colab, where
the notebook is not a file on the runtime's disk, the notebook comes from Colab's front end and
the archive is offered as a download.

A learning-management system renames what it receives (Canvas: ``<student>_<ids>_lab1_vgg.zip``);
the course's ``nbgrader zip_collect`` set-up reads the student from that name, and the two files
from inside the archive.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import zipfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from convlab.train import CheckpointError, load_checkpoint

if TYPE_CHECKING:
    from convlab.labs.session import Lab

__all__ = ["HandInError", "hand_in"]

# Seconds Colab's front end gets to send the notebook.
COLAB_TIMEOUT_S = 60


class HandInError(RuntimeError):
    """Something the hand-in needs is missing or wrong; the message says what to do."""


def _two_files(lab: Lab) -> str:
    return (
        f"hand in two files instead: this notebook (File > Download > Download .ipynb, saved "
        f"as {lab.name}.ipynb) and {lab.checkpoint.name} (on Colab: the Files pane, "
        "right-click > Download)"
    )


def _colab_notebook() -> dict[str, Any] | None:
    """The running notebook, asked of Colab's front end; None where that does not answer."""
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import _message  # only on Colab

        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=COLAB_TIMEOUT_S)
    except Exception:  # the front end's protocol is Colab's own: any failure means "not here"
        return None
    notebook = reply.get("ipynb") if isinstance(reply, dict) else None
    return notebook if isinstance(notebook, dict) and "cells" in notebook else None


def _notebook_file(lab: Lab) -> Path | None:
    """The notebook's file on disk, where a front end says which it is, else ``<lab>.ipynb``."""
    candidates = [os.environ.get("JPY_SESSION_NAME", "")]  # set by Jupyter Server 2 and later
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            candidates.append(str(shell.user_ns.get("__vsc_ipynb_file__", "")))  # VS Code
    except ImportError:
        pass
    candidates.append(f"{lab.name}.ipynb")
    for candidate in candidates:
        path = Path(candidate)
        if candidate.endswith(".ipynb") and path.is_file():
            return path
    return None


def _notebook_json(lab: Lab, notebook: str | os.PathLike[str] | None) -> bytes:
    """The notebook to hand in, as bytes of its JSON; says where it came from."""
    if notebook is None:
        from_colab = _colab_notebook()
        if from_colab is not None:
            print("The notebook: as it is now in Colab.")
            return json.dumps(from_colab, indent=1, ensure_ascii=False).encode()
        if "google.colab" in sys.modules:
            raise HandInError(f"Colab did not send this notebook; {_two_files(lab)}.")
        path = _notebook_file(lab)
        if path is None:
            raise HandInError(
                f"Cannot find this notebook's file ({lab.name}.ipynb in {Path.cwd()}): call "
                f"lab.hand_in(model, notebook='path/to/{lab.name}.ipynb'), or {_two_files(lab)}."
            )
    else:
        path = Path(notebook)
        if not path.is_file():
            raise HandInError(f"No notebook at {path}: give the path of {lab.name}.ipynb.")
    raw = path.read_bytes()
    try:
        if "cells" not in json.loads(raw):
            raise ValueError("no cells")
    except ValueError as error:
        raise HandInError(f"{path} is not a notebook ({error}).") from None
    saved = datetime.fromtimestamp(path.stat().st_mtime)
    print(
        f"The notebook: {path}, as last saved ({saved:%H:%M:%S}). Save it first (Ctrl+S) if "
        "you changed it since, then run this cell again."
    )
    return raw


def _checkpoint_bytes(lab: Lab, model: nn.Module) -> tuple[bytes, dict[str, Any]]:
    """The checkpoint to hand in, read as the grader reads it, with its contents."""
    path = lab.checkpoint
    trained = copy.deepcopy(model)
    try:
        state = load_checkpoint(path, trained)  # read once, weights only, into a copy
    except CheckpointError as error:
        if not path.exists() and not path.with_name(path.name + ".prev").exists():
            raise HandInError(
                f"No {path.name} next to the notebook: run the training cell (lab.train) first; "
                "it writes the checkpoint you hand in."
            ) from None
        raise HandInError(str(error)) from None
    if int(state["epoch"]) < lab.epochs:
        raise HandInError(
            f"{path.name} holds {state['epoch']} of {lab.epochs} epochs: run the training cell "
            "again (it resumes) and hand in when it has finished."
        )
    # the file the grader will read: the newest readable one (a damaged newest falls back)
    for candidate in (path, path.with_name(path.name + ".prev")):
        try:
            if int(torch.load(candidate, map_location="cpu", weights_only=True)["epoch"]) == int(
                state["epoch"]
            ):
                return candidate.read_bytes(), {"state": state, "model": trained}
        except Exception:
            continue
    raise HandInError(f"{path.name} could not be read back; run the training cell again.")


def hand_in(lab: Lab, model: nn.Module, notebook: str | os.PathLike[str] | None = None) -> Path:
    """Check the lab's checkpoint and pack it with the notebook into ``<lab>.zip``.

    Args:
        lab: the lab session.
        model: the trained network (its architecture must be the checkpoint's).
        notebook: the notebook's path, where it cannot be found (Colab and Jupyter find it).

    Returns:
        The archive's path, next to the notebook's working folder.

    Raises:
        HandInError: no checkpoint, an unfinished one, one of another network, or no notebook;
            the message says what to do.
    """
    checkpoint, loaded = _checkpoint_bytes(lab, model)
    accuracy = lab.accuracy(loaded["model"])
    print(
        f"{lab.checkpoint.name}: {loaded['state']['epoch']} of {lab.epochs} epochs, test "
        f"accuracy {accuracy:.2%}, as grading will measure it"
    )
    try:
        low, high = lab.thresholds()
        print(f"  (no points at {low:.2%}, all points from {high:.2%})")
    except Exception:  # thresholds not recorded for this mode: nothing more to say
        pass
    if lab.quick:
        print(
            "  note: this is quick mode (CONVLAB_QUICK); the course grades the full mode's run "
            "unless your instructor says otherwise"
        )
    notebook_json = _notebook_json(lab, notebook)
    archive = Path(f"{lab.name}.zip")
    partial = archive.with_name(f".{archive.name}.tmp")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as packed:
        packed.writestr(f"{lab.name}.ipynb", notebook_json)
        packed.writestr(lab.checkpoint.name, checkpoint)
    os.replace(partial, archive)
    print(f"Hand in {archive.resolve()}: it holds {lab.name}.ipynb and {lab.checkpoint.name}.")
    if "google.colab" in sys.modules:
        try:
            from google.colab import files  # only on Colab

            files.download(str(archive))
        except Exception as error:  # the download prompt is Colab's; the file is there anyway
            print(
                f"Colab did not start the download ({error}): download {archive.name} from the "
                "Files pane (right-click > Download)."
            )
    return archive
