"""What a lab notebook calls: :func:`start`, then the :class:`Lab` it returns.

Every lab of the course opens with ``lab = start("lab1_vgg")``. The lab then gives the student its
data (:meth:`Lab.data`), trains their network with convlab's :func:`~convlab.train.fit` and a
checkpoint named after the lab (:meth:`Lab.train`), turns the accuracy of the trained network
on the held-out test split into points (:meth:`Lab.accuracy_points`), and packs the notebook
with its checkpoint for handing in (:meth:`Lab.hand_in`).

Two modes, chosen by the environment so that the notebook's code is the same in both:

* quick (``CONVLAB_QUICK=1``: CI, and students on a CPU): scikit-learn's offline digits, small
  images, a few epochs; seconds to a minute on two CPU cores.
* full (the default, on a Colab GPU): Fashion-MNIST from ``convlab.data``, read from (or
  downloaded to) the folder ``CONVLAB_DATA`` (default ``data``), or the system's copy.

While nbgrader runs a notebook (``NBGRADER_EXECUTION`` set), nothing trains: :func:`start` (and
importing :mod:`convlab.labs`) switches :func:`~convlab.train.fit` to loading the checkpoint the
student handed in (:func:`~convlab.train.only_load_checkpoints`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import convlab
from convlab import data as datasets
from convlab import train
from convlab.data import ImageData
from convlab.device import default_device, keep_cuda_calls_on_cpu
from convlab.labs.handin import hand_in
from convlab.labs.reference_runs import recorded, thresholds
from convlab.labs.settings import DATA_ENV, QUICK_ENV, LabSettings, lab_settings
from convlab.train import evaluate, fit

__all__ = ["GRADED_REASON", "Lab", "cpu_advice", "graded", "quick_mode", "start"]

GRADED_REASON = "this notebook is being graded"


def graded() -> bool:
    """True while nbgrader validates or grades the notebook (``NBGRADER_EXECUTION`` is set)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def quick_mode() -> bool:
    """True when ``CONVLAB_QUICK`` is set to something other than ``""``, ``0`` or ``false``."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


@dataclass
class Lab:
    """One lab's session: its mode, device, data and checkpoint.

    Attributes:
        name: the assignment's name.
        quick: quick mode (offline digits) rather than full mode.
        device: where training runs.
        checkpoint: the checkpoint file, ``<name>.pt`` next to the notebook (hand it in).
        root: the full mode's data folder.
        seed: seed of the data's batch order and augmentation.
    """

    name: str
    quick: bool
    device: torch.device
    checkpoint: Path
    root: str = "data"
    seed: int = 0
    _data: ImageData | None = field(default=None, repr=False)

    @property
    def settings(self) -> LabSettings:
        """The lab's training settings."""
        return lab_settings(self.name)

    @property
    def epochs(self) -> int:
        """Epochs of this mode's training run."""
        return self.settings.quick_epochs if self.quick else self.settings.epochs

    @property
    def lr(self) -> float:
        """Peak learning rate of this mode's training run."""
        return self.settings.quick_lr if self.quick else self.settings.lr

    def data(self) -> ImageData:
        """The lab's data set (built once): the digits in quick mode, else the full data set."""
        if self._data is None:
            s = self.settings
            if self.quick:
                self._data = datasets.digits(
                    size=s.quick_size,
                    batch_size=s.quick_batch_size,
                    device=self.device,
                    seed=self.seed,
                )
            else:
                factory = getattr(datasets, s.data)
                self._data = factory(
                    self.root,
                    batch_size=s.batch_size,
                    resize=s.resize,
                    device=self.device,
                    seed=self.seed,
                )
        return self._data

    def train(
        self, model: nn.Module, epochs: int | None = None, lr: float | None = None, **kwargs: Any
    ) -> list[dict[str, float]]:
        """Train ``model`` with :func:`~convlab.train.fit`, saving to :attr:`checkpoint`.

        Running the cell again resumes from the checkpoint. Under nbgrader, nothing is trained:
        the handed-in checkpoint is loaded (see :func:`start`).

        Args:
            model: the network, with ``data().num_classes`` outputs.
            epochs: passes over the training set (default: the lab's, for this mode).
            lr: peak learning rate (default: the lab's, for this mode).
            **kwargs: passed to :func:`~convlab.train.fit`.

        Returns:
            The training history, one dict per epoch.
        """
        if graded():  # also where the variable was set after start()
            train.only_load_checkpoints(True, GRADED_REASON)
        epochs = self.epochs if epochs is None else epochs
        lr = self.lr if lr is None else lr
        kwargs.setdefault("device", self.device)
        if self.settings.adamw:
            kwargs.setdefault("optimizer", torch.optim.AdamW)
        return fit(model, self.data(), epochs, lr=lr, checkpoint=self.checkpoint, **kwargs)

    def accuracy(self, model: nn.Module, images: int | None = None) -> float:
        """Accuracy of ``model`` on the held-out test split, in [0, 1].

        Args:
            model: the network.
            images: evaluate on the first this many test images only (a fixed subset, for
                experiments that evaluate many times); ``None``: the whole split.
        """
        test = self.data().test
        return evaluate(model, test if images is None else test.head(images), device=self.device)

    def thresholds(self) -> tuple[float, float]:
        """``(low, high)`` recorded for this lab and mode (see :func:`thresholds`)."""
        return thresholds(self.name, self.quick)

    def accuracy_points(self, model: nn.Module, points: float, low: float, high: float) -> float:
        """Points for the accuracy of ``model`` on the held-out test split.

        Nothing at or below ``low``, all ``points`` at or above ``high``, linear in between.

        Args:
            model: the trained network.
            points: the most points the accuracy earns.
            low: accuracy that earns nothing, in [0, 1].
            high: accuracy that earns everything, in (low, 1].

        Returns:
            The points earned, rounded to 0.01.
        """
        if not 0 <= low < high <= 1:
            raise ValueError(f"thresholds must satisfy 0 <= low < high <= 1, got {low}, {high}")
        acc = self.accuracy(model)
        share = min(1.0, max(0.0, (acc - low) / (high - low)))
        earned = round(points * share, 2)
        print(
            f"test accuracy {acc:.2%} (nothing at {low:.2%}, everything from {high:.2%}): "
            f"{earned:g} of {points:g} points"
        )
        return earned

    def hand_in(
        self, model: nn.Module, notebook: str | os.PathLike[str] | None = None
    ) -> Path | None:
        """Check the checkpoint and pack it with this notebook into ``<lab>.zip`` to hand in.

        Reads :attr:`checkpoint` as the grader will (weights only), checks that it holds the
        whole run and fits ``model``, prints the test accuracy the grader will measure, and
        writes the archive (on Colab: offers it as a download). Nothing happens while the
        notebook is graded. See :func:`convlab.labs.handin.hand_in`.

        Args:
            model: the trained network.
            notebook: the notebook's path, where it cannot be found by itself.

        Returns:
            The archive's path; None while graded.
        """
        if graded():
            print("Handing in is skipped while this notebook is graded.")
            return None
        return hand_in(self, model, notebook)


def cpu_advice(lab: str) -> str:
    """What a student about to train a lab's full mode on a CPU should know, in a few lines."""
    entry = recorded(lab, quick=False) or {}
    timing = entry.get("timing")
    if timing:
        took = (
            f"On a CPU this lab's training takes a while: about {timing['minutes']:g} minutes on "
            f"a {timing['machine']['cores']}-core {timing['machine']['cpu']} "
            f"({timing['threads']} threads, measured {timing['date']})."
        )
    else:
        took = "On a CPU this lab's training takes a while (tens of minutes)."
    return (
        f"{took}\nOn Colab, choose Runtime > Change runtime type, pick a GPU and run the "
        "notebook again from the top: the lab is written for a GPU. (CONVLAB_QUICK=1 set before "
        "start() trains on small digits in seconds, to try things out; the checkpoint you hand "
        "in must come from this full mode.)"
    )


def start(lab: str) -> Lab:
    """Begin a lab: report versions and device, silence Python warnings, return the :class:`Lab`.

    Args:
        lab: the assignment's name, for example ``"lab1_vgg"``.

    Returns:
        The lab, in quick mode when ``CONVLAB_QUICK=1``.
    """
    settings = lab_settings(lab)
    warnings.filterwarnings("ignore")  # PyTorch's notices on stderr would cost points when graded
    device = default_device()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    quick = quick_mode()
    mode = (
        f"quick mode (offline digits, {settings.quick_size} px)"
        if quick
        else f"full mode ({settings.data})"
    )
    if graded():
        train.only_load_checkpoints(True, GRADED_REASON)  # lab.train or a direct fit: no training
        if device.type != "cuda":
            keep_cuda_calls_on_cpu()
    print(f"convlab {convlab.__version__}, torch {torch.__version__}, device: {where}")
    print(f"{lab}: {mode}")
    if not quick and device.type == "cpu" and not graded():
        print(cpu_advice(lab))
    return Lab(
        name=lab,
        quick=quick,
        device=device,
        checkpoint=Path(f"{lab}.pt"),
        root=os.environ.get(DATA_ENV, "data"),
    )
