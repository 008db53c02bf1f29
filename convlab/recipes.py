"""Training recipes: how each family of the course is trained in the labs.

A :class:`Recipe` fixes the model, data set, epochs, batch size, peak learning rate and
augmentation for a full run on a GPU (Fashion-MNIST or CIFAR-10, aimed at under ten minutes on
a Colab T4), and a *quick* variant that trains on the offline digits on any CPU in a few
minutes. The CIFAR-10 recipes need torchvision's download of CIFAR-10 (no package ships it);
Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` puts it.

What a recipe is expected to reach is never typed in by hand: it is read from the recorded runs
shipped in ``convlab/recorded/recipes.json``, each with the machine, library versions and date
that produced it (``python -m convlab recipe NAME --record`` adds one). A recipe without a
recorded run is reported as unmeasured, and labs have no threshold to grade it against.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convlab import data as datasets
from convlab import models
from convlab.train import fit

__all__ = ["RECIPES", "Recipe", "cpu_name", "machine", "record", "recorded", "run"]

RECORD_FILE = "recipes.json"


@dataclass(frozen=True)
class Recipe:
    """One family's training settings.

    Attributes:
        name: the family (``"resnet"``).
        model: a :func:`convlab.models.names` entry, built in its small-image configuration.
        data: ``"fashion_mnist"`` or ``"cifar10"`` for the full run.
        epochs: full-run epochs.
        batch_size: full-run batch size.
        lr: full-run peak learning rate (one-cycle schedule).
        quick_epochs: epochs of the quick run on the offline digits.
        quick_size: image side of the quick run (the digits are upsampled to it).
        quick_lr: peak learning rate of the quick run.
        quick_batch_size: batch size of the quick run.
    """

    name: str
    model: str
    data: str
    epochs: int
    batch_size: int
    lr: float
    quick_epochs: int
    quick_size: int = 28
    quick_lr: float = 0.1
    quick_batch_size: int = 64

    @property
    def augment(self) -> bool:
        """Random crops and flips: on for CIFAR-10, off for Fashion-MNIST."""
        return self.data == "cifar10"


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        # Sigmoids and average pooling learn slowly: a large step size, as in the 1990s.
        Recipe("lenet", "lenet5", "fashion_mnist", 20, 256, 0.5, quick_epochs=12, quick_lr=0.5),
        # Without batch norm, AlexNet and NiN need small steps (and, on the 1,437 training
        # digits, many of them: batches of 32).
        Recipe("alexnet", "alexnet", "fashion_mnist", 10, 128, 0.01, quick_epochs=20,
               quick_size=16, quick_lr=0.01, quick_batch_size=32),
        Recipe("vgg", "vgg11_bn", "fashion_mnist", 10, 256, 0.05, quick_epochs=6, quick_size=16,
               quick_lr=0.05),
        Recipe("nin", "nin", "fashion_mnist", 15, 128, 0.01, quick_epochs=25, quick_size=16,
               quick_lr=0.01, quick_batch_size=32),
        # With batch norm, one-cycle at a peak of 0.1-0.2 works across the rest.
        Recipe("googlenet", "googlenet", "fashion_mnist", 10, 256, 0.1, quick_epochs=5,
               quick_size=16),
        Recipe("resnet", "resnet18", "cifar10", 18, 512, 0.2, quick_epochs=5, quick_size=16),
        Recipe("resnext", "resnext50_32x4d", "cifar10", 10, 256, 0.1, quick_epochs=6,
               quick_size=16, quick_lr=0.05),
        Recipe("densenet", "densenet121", "cifar10", 10, 256, 0.1, quick_epochs=4, quick_size=16),
        Recipe("efficientnet", "efficientnet_b0", "cifar10", 15, 256, 0.1, quick_epochs=8,
               quick_size=16),
        Recipe("mnasnet", "mnasnet_a1", "cifar10", 15, 256, 0.1, quick_epochs=8, quick_size=16),
    )
}  # fmt: skip


def build(recipe: Recipe, num_classes: int, in_channels: int) -> nn.Module:
    """The recipe's model, in its small-image configuration, for a data set's shape."""
    spec = models.spec(recipe.model)
    return models.create(
        recipe.model, num_classes=num_classes, in_channels=in_channels, **spec.small
    )


def run(
    name: str,
    *,
    quick: bool = False,
    root: str = "data",
    checkpoint: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train a recipe's model the way the recipe says.

    Args:
        name: a key of :data:`RECIPES`.
        quick: the quick run on the offline digits instead of the full run.
        root: where the full run's data set is (or is downloaded to).
        checkpoint: passed to :func:`convlab.train.fit` (save and resume).
        seed: seeds the model's initialization and the batch order.
        progress: show a progress bar.

    Returns:
        The trained model and :func:`~convlab.train.fit`'s history.
    """
    recipe = _get(name)
    if quick:
        data = datasets.digits(
            size=recipe.quick_size, batch_size=recipe.quick_batch_size, seed=seed
        )
        epochs, lr = recipe.quick_epochs, recipe.quick_lr
    else:
        factory = getattr(datasets, recipe.data)
        data = factory(root, batch_size=recipe.batch_size, seed=seed)
        epochs, lr = recipe.epochs, recipe.lr
    torch.manual_seed(seed)
    model = build(recipe, data.num_classes, data.in_channels)
    history = fit(model, data, epochs, lr=lr, checkpoint=checkpoint, progress=progress, plot=False)
    return model, history


def recorded(name: str, quick: bool = False) -> dict[str, Any] | None:
    """The recorded run of a recipe (quick or full), or None when it was never measured.

    Returns:
        ``test_accuracy``, ``minutes``, ``epochs``, ``machine``, ``versions`` and ``date`` of
        the run.
    """
    _get(name)
    text = resources.files("convlab").joinpath("recorded", RECORD_FILE).read_text()
    return json.loads(text).get(name, {}).get("quick" if quick else "full")


def record(name: str, quick: bool, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run a recipe and store its result in the recorded-runs file.

    Args:
        name: a key of :data:`RECIPES`.
        quick: record the quick run (else the full run, which needs the data set and a GPU).
        path: the JSON file (default: the one shipped with convlab).

    Returns:
        The stored entry.
    """
    start = time.perf_counter()
    _, history = run(name, quick=quick, progress=False)
    minutes = (time.perf_counter() - start) / 60
    recipe = _get(name)
    entry = {
        "test_accuracy": round(history[-1]["test_accuracy"], 4),
        "minutes": round(minutes, 2),
        "epochs": len(history),
        "settings": asdict(recipe),
        **machine(),
    }
    file = (
        Path(path)
        if path
        else Path(str(resources.files("convlab").joinpath("recorded", RECORD_FILE)))
    )
    table = json.loads(file.read_text()) if file.exists() else {}
    table.setdefault(name, {})["quick" if quick else "full"] = entry
    file.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    return entry


def machine() -> dict[str, Any]:
    """What a measurement ran on: device, CPU, cores, library versions and the date."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU only ({torch.get_num_threads()} threads)"
    return {
        "machine": {
            "device": device,
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "platform": platform.platform(terse=True),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "date": date.today().isoformat(),
    }


def cpu_name() -> str:
    """The processor's model name as the operating system reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _get(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}") from None
