"""What every lab declares: its :class:`LabSettings`, registered in :data:`LABS`.

Each lab's module (``convlab/labs/lab1_vgg.py`` ...) defines the constants its notebook imports,
the reference network :func:`~convlab.labs.record.record_reference` trains, and calls
:func:`register` once with the lab's training settings in both modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "DATA_ENV",
    "LABS",
    "QUICK_ENV",
    "LabSettings",
    "built_as_a_student_builds",
    "default_init",
    "lab_settings",
    "register",
]

QUICK_ENV = "CONVLAB_QUICK"
DATA_ENV = "CONVLAB_DATA"


@dataclass(frozen=True)
class LabSettings:
    """How a lab trains, in both modes.

    Attributes:
        name: the assignment's name (``"lab1_vgg"``), also the checkpoint's stem.
        reference: builds convlab's reference of the lab's network from
            ``(num_classes, in_channels)``; :func:`~convlab.labs.record.record_reference` trains it.
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
    """Add a lab to :data:`LABS` (each lab's module calls it once, when imported)."""
    if settings.name in LABS:
        raise ValueError(f"lab {settings.name!r} is registered twice")
    LABS[settings.name] = settings
    return settings


def default_init(model: nn.Module) -> nn.Module:
    """PyTorch's default initialization, as a student's freshly built layers have."""
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def built_as_a_student_builds(build: Callable[[], nn.Module]) -> nn.Module:
    """The network ``build()`` returns, starting from the weights a student's network starts from.

    ``build`` runs without drawing from the global random generator (a library network initializes
    its own way, which a student's does not), then every layer gets PyTorch's default
    initialization in module order, the order a student's layers are created in: at one seed the
    reference and the solution notebook's network start from the same weights.
    """
    with torch.random.fork_rng(devices=[]):
        model = build()
    return default_init(model)


def lab_settings(lab: str) -> LabSettings:
    """The settings of a registered lab; a clear error names the labs there are."""
    try:
        return LABS[lab]
    except KeyError:
        raise ValueError(f"unknown lab {lab!r}: choose one of {', '.join(LABS)}") from None
