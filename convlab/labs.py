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
machine, versions and date. :func:`thresholds` reads them back: full credit from one percentage
point below the lowest accuracy any reference seed reached, nothing at chance level
(``1 / num_classes``), linear in between. A mode without a run recorded at every seed of
:data:`REFERENCE_SEEDS` has no thresholds. Thresholds depend on the recipe, not the device, so
both modes are recorded on a CPU, in float32.

    python -m convlab.labs reference lab1_vgg --quick   # record the quick thresholds
    python -m convlab.labs reference lab1_vgg           # the full mode, on Fashion-MNIST
    python -m convlab.labs time lab1_vgg                # time a full-mode epoch (idle machine)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
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
from convlab.device import default_device, keep_cuda_calls_on_cpu
from convlab.models.vgg import VGG
from convlab.recipes import machine
from convlab.train import evaluate, fit

__all__ = [
    "LABS",
    "REFERENCE_SEEDS",
    "THRESHOLD_MARGIN",
    "VGG_LAB_HIDDEN",
    "VGG_LAB_STAGES",
    "Lab",
    "LabSettings",
    "cpu_advice",
    "fingerprint",
    "quick_mode",
    "recipe",
    "record_reference",
    "recorded",
    "reference_start",
    "register",
    "start",
    "thresholds",
    "time_full_mode",
]

RECORD_FILE = "labs.json"
# Full credit starts this far below the lowest accuracy of the recorded reference runs: the same
# code trained with another thread count or library version lands a few tenths of a percentage
# point away (lab 2's seed 0: 98.06% with one thread, 98.33% with two).
THRESHOLD_MARGIN = 0.01
# Every lab's reference network is trained once per seed; the thresholds need all of them.
REFERENCE_SEEDS = (0, 1, 2)
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
    # Built without drawing from the global generator (VGG initializes its own way), then given
    # PyTorch's default initialization in module order, the order a student's layers are created
    # in: at one seed the reference and the solution notebook's network start from the same
    # weights.
    with torch.random.fork_rng(devices=[]):
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
# Lab 2 writes NiN's mlpconv block, the paper's plain Inception block (5x5 third path, no batch
# norm; Szegedy et al. 2014, Fig. 2b) and NiN's global-average-pooling head, and trains a small
# net of all three on 16 px digits: an mlpconv stem of 32 channels, a 3x3/2 max pool, two
# Inception blocks (7x7 maps; 56 and 88 channels out), a 3x3/2 max pool, dropout and an mlpconv
# with one map per class, averaged; 30,586 parameters on 1-channel digits.
# Two departures, both measured (AdamW at 3e-3, 10 epochs, 2-core CPU, 2026-12-03):
# * The head's last 1x1 convolution has no ReLU, so its maps (the logits) can be negative. With
#   NiN's final ReLU (convlab's NiN keeps it) a class whose map died stayed dead: 89-98% at seeds
#   0-2, 59-98% with dropout 0.2, plateaus at 8 or 6 live classes; without it 97.5-98.1%.
# * He initialization (as convlab's NiN and GoogLeNet have): with PyTorch's default, paths of up
#   to 10 convolutions without batch norm reached 66-80% (seeds 0-1, with the final ReLU).
# Batch 64 instead of 32 (half the steps): 32-89% without the final ReLU.
from convlab.models import googlenet as _googlenet  # noqa: E402 (this section's own imports)
from convlab.models import nin as _nin  # noqa: E402

NIN_LAB_STEM = (32, 3, 1, 1)  # out_channels, kernel_size, stride, padding of the first mlpconv
# in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj (the columns of Table 1)
NIN_LAB_INCEPTION = ((32, 16, 16, 24, 4, 8, 8), (56, 24, 24, 32, 8, 16, 16))
NIN_LAB_DROPOUT = 0.5


def nin_lab_init(model: nn.Module) -> nn.Module:
    """He initialization (fan-in, for ReLU) of every convolution, zero biases; returns ``model``.

    The initialization of convlab's NiN and GoogLeNet: deep ReLU stacks without batch norm
    barely train from PyTorch's default, whose weights shrink the signal at every layer.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def reference_nin_head(in_channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Lab 2's head: dropout, an mlpconv with one map per class without its last ReLU, GAP.

    :func:`~convlab.models.nin.nin_block` less its final ReLU, so the averaged maps are logits of
    either sign (convlab's :class:`~convlab.models.nin.NiN` keeps the ReLU).
    """
    mlpconv = _nin.nin_block(in_channels, num_classes, kernel_size=3, padding=1)
    return nn.Sequential(nn.Dropout(dropout), *mlpconv[:-1], nn.AdaptiveAvgPool2d(1), nn.Flatten())


def reference_inception_nin(
    stem: tuple[int, int, int, int],
    inception: Sequence[tuple[int, int, int, int, int, int, int]],
    in_channels: int,
    num_classes: int,
    dropout: float = NIN_LAB_DROPOUT,
) -> nn.Sequential:
    """Lab 2's network from convlab's parts (PyTorch's default initialization).

    An mlpconv (``stem``: out_channels, kernel_size, stride, padding), a 3x3 stride-2 max pool,
    one plain :class:`~convlab.models.googlenet.Inception` per row of ``inception``, a 3x3
    stride-2 max pool, and :func:`reference_nin_head`.
    """
    last = inception[-1]
    out_channels = last[1] + last[3] + last[5] + last[6]
    return nn.Sequential(
        _nin.nin_block(in_channels, *stem),
        nn.MaxPool2d(kernel_size=3, stride=2),
        *(_googlenet.Inception(*row, branch3_kernel_size=5, batch_norm=False) for row in inception),
        nn.MaxPool2d(kernel_size=3, stride=2),
        reference_nin_head(out_channels, num_classes, dropout),
    )


def _nin_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    return nin_lab_init(
        reference_inception_nin(NIN_LAB_STEM, NIN_LAB_INCEPTION, in_channels, num_classes)
    )


__all__ += [
    "NIN_LAB_DROPOUT",
    "NIN_LAB_INCEPTION",
    "NIN_LAB_STEM",
    "nin_lab_init",
    "reference_inception_nin",
    "reference_nin_head",
]

# Full mode: 6 epochs, not 10: ten took about 19 minutes per seed on a 2-core Xeon (one
# thread, 226 ms a step of 128, 2026-12-05), and every seed is recorded on a CPU; on a GPU the
# six take seconds.
register(
    LabSettings("lab2_nin", _nin_lab_reference, quick_epochs=10, quick_lr=3e-3, quick_size=16,
                quick_batch_size=32, data="fashion_mnist", epochs=6, lr=3e-3,
                batch_size=128, adamw=True)
)  # fmt: skip

# -- lab3_batchnorm -------------------------------------------------------------------------
# Lab 3 writes batch normalization from scratch (Ioffe and Szegedy 2015): the function for
# (N, C) and (N, C, H, W) inputs in training and evaluation, a module with learnable gamma and
# beta and running statistics as buffers (convlab.layers' and PyTorch's conventions: running =
# (1 - momentum) * running + momentum * batch statistic, the variance unbiased there and biased in
# the normalization), and LeNet-5 with batch norm after every convolution and hidden linear layer
# (the LeNet-BN of d2l's batch-norm chapter, on convlab's LeNet geometry: sigmoid, average pooling,
# 28 px with padding 2). On the 28 px digits, fit's SGD at 0.5 took it to 97.5% in 8 epochs while
# the same LeNet without batch norm stayed at chance (10.3%); at 0.1, 97.2% against 10.3% (seed 0,
# 2-core CPU, 2026-12-03).
from convlab import layers as _bn_layers  # noqa: E402 (this section's own imports)

# what a batch norm written from scratch must not call
BATCHNORM_LAB_FORBIDDEN = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.functional.batch_norm,
    torch.batch_norm,
)


def reference_lenet_bn(
    in_channels: int, num_classes: int, batch_norm: bool = True
) -> nn.Sequential:
    """convlab's LeNet-5 (:class:`~convlab.models.lenet.LeNet`) with batch norm, as one Sequential.

    :class:`~convlab.layers.BatchNorm` follows each convolution and each hidden linear layer,
    before its sigmoid; ``batch_norm=False`` leaves them out (LeNet-5 itself, without the
    adaptive pool, so for 28x28 inputs only). PyTorch's default initialization.
    """

    def norm(channels: int) -> list[nn.Module]:
        return [_bn_layers.BatchNorm(channels)] if batch_norm else []

    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),  # (N, 6, 28, 28)
        *norm(6),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),  # (N, 6, 14, 14)
        nn.Conv2d(6, 16, kernel_size=5),  # (N, 16, 10, 10)
        *norm(16),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),  # (N, 16, 5, 5)
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        *norm(120),
        nn.Sigmoid(),
        nn.Linear(120, 84),
        *norm(84),
        nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )


def _batchnorm_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    # built fresh, it has PyTorch's default initialization, drawn in the order a student's
    # lenet() draws it: at the same seed the two are the same network
    return reference_lenet_bn(in_channels, num_classes)


__all__ += ["BATCHNORM_LAB_FORBIDDEN", "reference_lenet_bn"]

register(
    LabSettings("lab3_batchnorm", _batchnorm_lab_reference, quick_epochs=8, quick_lr=0.5,
                quick_size=28, quick_batch_size=64, data="fashion_mnist", epochs=10, lr=0.5,
                batch_size=256)
)  # fmt: skip

# -- lab4_resnet ----------------------------------------------------------------------------
# Lab 4 writes the residual block (identity and projection shortcut), ResNet-18 from a stage
# table, the pre-activation unit and the lesion experiment. It trains a CIFAR-style ResNet-14
# (He et al. 2015, Sec. 4.2, n = 2, option B projections): 3x3 stem, three stages of two blocks
# at 16, 32 and 64 channels (CIFAR_WIDTHS), global average pooling, linear; 174,970 parameters on
# 1-channel digits. fit's SGD at 0.1 reached 99.2-99.4% in 5 epochs at seeds 0-2 (2-core CPU).
from convlab.models import resnet as _resnet  # noqa: E402 (this section's own imports)
from convlab.models import resnet_cifar as _resnet_cifar  # noqa: E402

RESNET_LAB_STAGES = tuple((2, width) for width in _resnet_cifar.CIFAR_WIDTHS)


def reference_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    """convlab's :class:`~convlab.models.resnet.BasicBlock` with the shortcut ResNet gives it.

    The identity where the block keeps its input's shape, else the paper's option B: a 1x1
    convolution with the block's stride, then batch norm, as ``downsample``.
    """
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            _resnet.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
        )
    return _resnet.BasicBlock(in_channels, out_channels, stride, downsample)


def _resnet_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    # Built without drawing from the global generator, then initialized in module order, which is
    # the order the student's layers are created in: at one seed both start from the same weights.
    num_blocks = RESNET_LAB_STAGES[0][0]
    with torch.random.fork_rng(devices=[]):
        model = _resnet_cifar.CifarResNet(
            num_blocks, shortcut="B", num_classes=num_classes, in_channels=in_channels
        )
    return _default_init(model)


__all__ += ["RESNET_LAB_STAGES", "reference_block"]

# Full mode: 6 epochs, not 10: ten took about 20 minutes per seed on a 2-core Xeon (one
# thread, 245 ms a step of 128, 2026-12-05).
register(
    LabSettings("lab4_resnet", _resnet_lab_reference, quick_epochs=5, quick_lr=0.1, quick_size=16,
                quick_batch_size=64, data="fashion_mnist", epochs=6, lr=0.1, batch_size=128)
)  # fmt: skip

# -- lab5_resnext ---------------------------------------------------------------------------
# Lab 5 writes grouped convolutions from ordinary ones, the three forms of the ResNeXt block
# (Xie et al. 2017, Fig. 3), the block's weight count and the ResNeXt bottleneck. It trains a
# small ResNeXt on 16 px digits: a 3x3 stem of 16 channels, one bottleneck of 64 channels at
# 16x16 and one of 128 at 8x8, cardinality 8 with 16 channels per 64 (paths of 4 and 8
# channels); 32,442 parameters on 1-channel digits. fit's SGD at 0.1 reached 98.9-100% at seeds
# 0-2 in 6 epochs (2-core CPU, one thread, under a minute each, 2026-12-03).
from convlab.models.resnet import Bottleneck as _Bottleneck  # noqa: E402 (this section's own)

RESNEXT_LAB_STEM = 16
RESNEXT_LAB_STAGES = ((1, 64), (1, 128))  # (num_blocks, out_channels) per stage
RESNEXT_LAB_GROUPS = 8
RESNEXT_LAB_WIDTH_PER_GROUP = 16  # channels per path for every 64 of a ResNet bottleneck's width


def resnext_reference_block(
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    groups: int = 32,
    width_per_group: int = 4,
) -> nn.Module:
    """convlab's ResNeXt :class:`Bottleneck` (stride on the 3x3) with the shortcut ResNet gives it.

    The identity where the block keeps its input's shape, else a 1x1 convolution with the block's
    stride, then batch norm, as ``downsample`` (the paper's option B).
    """
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    return _Bottleneck(
        in_channels,
        out_channels,
        stride,
        downsample,
        groups=groups,
        width_per_group=width_per_group,
    )


def resnext_lab_network(
    stages: Sequence[tuple[int, int]],
    in_channels: int,
    num_classes: int,
    stem_channels: int,
    groups: int,
    width_per_group: int,
) -> nn.Sequential:
    """The small ResNeXt lab 5 asks for, flat, from convlab's :class:`Bottleneck`.

    3x3 stem convolution (no bias), batch norm, ReLU; then per ``(num_blocks, out_channels)``
    stage that many bottlenecks with ``groups`` and ``width_per_group``, the first of every stage
    but the first with stride 2, each with the paper's option-B shortcut (1x1 convolution with
    the block's stride and batch norm) where its input and output shapes differ; global average
    pooling, flatten, linear. The blocks are :func:`resnext_reference_block`.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(stem_channels),
        nn.ReLU(),
    ]
    channels = stem_channels
    for index, (num_blocks, out_channels) in enumerate(stages):
        for block in range(num_blocks):
            stride = 2 if index > 0 and block == 0 else 1
            layers.append(
                resnext_reference_block(channels, out_channels, stride, groups, width_per_group)
            )
            channels = out_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


def _resnext_path(in_channels: int, path_width: int, out_channels: int | None) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, path_width, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(path_width, path_width, 3, padding=1, bias=False),
        nn.ReLU(),
    ]
    if out_channels is not None:
        layers.append(nn.Conv2d(path_width, out_channels, 1, bias=False))
    return nn.Sequential(*layers)


class _ResNeXtFormA(nn.Module):
    """Fig. 3(a): ``sum_i T_i(x)``, each path 1x1, ReLU, 3x3, ReLU, 1x1."""

    def __init__(self, in_channels: int, cardinality: int, path_width: int, out_channels: int):
        super().__init__()
        self.paths = nn.ModuleList(
            _resnext_path(in_channels, path_width, out_channels) for _ in range(cardinality)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([path(x) for path in self.paths]).sum(0)


class _ResNeXtFormB(nn.Module):
    """Fig. 3(b): the paths' 3x3 outputs concatenated, then one 1x1 convolution."""

    def __init__(self, in_channels: int, cardinality: int, path_width: int, out_channels: int):
        super().__init__()
        self.paths = nn.ModuleList(
            _resnext_path(in_channels, path_width, None) for _ in range(cardinality)
        )
        self.merge = nn.Conv2d(cardinality * path_width, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([path(x) for path in self.paths], dim=1))


def resnext_lab_form(
    form: str, in_channels: int, cardinality: int, path_width: int, out_channels: int
) -> nn.Module:
    """One of the three forms of Xie et al.'s Fig. 3, without batch norm, as lab 5 lays it out.

    ``"a"``: ``paths``, a ModuleList of ``cardinality`` Sequentials (1x1 conv, ReLU, 3x3 conv,
    ReLU, 1x1 conv), summed. ``"b"``: ``paths`` without their last convolution, concatenated,
    then ``merge``, one 1x1 convolution. ``"c"``: 1x1 conv, ReLU, 3x3 conv with ``cardinality``
    groups, ReLU, 1x1 conv. Convolutions have no bias; the 3x3 ones padding 1.
    """
    width = cardinality * path_width
    if form == "a":
        return _ResNeXtFormA(in_channels, cardinality, path_width, out_channels)
    if form == "b":
        return _ResNeXtFormB(in_channels, cardinality, path_width, out_channels)
    if form == "c":
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, groups=cardinality, bias=False),
            nn.ReLU(),
            nn.Conv2d(width, out_channels, 1, bias=False),
        )
    raise ValueError(f"form must be 'a', 'b' or 'c', got {form!r}")


def _resnext_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    # the random numbers a student's network draws when the notebook builds it, layer by layer in
    # the same order: at seed 0 the reference starts from the solution notebook's weights
    state = torch.random.get_rng_state()
    model = resnext_lab_network(
        RESNEXT_LAB_STAGES,
        in_channels,
        num_classes,
        RESNEXT_LAB_STEM,
        RESNEXT_LAB_GROUPS,
        RESNEXT_LAB_WIDTH_PER_GROUP,
    )
    torch.random.set_rng_state(state)
    return _default_init(model)


__all__ += [
    "RESNEXT_LAB_GROUPS",
    "RESNEXT_LAB_STAGES",
    "RESNEXT_LAB_STEM",
    "RESNEXT_LAB_WIDTH_PER_GROUP",
    "resnext_lab_form",
    "resnext_lab_network",
    "resnext_reference_block",
]

# Full mode: 5 epochs, not 10: ten took about 34 minutes per seed on a 2-core Xeon (one
# thread, 417 ms a step of 128: grouped convolutions are slow on a CPU, 2026-12-05).
register(
    LabSettings("lab5_resnext", _resnext_lab_reference, quick_epochs=6, quick_lr=0.1,
                quick_size=16, quick_batch_size=64, data="fashion_mnist", epochs=5, lr=0.1,
                batch_size=128)
)  # fmt: skip

# -- lab6_densenet --------------------------------------------------------------------------
# Lab 6 writes the dense layer (plain and bottleneck), the dense block, the transition, the
# channel arithmetic of a DenseNet and a small DenseNet-BC, which it trains on 16 px digits:
# a 3x3 stem of 16 channels, three dense blocks of 3 bottleneck layers with growth rate 8
# (16x16, 8x8 and 4x4 maps), compression 0.5; 32,350 parameters on 1-channel digits. fit's SGD
# at 0.1 reached 98.9-99.7% in 6 epochs at seeds 0-2 (2-core CPU, one thread, about a minute
# each, 2026-12-03).
from convlab.models import densenet as _densenet  # noqa: E402 (this section's own imports)

DENSENET_LAB_GROWTH = 8
DENSENET_LAB_BLOCKS = (3, 3, 3)  # dense layers per block
DENSENET_LAB_STEM = 16


def plain_dense_layer(in_channels: int, growth_rate: int) -> nn.Sequential:
    """The composite function of a DenseNet without bottleneck: BN, ReLU, 3x3 convolution.

    Huang et al. 2017, Sec. 3; convlab's :class:`~convlab.models.densenet.DenseLayer` is the
    bottleneck version (DenseNet-B).
    """
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, growth_rate, 3, padding=1, bias=False),
    )


def densenet_lab_network(
    growth_rate: int,
    block_config: Sequence[int],
    num_init_features: int,
    in_channels: int,
    num_classes: int,
    bn_size: int = 4,
    compression: float = 0.5,
) -> nn.Module:
    """convlab's DenseNet-BC with the small-image stem (3x3, stride 1, no max pool), no dropout."""
    return _densenet.DenseNet(
        growth_rate,
        block_config,
        num_init_features,
        bn_size=bn_size,
        compression=compression,
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=True,
    )


def _densenet_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    # DenseNet's He initialization is replaced by PyTorch's default, drawn as a student's network
    # draws it when the notebook builds it: at seed 0 the reference starts from the solution's
    # weights
    state = torch.random.get_rng_state()
    model = densenet_lab_network(
        DENSENET_LAB_GROWTH, DENSENET_LAB_BLOCKS, DENSENET_LAB_STEM, in_channels, num_classes
    )
    torch.random.set_rng_state(state)
    return _default_init(model)


__all__ += [
    "DENSENET_LAB_BLOCKS",
    "DENSENET_LAB_GROWTH",
    "DENSENET_LAB_STEM",
    "densenet_lab_network",
    "plain_dense_layer",
]

# Full mode: 5 epochs, not 10: ten took about 27 minutes per seed on a 2-core Xeon (one
# thread, 325 ms a step of 128: concatenation copies every map again, 2026-12-05).
register(
    LabSettings("lab6_densenet", _densenet_lab_reference, quick_epochs=6, quick_lr=0.1,
                quick_size=16, quick_batch_size=64, data="fashion_mnist", epochs=5, lr=0.1,
                batch_size=128)
)  # fmt: skip

# -- lab7_efficientnet ----------------------------------------------------------------------
# Lab 7 writes MBConv, compound scaling, EfficientNet-B0 from its table, FLOP counts and a small
# MnasNet-style search. Its stage tables are tuples (expand_ratio, kernel_size, stride,
# out_channels, num_layers): the columns of Table 1 of Tan and Le (2019) without the stage number.
import functools as _functools  # noqa: E402 (this section's own imports)

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from convlab import layers as _layers  # noqa: E402
from convlab.models import efficientnet as _efficientnet  # noqa: E402

# The trained network: 16 px digits with a stride-1 stem, two stride-2 stages -> 4x4 maps;
# 21,736 parameters on 1-channel digits. AdamW at 3e-3 for 6 epochs reached 98.9-99.4% at
# seeds 0-2 (2-core CPU, 2026-12-03; about a minute per run when the cores are not shared).
EFFICIENTNET_LAB_STAGES = ((1, 3, 1, 16, 1), (4, 3, 2, 24, 1), (4, 5, 2, 40, 1))
EFFICIENTNET_LAB_STEM = 16
EFFICIENTNET_LAB_HEAD = 128
# The search's skeleton: two one-block stages whose kernel sizes and expand ratios are searched.
EFFICIENTNET_SEARCH_STAGES = ((6, 3, 2, 24, 1), (6, 3, 2, 40, 1))


def mbconv_table(stages: Sequence[Sequence[int]]) -> tuple[_efficientnet.MBConvStage, ...]:
    """Lab 7's rows ``(expand_ratio, kernel_size, stride, out_channels, num_layers)`` as
    convlab's :class:`~convlab.models.efficientnet.MBConvStage` (stages numbered from 2)."""
    return tuple(_efficientnet.MBConvStage(i + 2, *row) for i, row in enumerate(stages))


def stage_rows(stages: Sequence[_efficientnet.MBConvStage]) -> tuple[tuple[int, ...], ...]:
    """convlab's :class:`~convlab.models.efficientnet.MBConvStage` rows as lab 7's tuples."""
    return tuple(
        (row.expand_ratio, row.kernel_size, row.stride, row.out_channels, row.num_layers)
        for row in stages
    )


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


@_functools.lru_cache(maxsize=64)
def efficientnet_flops(
    stages: tuple[tuple[int, ...], ...],
    phi: float,
    base_resolution: int = 224,
    num_classes: int = 1000,
) -> int:
    """FLOPs of :func:`efficientnet_from_table` scaled by ``compound_scaling(phi)``, for grading.

    Depth and width multipliers come from :func:`~convlab.models.efficientnet.compound_scaling`,
    the input side is ``round(base_resolution * gamma^phi)``; the network is built on the meta
    device (shapes only, nothing computed) and counted by ``torch.utils.flop_counter`` (2 FLOPs
    per multiply-add) for one image. Cached: lab 7's tests ask for the same figures many times.
    """
    depth_mult, width_mult, resolution = _efficientnet.compound_scaling(phi)
    side = round(base_resolution * resolution / _efficientnet.BASE_RESOLUTION)
    with torch.device("meta"):
        model = efficientnet_from_table(
            stages, width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes
        )
        x = torch.zeros(1, 3, side, side)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def _efficientnet_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    # Built without drawing from the global generator (efficientnet_from_table initializes its
    # own way), then given PyTorch's default initialization in module order, the order a
    # student's layers are created in: at one seed both start from the same weights.
    with torch.random.fork_rng(devices=[]):
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
    "efficientnet_flops",
    "efficientnet_from_table",
    "mbconv_table",
    "stage_rows",
]

# Full mode: 5 epochs, not 10: ten took about 27 minutes per seed on a 2-core Xeon (one
# thread, 666 ms a step of 256: depthwise convolutions are slow on a CPU, 2026-12-05).
register(
    LabSettings("lab7_efficientnet", _efficientnet_lab_reference, quick_epochs=6, quick_lr=3e-3,
                quick_size=16, quick_batch_size=64, data="fashion_mnist", epochs=5, lr=3e-3,
                batch_size=256, adamw=True)
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
    if os.environ.get("NBGRADER_EXECUTION") and device.type != "cuda":
        keep_cuda_calls_on_cpu()
    print(f"convlab {convlab.__version__}, torch {torch.__version__}, device: {where}")
    print(f"{lab}: {mode}")
    if not quick and device.type == "cpu" and not os.environ.get("NBGRADER_EXECUTION"):
        print(cpu_advice(lab))
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


def _mode(quick: bool) -> str:
    return "quick" if quick else "full"


def recorded(lab: str, quick: bool) -> dict[str, Any] | None:
    """The recorded reference runs of a lab in one mode, or None when it was never measured."""
    _settings(lab)
    path = _record_path()
    table = json.loads(path.read_text()) if path.exists() else {}
    return table.get(lab, {}).get(_mode(quick))


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
            f"{lab} has no recorded {_mode(quick)} reference run, so its accuracy cannot be "
            f"graded yet: run {command}"
        )
    seeds = sorted(run["seed"] for run in entry["runs"])
    if seeds != sorted(REFERENCE_SEEDS):
        raise LookupError(
            f"{lab}'s {_mode(quick)} reference runs cover seeds {seeds}, not all of "
            f"{list(REFERENCE_SEEDS)}, so its accuracy cannot be graded yet: {command} records "
            "the missing ones"
        )
    low, high = float(entry["low"]), float(entry["high"])
    return low, max(low + THRESHOLD_MARGIN, high - THRESHOLD_MARGIN)


def recipe(lab: str, quick: bool) -> dict[str, Any]:
    """What a lab's training run in one mode depends on, besides the seed."""
    settings = _settings(lab)
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
    settings = _settings(lab)
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
        entry = table.setdefault(lab, {}).setdefault(_mode(quick), {})
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
    settings = _settings(lab)
    recipe_now = recipe(lab, quick)
    file = Path(path) if path else _record_path()
    say = log or (lambda line: None)
    entry: dict[str, Any] = {}
    for i, seed in enumerate(seeds):
        model, data, session = reference_start(lab, quick, seed)
        mark = fingerprint(recipe_now, model, data)
        table = json.loads(file.read_text()) if file.exists() else {}
        done = table.get(lab, {}).get(_mode(quick), {}).get("runs", [])
        if any(run["seed"] == seed and run["fingerprint"] == mark for run in done):
            say(f"{lab} {_mode(quick)} seed {seed}: recorded already ({mark})")
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
        say(f"{lab} {_mode(quick)} seed {seed}: {run['accuracy']:.2%} in {run['seconds']:.0f} s")

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
        entry = (json.loads(file.read_text()) if file.exists() else {})[lab][_mode(quick)]
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

    _update_record(Path(path) if path else _record_path(), lab, False, add)
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


if __name__ == "__main__":
    sys.exit(main())
