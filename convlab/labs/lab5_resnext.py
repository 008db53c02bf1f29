"""Lab 5 writes grouped convolutions from ordinary ones, the three forms of the ResNeXt block
(Xie et al. 2017, Fig. 3), the block's weight count and the ResNeXt bottleneck. It trains a
small ResNeXt on 16 px digits: a 3x3 stem of 16 channels, one bottleneck of 64 channels at
16x16 and one of 128 at 8x8, cardinality 8 with 16 channels per 64 (paths of 4 and 8
channels); 32,442 parameters on 1-channel digits. fit's SGD at 0.1 reached 98.9-100% at seeds
0-2 in 6 epochs (2-core CPU, one thread, under a minute each, 2026-12-03).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convlab.labs.settings import LabSettings, built_as_a_student_builds, register
from convlab.models.resnet import Bottleneck as _Bottleneck

__all__ = [
    "RESNEXT_LAB_GROUPS",
    "RESNEXT_LAB_STAGES",
    "RESNEXT_LAB_STEM",
    "RESNEXT_LAB_WIDTH_PER_GROUP",
    "resnext_lab_form",
    "resnext_lab_network",
    "resnext_reference_block",
]

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
    return built_as_a_student_builds(
        lambda: resnext_lab_network(
            RESNEXT_LAB_STAGES,
            in_channels,
            num_classes,
            RESNEXT_LAB_STEM,
            RESNEXT_LAB_GROUPS,
            RESNEXT_LAB_WIDTH_PER_GROUP,
        )
    )


# Full mode: 5 epochs, not 10: ten took about 34 minutes per seed on a 2-core Xeon (one
# thread, 417 ms a step of 128: grouped convolutions are slow on a CPU, 2026-12-05).
register(
    LabSettings("lab5_resnext", _resnext_lab_reference, quick_epochs=6, quick_lr=0.1,
                quick_size=16, quick_batch_size=64, data="fashion_mnist", epochs=5, lr=0.1,
                batch_size=128)
)  # fmt: skip
