"""What a lab notebook calls: :func:`start`, then the :class:`Lab` it returns.

Every lab of the course opens with ``lab = start("lab1_vgg")``. The lab then gives the student its
data (:meth:`Lab.data`), trains their network with convlab's :func:`~convlab.train.fit` and a
checkpoint named after the lab (:meth:`Lab.train`), and turns the accuracy of the trained network
on the held-out test split into points (:meth:`Lab.accuracy_points`).

Two modes, chosen by the environment so that the notebook's code is the same in both:

* quick (``CONVLAB_QUICK=1``: CI, and students on a CPU): scikit-learn's offline digits, small
  images, a few epochs; seconds to a minute on two CPU cores.
* full (the default, on a Colab GPU): Fashion-MNIST from ``convlab.data``, read from (or
  downloaded to) the folder ``CONVLAB_DATA`` (default ``data``); the instructor puts the official
  test split there once for grading.

While nbgrader grades a notebook (``NBGRADER_EXECUTION`` set), :meth:`Lab.train` does not train:
:func:`~convlab.train.fit` loads the checkpoint the student handed in.

Accuracy thresholds are measured, never typed in: :func:`record_reference` trains the reference
network of a lab (convlab's own implementation of what the student builds) with the lab's
settings at several seeds and stores the accuracies in ``convlab/recorded/labs.json`` with the
machine, versions and date. :func:`thresholds` reads them back: full credit from the lowest
accuracy any reference seed reached, nothing at chance level (``1 / num_classes``), linear in
between. A mode without a recorded run has no thresholds (full mode until a GPU run is recorded).

    python -m convlab.labs reference lab1_vgg --quick   # record the quick thresholds
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

import convlab
from convlab import data as datasets
from convlab.data import ImageData
from convlab.device import default_device
from convlab.models.vgg import VGG
from convlab.recipes import machine
from convlab.train import evaluate, fit

__all__ = [
    "LABS",
    "VGG_LAB_HIDDEN",
    "VGG_LAB_STAGES",
    "Lab",
    "LabSettings",
    "quick_mode",
    "record_reference",
    "recorded",
    "register",
    "start",
    "thresholds",
]

RECORD_FILE = "labs.json"
QUICK_ENV = "CONVLAB_QUICK"
DATA_ENV = "CONVLAB_DATA"


@dataclass(frozen=True)
class LabSettings:
    """How a lab trains, in both modes.

    Attributes:
        name: the assignment's name (``"lab1_vgg"``), also the checkpoint's stem.
        reference: builds convlab's reference of the lab's network from
            ``(num_classes, in_channels)``; :func:`record_reference` trains it.
        quick_epochs: epochs on the digits.
        quick_lr: peak learning rate (one-cycle) on the digits.
        quick_size: side the digits are upsampled to.
        quick_batch_size: batch size on the digits.
        data: the full mode's data set, a function name of :mod:`convlab.data`.
        epochs: full-mode epochs.
        lr: full-mode peak learning rate.
        batch_size: full-mode batch size.
        resize: full-mode image side (``None``: the data set's own).
        adamw: train with AdamW instead of fit's SGD. Without batch norm, SGD left the lab's VGG
            at chance on the digits for most of 8 epochs (peak 0.02-0.1; best 83% at 0.1), while
            AdamW at 3e-3 reached 92% (seed 0, 2-core CPU, 2026-11-25).
    """

    name: str
    reference: Callable[[int, int], nn.Module] = field(repr=False)
    quick_epochs: int
    quick_lr: float
    quick_size: int
    quick_batch_size: int
    data: str
    epochs: int
    lr: float
    batch_size: int
    resize: int | None = None
    adamw: bool = False


LABS: dict[str, LabSettings] = {}


def register(settings: LabSettings) -> LabSettings:
    """Add a lab to :data:`LABS` (each lab's section below calls it once)."""
    if settings.name in LABS:
        raise ValueError(f"lab {settings.name!r} is registered twice")
    LABS[settings.name] = settings
    return settings


# ----------------------------------------------------------------------------------------------
# The labs' networks and training settings, one section per lab. A section defines the
# constants its notebook imports and the reference network that record_reference trains.


def _default_init(model: nn.Module) -> nn.Module:
    """PyTorch's default initialization, as a student's freshly built layers have."""
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


# -- lab1_vgg ---------------------------------------------------------------------------------
# Lab 1 trains a narrow VGG: three blocks (16 px digits -> 2x2 maps), global average pooling and
# a 128-unit classifier; 86,346 parameters, so a CPU trains it in seconds.
VGG_LAB_STAGES = ((1, 16), (1, 32), (2, 64))
VGG_LAB_HIDDEN = 128


def _vgg_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    model = VGG(
        VGG_LAB_STAGES,
        num_classes=num_classes,
        in_channels=in_channels,
        pooled_size=1,
        hidden_features=VGG_LAB_HIDDEN,
    )
    return _default_init(model)


register(
    LabSettings("lab1_vgg", _vgg_lab_reference, quick_epochs=8, quick_lr=3e-3, quick_size=16,
                quick_batch_size=64, data="fashion_mnist", epochs=10, lr=3e-3,
                batch_size=256, adamw=True)
)  # fmt: skip

# -- lab2_nin -------------------------------------------------------------------------------
# (section of lab2_nin)

# -- lab3_batchnorm -------------------------------------------------------------------------
# (section of lab3_batchnorm)

# -- lab4_resnet ----------------------------------------------------------------------------
# (section of lab4_resnet)

# -- lab5_resnext ---------------------------------------------------------------------------
# (section of lab5_resnext)

# -- lab6_densenet --------------------------------------------------------------------------
# (section of lab6_densenet)

# -- lab7_efficientnet ----------------------------------------------------------------------
# Lab 7 writes MBConv, compound scaling, EfficientNet-B0 from its table, FLOP counts and a small
# MnasNet-style search. Its stage tables are tuples (expand_ratio, kernel_size, stride,
# out_channels, num_layers): the columns of Table 1 of Tan and Le (2019) without the stage number.
from convlab import layers as _layers  # noqa: E402 (this section's own imports)
from convlab.models import efficientnet as _efficientnet  # noqa: E402

# The trained network: 16 px digits with a stride-1 stem, two stride-2 stages -> 4x4 maps.
EFFICIENTNET_LAB_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2))
EFFICIENTNET_LAB_STEM = 16
EFFICIENTNET_LAB_HEAD = 128
# The search's skeleton: two one-block stages whose kernel sizes and expand ratios are searched.
EFFICIENTNET_SEARCH_STAGES = ((6, 3, 2, 24, 1), (6, 3, 2, 40, 1))


def mbconv_table(stages: Sequence[Sequence[int]]) -> tuple[_efficientnet.MBConvStage, ...]:
    """Lab 7's rows ``(expand_ratio, kernel_size, stride, out_channels, num_layers)`` as
    convlab's :class:`~convlab.models.efficientnet.MBConvStage` (stages numbered from 2)."""
    return tuple(_efficientnet.MBConvStage(i + 2, *row) for i, row in enumerate(stages))


def efficientnet_from_table(
    stages: Sequence[Sequence[int]],
    *,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    stem_channels: int = 32,
    head_channels: int = 1280,
    dropout: float = 0.2,
) -> nn.Sequential:
    """The network lab 7 asks for, from convlab's own blocks, flat, in the student's layer order.

    Stem (3x3 ConvBNAct with SiLU, stride 2 or 1 with ``small_input``), the scaled stages of
    :class:`~convlab.models.efficientnet.MBConv` (SE ratio 0.25, no stochastic depth), 1x1 head
    ConvBNAct, global average pooling, flatten, dropout, linear. Stem and head widths are scaled
    like the stages. With B0's table and the defaults it computes what ``efficientnet_b0`` does
    in evaluation mode (same weights in the same order).
    """
    rows = _efficientnet.scale_stages(mbconv_table(stages), width_mult, depth_mult)
    stem = _efficientnet.scale_width(stem_channels, width_mult)
    head = _efficientnet.scale_width(head_channels, width_mult)
    model = nn.Sequential(
        _layers.ConvBNAct(in_channels, stem, 3, 1 if small_input else 2, activation=nn.SiLU),
        *_efficientnet.mbconv_stages(rows, stem),
        _layers.ConvBNAct(rows[-1].out_channels, head, 1, activation=nn.SiLU),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(head, num_classes),
    )
    _efficientnet.init_weights(model)
    return model


def _efficientnet_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    model = efficientnet_from_table(
        EFFICIENTNET_LAB_STAGES,
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=True,
        stem_channels=EFFICIENTNET_LAB_STEM,
        head_channels=EFFICIENTNET_LAB_HEAD,
    )
    return _default_init(model)


__all__ += [
    "EFFICIENTNET_LAB_HEAD",
    "EFFICIENTNET_LAB_STAGES",
    "EFFICIENTNET_LAB_STEM",
    "EFFICIENTNET_SEARCH_STAGES",
    "efficientnet_from_table",
    "mbconv_table",
]

register(
    LabSettings("lab7_efficientnet", _efficientnet_lab_reference, quick_epochs=10, quick_lr=3e-3,
                quick_size=16, quick_batch_size=64, data="fashion_mnist", epochs=10, lr=3e-3,
                batch_size=256, resize=32, adamw=True)
)  # fmt: skip

# -- end of the labs' sections ----------------------------------------------------------------


def quick_mode() -> bool:
    """True when ``CONVLAB_QUICK`` is set to something other than ``""``, ``0`` or ``false``."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _settings(lab: str) -> LabSettings:
    try:
        return LABS[lab]
    except KeyError:
        raise ValueError(f"unknown lab {lab!r}: choose one of {', '.join(LABS)}") from None


@dataclass
class Lab:
    """One lab's session: its mode, device, data and checkpoint.

    Attributes:
        name: the assignment's name.
        quick: quick mode (offline digits) rather than full mode.
        device: where training runs.
        checkpoint: the checkpoint file, ``<name>.pt`` next to the notebook (hand it in).
        root: the full mode's data folder.
    """

    name: str
    quick: bool
    device: torch.device
    checkpoint: Path
    root: str = "data"
    _data: ImageData | None = field(default=None, repr=False)

    @property
    def settings(self) -> LabSettings:
        """The lab's training settings."""
        return _settings(self.name)

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
                    size=s.quick_size, batch_size=s.quick_batch_size, device=self.device
                )
            else:
                factory = getattr(datasets, s.data)
                self._data = factory(
                    self.root, batch_size=s.batch_size, resize=s.resize, device=self.device
                )
        return self._data

    def train(
        self, model: nn.Module, epochs: int | None = None, lr: float | None = None, **kwargs: Any
    ) -> list[dict[str, float]]:
        """Train ``model`` with :func:`~convlab.train.fit`, saving to :attr:`checkpoint`.

        Running the cell again resumes from the checkpoint. Under nbgrader, nothing is trained:
        the handed-in checkpoint is loaded.

        Args:
            model: the network, with ``data().num_classes`` outputs.
            epochs: passes over the training set (default: the lab's, for this mode).
            lr: peak learning rate (default: the lab's, for this mode).
            **kwargs: passed to :func:`~convlab.train.fit`.

        Returns:
            The training history, one dict per epoch.
        """
        epochs = self.epochs if epochs is None else epochs
        lr = self.lr if lr is None else lr
        kwargs.setdefault("device", self.device)
        if self.settings.adamw:
            kwargs.setdefault("optimizer", torch.optim.AdamW)
        return fit(model, self.data(), epochs, lr=lr, checkpoint=self.checkpoint, **kwargs)

    def accuracy(self, model: nn.Module) -> float:
        """Accuracy of ``model`` on the held-out test split, in [0, 1]."""
        return evaluate(model, self.data(), device=self.device)

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


def start(lab: str) -> Lab:
    """Begin a lab: report versions and device, silence Python warnings, return the :class:`Lab`.

    Args:
        lab: the assignment's name, for example ``"lab1_vgg"``.

    Returns:
        The lab, in quick mode when ``CONVLAB_QUICK=1``.
    """
    settings = _settings(lab)
    warnings.filterwarnings("ignore")  # PyTorch's notices on stderr would cost points when graded
    device = default_device()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    quick = quick_mode()
    mode = (
        f"quick mode (offline digits, {settings.quick_size} px)"
        if quick
        else f"full mode ({settings.data})"
    )
    print(f"convlab {convlab.__version__}, torch {torch.__version__}, device: {where}")
    print(f"{lab}: {mode}")
    return Lab(
        name=lab,
        quick=quick,
        device=device,
        checkpoint=Path(f"{lab}.pt"),
        root=os.environ.get(DATA_ENV, "data"),
    )


# ----------------------------------------------------------------------------------------------
# Recorded reference runs and thresholds


def _record_path() -> Path:
    return Path(str(resources.files("convlab").joinpath("recorded", RECORD_FILE)))


def recorded(lab: str, quick: bool) -> dict[str, Any] | None:
    """The recorded reference run of a lab in one mode, or None when it was never measured."""
    _settings(lab)
    path = _record_path()
    table = json.loads(path.read_text()) if path.exists() else {}
    return table.get(lab, {}).get("quick" if quick else "full")


def thresholds(lab: str, quick: bool) -> tuple[float, float]:
    """``(low, high)`` accuracy thresholds of a lab, from its recorded reference run.

    ``low`` is chance level, ``high`` the lowest test accuracy the reference reached over the
    recorded seeds.

    Raises:
        LookupError: the mode was never recorded (run :func:`record_reference`).
    """
    entry = recorded(lab, quick)
    if entry is None:
        mode = "quick" if quick else "full"
        raise LookupError(
            f"{lab} has no recorded {mode} reference run, so its accuracy cannot be graded yet: "
            f"run python -m convlab.labs reference {lab}{' --quick' if quick else ''}"
        )
    return float(entry["low"]), float(entry["high"])


def record_reference(
    lab: str,
    *,
    quick: bool = True,
    seeds: Sequence[int] = (0, 1, 2),
    path: str | os.PathLike[str] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train a lab's reference network at several seeds and record the accuracies.

    Args:
        lab: the assignment's name.
        quick: record quick mode (else full mode, which needs the data set; a GPU in practice).
        seeds: seeds of the initialization and batch order, one run each.
        path: the JSON file (default: ``convlab/recorded/labs.json``).
        checkpoint_dir: where the first seed's checkpoint is kept (``<dir>/<lab>.pt``; never
            ``solutions/<lab>/``, which nbgrader copies over every submission); default none.

    Returns:
        The stored entry: ``low``, ``high``, ``accuracies``, ``epochs``, ``lr``, ``minutes`` per
        run, machine, versions and date.
    """
    settings = _settings(lab)
    accuracies, minutes = [], []
    for i, seed in enumerate(seeds):
        session = Lab(
            lab, quick, default_device(), Path(os.devnull), os.environ.get(DATA_ENV, "data")
        )
        data = session.data()
        torch.manual_seed(seed)
        model = settings.reference(data.num_classes, data.in_channels)
        keep = checkpoint_dir is not None and i == 0
        ckpt = Path(checkpoint_dir, f"{lab}.pt") if keep else None
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
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
        minutes.append(round((time.perf_counter() - begin) / 60, 2))
        accuracies.append(round(history[-1]["test_accuracy"], 4))
        num_classes = data.num_classes
    entry = {
        "low": round(1 / num_classes, 4),
        "high": min(accuracies),
        "accuracies": accuracies,
        "seeds": list(seeds),
        "epochs": session.epochs,
        "lr": session.lr,
        "minutes": minutes,
        **machine(),
    }
    file = Path(path) if path else _record_path()
    with open(file.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two labs recorded at once must not drop each other
        table = json.loads(file.read_text()) if file.exists() else {}
        table.setdefault(lab, {})["quick" if quick else "full"] = entry
        file.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record a lab's reference run and thresholds.")
    commands = parser.add_subparsers(dest="command", required=True)
    ref = commands.add_parser("reference", help="train the reference at several seeds, record")
    ref.add_argument("lab", choices=sorted(LABS))
    ref.add_argument("--quick", action="store_true", help="the CPU run on the offline digits")
    ref.add_argument("--checkpoints", default="checkpoints", help="folder of <lab>/<lab>.pt")
    args = parser.parse_args(argv)
    entry = record_reference(
        args.lab, quick=args.quick, checkpoint_dir=Path(args.checkpoints, args.lab)
    )
    print(json.dumps({k: entry[k] for k in ("low", "high", "accuracies", "minutes")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
