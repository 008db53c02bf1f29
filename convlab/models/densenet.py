"""DenseNet: Huang, Liu, van der Maaten and Weinberger 2016, "Densely Connected Convolutional
Networks" (arXiv:1608.06993).

Key idea: layer ``l`` of a dense block sees the concatenation of every earlier feature map,
``x_l = H_l([x_0, x_1, ..., x_{l-1}])``, and adds ``growth_rate`` (the paper's ``k``) new
channels, so a block with ``L`` layers turns ``C`` channels into ``C + L * k``; transition layers
between blocks shrink the channels by the compression factor ``theta`` and halve the resolution.

The ImageNet models are the paper's DenseNet-BC (Table 1): bottleneck layers
``BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k)`` and compression ``theta = 0.5``. Attribute names are
torchvision's (``features.conv0``, ``features.denseblock1.denselayer1.norm1``,
``features.transition1.conv``, ``features.norm5``, ``classifier``), so its state dicts load with
``strict=True``.

Every factory (``densenet121`` ... ``densenet201``) takes the keyword arguments of
:class:`DenseNet` other than the three of its row of :data:`DENSENET_CONFIGS`;
:data:`DENSENET_PARAMS` records its size.

Departures, all deliberate:

* torchvision (and so this module) applies a ReLU after ``norm5`` before global pooling; the
  paper's Table 1 only says "7x7 global average pool". This is the usual pre-activation ending
  (the last BN-ReLU of the last layer), not an extra layer with parameters.
* ``small_input=True`` is not the paper's CIFAR DenseNet-BC (three dense blocks, ``k = 12``,
  ``2k`` stem channels). It keeps the four-block ImageNet network and changes only the stem:
  ``conv0`` becomes a 3x3 stride-1 convolution and the 3x3 stride-2 max-pool ``pool0`` is removed,
  so a 32x32 image reaches the last block at 4x4 instead of 1x1 (the ImageNet stem would shrink it
  by 4 before the first block).
* torchvision's memory-efficient (checkpointed) mode is not provided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "DENSENET_CONFIGS",
    "DENSENET_PARAMS",
    "DenseBlock",
    "DenseLayer",
    "DenseNet",
    "Transition",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "densenet_channels",
]

# (growth_rate k, layers per dense block, stem channels), Table 1 of the paper.
DENSENET_CONFIGS: dict[str, tuple[int, tuple[int, int, int, int], int]] = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}

# Parameters of each factory's network with 1000 classes (torchvision's model of the same name).
DENSENET_PARAMS: dict[str, int] = {
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
}


def densenet_channels(
    num_init_features: int,
    growth_rate: int,
    block_config: Sequence[int],
    compression: float = 0.5,
) -> list[tuple[str, int]]:
    """Channel count after every dense block and transition layer of a DenseNet.

    A dense block with ``L`` layers adds ``L * growth_rate`` channels to its input; a transition
    keeps ``floor(compression * m)`` of its ``m`` input channels (the paper's ``theta``). There is
    no transition after the last block.

    Args:
        num_init_features: channels produced by the stem (``2k`` in the paper, 64 for
            DenseNet-121).
        growth_rate: channels added by each dense layer (``k``).
        block_config: number of dense layers in each block.
        compression: the transition's compression factor ``theta`` in ``(0, 1]``.

    Returns:
        ``(module name, output channels)`` in network order, with the names used under
        ``DenseNet.features``: ``[("denseblock1", 256), ("transition1", 128), ...]`` for
        DenseNet-121. The last entry is the width of the classifier's input.
    """
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression must be in (0, 1], got {compression}")
    channels = num_init_features
    stages: list[tuple[str, int]] = []
    for i, num_layers in enumerate(block_config, start=1):
        channels += num_layers * growth_rate
        stages.append((f"denseblock{i}", channels))
        if i < len(block_config):
            channels = math.floor(compression * channels)
            stages.append((f"transition{i}", channels))
    return stages


class DenseLayer(nn.Module):
    """The bottleneck composite function ``H_l``: BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 (DenseNet-B).

    The 1x1 convolution narrows the ever-wider concatenated input to ``bn_size * growth_rate``
    channels before the 3x3 convolution produces ``growth_rate`` new ones.

    Args:
        in_channels: channels of the concatenated input ``[x_0, ..., x_{l-1}]``.
        growth_rate: channels produced (``k``).
        bn_size: bottleneck width as a multiple of ``growth_rate`` (4 in the paper).
        drop_rate: dropout probability on the new features (0 on ImageNet).

    Shape:
        ``(N, in_channels, H, W) -> (N, growth_rate, H, W)``.
    """

    def __init__(
        self, in_channels: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        bottleneck_channels = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bottleneck_channels, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bottleneck_channels, growth_rate, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.relu1(self.norm1(x)))  # (N, bn_size * k, H, W)
        x = self.conv2(self.relu2(self.norm2(x)))  # (N, k, H, W)
        return self.dropout(x)


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each fed the concatenation of all earlier outputs.

    Args:
        num_layers: number of dense layers ``L``.
        in_channels: channels of the block's input ``x_0``.
        growth_rate: channels added by each layer (``k``).
        bn_size: bottleneck width multiple passed to :class:`DenseLayer`.
        drop_rate: dropout passed to :class:`DenseLayer`.

    Shape:
        ``(N, in_channels, H, W) -> (N, in_channels + num_layers * growth_rate, H, W)``.
    """

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth_rate: int,
        bn_size: int = 4,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, dim=1)))  # x_l = H_l([x_0, ..., x_{l-1}])
        return torch.cat(features, dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1-AvgPool2x2 between two dense blocks: fewer channels, half the resolution.

    Args:
        in_channels: channels ``m`` leaving the previous block.
        out_channels: ``floor(theta * m)`` for compression ``theta``.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC: a stem, dense blocks separated by transitions, BN, global pool, linear.

    Args:
        growth_rate: channels added per dense layer (``k``).
        block_config: dense layers per block.
        num_init_features: stem channels.
        bn_size: bottleneck width multiple (4 in the paper).
        drop_rate: dropout after each dense layer.
        compression: transition compression ``theta`` (0.5 in DenseNet-BC).
        num_classes: classifier outputs.
        in_channels: image channels.
        small_input: 3x3 stride-1 stem without max-pool, for 28x28 and 32x32 images (see the
            module docstring).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``; ``H, W >= 29`` (``>= 8`` with
        ``small_input``) so that the last transition still has a 2x2 map to pool.
    """

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        compression: float = 0.5,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential()
        if small_input:
            self.features.add_module(
                "conv0", nn.Conv2d(in_channels, num_init_features, 3, padding=1, bias=False)
            )
        else:
            self.features.add_module(
                "conv0",
                nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False),
            )
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        if not small_input:
            self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

        channels = num_init_features
        stages = densenet_channels(num_init_features, growth_rate, block_config, compression)
        block_sizes = iter(block_config)
        for name, out_channels in stages:
            if name.startswith("denseblock"):
                block = DenseBlock(next(block_sizes), channels, growth_rate, bn_size, drop_rate)
                self.features.add_module(name, block)
            else:
                self.features.add_module(name, Transition(channels, out_channels))
            channels = out_channels
        self.features.add_module("norm5", nn.BatchNorm2d(channels))

        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)  # He et al. 2015, as the paper
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map before pooling: ``(N, C_in, H, W) -> (N, num_features, H', W')``."""
        return self.relu(self.features(x))

    def forward_head(self, x: Tensor) -> Tensor:
        """Global average pool and classifier: ``(N, num_features, H', W') -> (N, classes)``."""
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _densenet(name: str, **kwargs: Any) -> DenseNet:
    """The factories' builder: the :class:`DenseNet` of a row of :data:`DENSENET_CONFIGS`.

    Args:
        name: the row, for example ``"densenet121"``.
        **kwargs: passed to :class:`DenseNet` (``num_classes``, ``in_channels``,
            ``small_input``, ``bn_size``, ``drop_rate``, ``compression``).
    """
    growth_rate, block_config, num_init_features = DENSENET_CONFIGS[name]
    return DenseNet(growth_rate, block_config, num_init_features, **kwargs)


def densenet121(**kwargs: Any) -> DenseNet:
    """DenseNet-121 (DenseNet-BC, Table 1)."""
    return _densenet("densenet121", **kwargs)


def densenet161(**kwargs: Any) -> DenseNet:
    """DenseNet-161 (DenseNet-BC, Table 1)."""
    return _densenet("densenet161", **kwargs)


def densenet169(**kwargs: Any) -> DenseNet:
    """DenseNet-169 (DenseNet-BC, Table 1)."""
    return _densenet("densenet169", **kwargs)


def densenet201(**kwargs: Any) -> DenseNet:
    """DenseNet-201 (DenseNet-BC, Table 1)."""
    return _densenet("densenet201", **kwargs)
