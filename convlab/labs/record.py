"""Recording a lab's reference runs: ``python -m convlab.labs reference <lab>``.

Each seed of :data:`~convlab.labs.reference_runs.REFERENCE_SEEDS` trains the lab's reference network
with the lab's settings, varying the initial weights and the batch order, and is appended to the
record as soon as it ends, with its accuracy, seconds, load average and machine. A seed recorded
with the same :func:`fingerprint` is skipped, so a stopped recording loses one seed at most.
Thresholds depend on the recipe, not the device, so both modes are recorded on a CPU, in float32.

    python -m convlab.labs reference lab1_vgg --quick   # the quick mode, on the offline digits
    python -m convlab.labs reference lab1_vgg           # the full mode, on Fashion-MNIST
    python -m convlab.labs time lab1_vgg                # time a full-mode epoch (idle machine)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convlab.data import ImageData
from convlab.device import default_device
from convlab.labs.reference_runs import REFERENCE_SEEDS, mode_name, record_path
from convlab.labs.session import Lab
from convlab.labs.settings import DATA_ENV, LABS, lab_settings
from convlab.recipes import machine
from convlab.train import fit

__all__ = ["fingerprint", "main", "recipe", "record_reference", "reference_start", "time_full_mode"]


def recipe(lab: str, quick: bool) -> dict[str, Any]:
    """What a lab's training run in one mode depends on, besides the seed."""
    settings = lab_settings(lab)
    if quick:
        return {
            "data": "digits",
            "size": settings.quick_size,
            "epochs": settings.quick_epochs,
            "lr": settings.quick_lr,
            "batch_size": settings.quick_batch_size,
            "optimizer": "AdamW" if settings.adamw else "SGD",
        }
    return {
        "data": settings.data,
        "size": settings.resize,
        "epochs": settings.epochs,
        "lr": settings.lr,
        "batch_size": settings.batch_size,
        "optimizer": "AdamW" if settings.adamw else "SGD",
    }


def fingerprint(settings: dict[str, Any], model: nn.Module, data: ImageData) -> str:
    """A hash of what one reference run starts from: the recipe's ``settings``, the initial
    weights and the first batch's sample indices. Runs with one fingerprint train the same way."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    first = data.train.indices(0)[: data.train.local_batch_size]
    digest.update(first.cpu().numpy().astype("<i8").tobytes())
    return digest.hexdigest()[:16]


def reference_start(lab: str, quick: bool, seed: int) -> tuple[nn.Module, ImageData, Lab]:
    """A lab's reference network and data as :func:`record_reference` starts a seed's run.

    The global generator is seeded with ``seed`` before the data and the network are made, as
    the notebook's training cell does (``torch.manual_seed(0)``, ``lab.data()``, the network);
    the data's batch order and augmentation follow the same seed.
    """
    settings = lab_settings(lab)
    session = Lab(
        lab, quick, default_device(), Path(os.devnull), os.environ.get(DATA_ENV, "data"), seed=seed
    )
    torch.manual_seed(seed)
    data = session.data()
    model = settings.reference(data.num_classes, data.in_channels)
    return model, data, session


def _load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not every system reports it
        return []


def _update_record(
    file: Path, lab: str, quick: bool, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Apply ``change`` to a lab's entry under a file lock (labs recorded at once keep theirs)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = json.loads(file.read_text()) if file.exists() else {}
        entry = table.setdefault(lab, {}).setdefault(mode_name(quick), {})
        entry.setdefault("runs", [])
        change(entry)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        tmp.replace(file)  # a run stopped mid-write never leaves half a file
    return entry


def record_reference(
    lab: str,
    *,
    quick: bool = True,
    seeds: Sequence[int] = REFERENCE_SEEDS,
    path: str | os.PathLike[str] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a lab's reference network at several seeds and record each run as it finishes.

    Each seed varies the network's initialization and the data's batch order and augmentation.
    A finished seed is written at once, with its fingerprint (:func:`fingerprint`); a seed
    already recorded with the same fingerprint is skipped, so a stopped recording loses at most
    the seed it was training, and a changed recipe records afresh.

    Args:
        lab: the assignment's name.
        quick: record quick mode (else full mode, which needs Fashion-MNIST).
        seeds: one run each.
        path: the JSON file (default: ``convlab/recorded/labs.json``).
        checkpoint_dir: where the first seed's checkpoint is kept (``<dir>/<lab>.pt``; never
            ``solutions/<lab>/``, which nbgrader copies over every submission); default none.
        log: called with a line per seed (trained or skipped).

    Returns:
        The stored entry: ``runs`` (seed, accuracy, seconds, fingerprint, load average, threads,
        machine, versions, date each), the mode's ``recipe``, ``low`` and ``high``.
    """
    settings = lab_settings(lab)
    recipe_now = recipe(lab, quick)
    file = Path(path) if path else record_path()
    say = log or (lambda line: None)
    entry: dict[str, Any] = {}
    for i, seed in enumerate(seeds):
        model, data, session = reference_start(lab, quick, seed)
        mark = fingerprint(recipe_now, model, data)
        table = json.loads(file.read_text()) if file.exists() else {}
        done = table.get(lab, {}).get(mode_name(quick), {}).get("runs", [])
        if any(run["seed"] == seed and run["fingerprint"] == mark for run in done):
            say(f"{lab} {mode_name(quick)} seed {seed}: recorded already ({mark})")
            continue
        keep = checkpoint_dir is not None and i == 0
        ckpt = Path(checkpoint_dir, f"{lab}.pt") if keep else None
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            for stale in (ckpt, ckpt.with_name(ckpt.name + ".prev")):
                stale.unlink(missing_ok=True)  # a fresh run, never one resumed from before
        load = _load_average()
        begin = time.perf_counter()
        history = fit(
            model,
            data,
            session.epochs,
            lr=session.lr,
            optimizer=torch.optim.AdamW if settings.adamw else None,
            checkpoint=ckpt,
            progress=False,
            plot=False,
        )
        run = {
            "seed": seed,
            "accuracy": round(history[-1]["test_accuracy"], 4),
            "seconds": round(time.perf_counter() - begin, 1),
            "fingerprint": mark,
            "load": {"before": load, "after": _load_average()},
            "threads": torch.get_num_threads(),
            **machine(),
        }
        say(
            f"{lab} {mode_name(quick)} seed {seed}: {run['accuracy']:.2%} in {run['seconds']:.0f} s"
        )

        def add(
            entry: dict[str, Any], run: dict[str, Any] = run, classes: int = data.num_classes
        ) -> None:
            if entry.get("recipe") != recipe_now:  # another recipe's runs say nothing of this one
                entry["runs"] = []
            runs = [r for r in entry["runs"] if r["seed"] != run["seed"]] + [run]
            entry["runs"] = sorted(runs, key=lambda r: r["seed"])
            entry["recipe"] = recipe_now
            entry["low"] = round(1 / classes, 4)
            entry["high"] = min(r["accuracy"] for r in entry["runs"])

        entry = _update_record(file, lab, quick, add)
    if not entry:
        entry = (json.loads(file.read_text()) if file.exists() else {})[lab][mode_name(quick)]
    return entry


def time_full_mode(lab: str, *, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Time one full-mode epoch of a lab's reference here and record the whole run's estimate.

    Students on a CPU are told this estimate by :func:`start`. Run it on an idle machine: the
    load average before and after is stored beside the figure.

    Returns:
        The stored ``timing``: ``epoch_seconds``, ``minutes`` (for all the lab's epochs),
        ``threads``, ``load``, machine, versions and date.
    """
    model, data, session = reference_start(lab, quick=False, seed=0)
    load = _load_average()
    history = fit(
        model,
        data,
        1,
        lr=session.lr,
        optimizer=torch.optim.AdamW if session.settings.adamw else None,
        progress=False,
        plot=False,
    )
    seconds = history[-1]["seconds"]
    timing = {
        "epoch_seconds": round(seconds, 1),
        "minutes": round(seconds * session.epochs / 60, 1),
        "threads": torch.get_num_threads(),
        "load": {"before": load, "after": _load_average()},
        **machine(),
    }

    def add(entry: dict[str, Any]) -> None:
        entry["timing"] = timing

    _update_record(Path(path) if path else record_path(), lab, False, add)
    return timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record a lab's reference runs and thresholds.")
    commands = parser.add_subparsers(dest="command", required=True)
    ref = commands.add_parser("reference", help="train the reference at each seed, record")
    ref.add_argument("lab", choices=sorted(LABS))
    ref.add_argument("--quick", action="store_true", help="the CPU run on the offline digits")
    ref.add_argument("--checkpoints", default="checkpoints", help="folder of <lab>/<lab>.pt")
    ref.add_argument(
        "--seeds", type=int, nargs="+", default=list(REFERENCE_SEEDS), help="seeds to run"
    )
    timer = commands.add_parser("time", help="time one full-mode epoch (on an idle machine)")
    timer.add_argument("lab", choices=sorted(LABS))
    args = parser.parse_args(argv)
    if args.command == "time":
        timing = time_full_mode(args.lab)
        print(f"{args.lab}: {timing['epoch_seconds']} s an epoch, about {timing['minutes']} min")
        return 0
    entry = record_reference(
        args.lab,
        quick=args.quick,
        seeds=args.seeds,
        checkpoint_dir=Path(args.checkpoints, args.lab),
        log=print,
    )
    print(json.dumps({k: entry.get(k) for k in ("low", "high")}))
    return 0
