"""The full-mode checkpoints the tests grade: each lab's solution run as a student runs it.

    python tools/fullmode_checkpoints.py                  # every lab (hours on a 2-core CPU)
    python tools/fullmode_checkpoints.py lab1_vgg lab3_batchnorm

For each lab, the solution notebook ``solutions/<lab>/<lab>.ipynb`` is executed top to bottom in
full mode (real Fashion-MNIST, seed 0, as a student on Colab would, here on the CPU with one
thread) in a scratch folder, and the checkpoint it writes is kept as
``tests/fullmode/<lab>.pt`` in fit's format without the optimizer's state (what grading reads:
the epoch count, the weights, the history). Beside it goes ``<lab>_100steps.pt``: the
solution's network at seed 0 trained for only a hundred steps, saved with the lab's epoch count
and an empty history, as a student who stopped early and edited the file would hand it in.
``tests/fullmode/checkpoints.json`` records, per lab, the accuracy of both on the test split, the
seed-0 fingerprint of the reference run they match, the seconds and the machine.

They live under tests/ (never in solutions/<lab>/, which nbgrader copies over every submission,
nor in the convlab package that students install); ``tools/publish.py`` refuses any ``.pt``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import nbformat
import torch

from convlab import labs
from convlab.recipes import machine
from convlab.train import evaluate

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "tests" / "fullmode"
RECORD = FOLDER / "checkpoints.json"
PARTIAL_STEPS = 100
KEPT = ("format", "epoch", "config", "model", "history")  # what grading reads


def full_mode_environment(threads: int) -> dict[str, str]:
    """This process's environment in full mode: no quick mode, no grading, ``threads`` threads."""
    env = dict(os.environ)
    for name in (labs.QUICK_ENV, "NBGRADER_EXECUTION"):
        env.pop(name, None)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_solution(lab: str, work: Path, threads: int) -> Path:
    """Execute the solution notebook in ``work`` in full mode; the checkpoint it wrote."""
    from ipc_kernel import execute  # beside this script

    notebook = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    previous = dict(os.environ)
    os.environ.clear()
    os.environ.update(full_mode_environment(threads))
    try:
        execute(notebook, work, timeout=7200, save_as=f"{lab}.ipynb")
    finally:
        os.environ.clear()
        os.environ.update(previous)
    path = work / f"{lab}.pt"
    if not path.exists():
        sys.exit(f"running the solution of {lab} wrote no {path.name}")
    nbformat.write(notebook, work / f"{lab}.executed.ipynb")
    return path


def solution_network(lab: str) -> tuple[torch.nn.Module, Any]:
    """The untrained network of the solution notebook in this process's mode, and its lab.

    The notebook's own cells build it: every code cell before the training cell except the test
    cells and the install cell, then the training cell up to ``lab.train``. In full mode at seed
    0 this is the network a student's run starts from.
    """
    notebook = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    with warnings.catch_warnings():  # start() silences warnings for the notebook's sake
        for index, cell in enumerate(notebook.cells):
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or meta.get("grade") or "%pip" in cell.source:
                continue
            source = cell.source
            training = "history = lab.train(" in source
            if training:
                source = source.split("history = lab.train(")[0]
            exec(compile(source, f"<{lab} cell {index}>", "exec"), namespace)
            if training:
                return namespace["model"], namespace["lab"]
    raise ValueError(f"{lab}'s solution has no cell with history = lab.train(...)")


def checkpoint_accuracy(lab: str, weights: dict[str, torch.Tensor]) -> float:
    """Test accuracy, by :func:`convlab.train.evaluate`, of the solution's network with ``weights``."""
    model, session = solution_network(lab)
    model.load_state_dict(weights)
    return evaluate(model, session.data(), device="cpu")


def partial_weights(lab: str, steps: int) -> dict[str, torch.Tensor]:
    """The solution's network at seed 0 after ``steps`` steps of the lab's optimizer at its peak
    learning rate, on the lab's first batches."""
    model, session = solution_network(lab)
    settings = session.settings
    if settings.adamw:
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9)
    model.train()
    loader = session.data().train
    loader.set_epoch(0)
    batches = iter(loader)
    for _ in range(steps):
        x, y = next(batches)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.state_dict()


def make(lab: str, threads: int) -> dict[str, Any]:
    labs.thresholds(lab, quick=False)  # the notebook's accuracy cell needs them: fail early
    FOLDER.mkdir(parents=True, exist_ok=True)
    model, data, _ = labs.reference_start(lab, quick=False, seed=0)
    mark = labs.fingerprint(labs.recipe(lab, quick=False), model, data)
    with tempfile.TemporaryDirectory(prefix=f"fullmode-{lab}-") as scratch:
        begin = time.perf_counter()
        written = run_solution(lab, Path(scratch), threads)
        seconds = time.perf_counter() - begin
        state = torch.load(written, weights_only=True)
    kept = {key: state[key] for key in KEPT}
    torch.save(kept, FOLDER / f"{lab}.pt")
    previous = dict(os.environ)
    os.environ.clear()
    os.environ.update(full_mode_environment(threads))
    try:
        partial = dict(kept, model=partial_weights(lab, PARTIAL_STEPS), history=[])
        accuracy = checkpoint_accuracy(lab, kept["model"])
        partial_accuracy = checkpoint_accuracy(lab, partial["model"])
    finally:
        os.environ.clear()
        os.environ.update(previous)
    torch.save(partial, FOLDER / f"{lab}_100steps.pt")
    return {
        "accuracy": round(accuracy, 4),
        "history_accuracy": round(kept["history"][-1]["test_accuracy"], 4),
        "partial_accuracy": round(partial_accuracy, 4),
        "partial_steps": PARTIAL_STEPS,
        "epochs": int(kept["epoch"]),
        "reference_fingerprint": mark,
        "notebook_seconds": round(seconds, 1),
        "threads": threads,
        **machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", default=sorted(labs.LABS), help="default: every lab")
    parser.add_argument("--threads", type=int, default=1, help="threads of each notebook's kernel")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for lab in args.labs:
        entry = make(lab, args.threads)
        table = json.loads(RECORD.read_text()) if RECORD.exists() else {}
        table[lab] = entry
        RECORD.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        print(f"{lab}: {entry['accuracy']:.2%} (100 steps: {entry['partial_accuracy']:.2%}), "
              f"notebook {entry['notebook_seconds']:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
