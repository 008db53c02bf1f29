"""VGG: networks built from one repeated block of 3x3 convolutions and a 2x2 max pool.

Paper: K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", 2014 (arXiv:1409.1556). Key idea: a stack of ``n`` 3x3 convolutions sees a
``(2n + 1) x (2n + 1)`` window with ``9 n C^2`` weights and ``n`` ReLUs, fewer weights and more
nonlinearity than one large kernel (three 3x3 layers: ``27 C^2`` against ``49 C^2`` for 7x7), so
depth is added block by block: ``((num_convs, channels), ...)`` below is Table 1 of the paper.

Configurations A, B, D, E of Table 1 are :func:`vgg11`, :func:`vgg13`, :func:`vgg16`,
:func:`vgg19`; the ``_bn`` variants put ``BatchNorm2d`` between each convolution and its ReLU.
Every factory takes ``small_input`` (below) and the keyword arguments of :class:`VGG`
(``num_classes``, ``in_channels``, ``dropout``, ...); :data:`VGG_PARAMS` records its size. With the
defaults every factory is torchvision's model of the same name, key for key.

Departures from the paper, all shared with torchvision:

* Batch normalization (the ``_bn`` variants) postdates the paper (Ioffe and Szegedy 2015).
* An ``AdaptiveAvgPool2d((7, 7))`` sits in front of the classifier, so inputs other than 224 px
  work (the smallest is 32 px, where the 1x1 map is copied to 7x7). At 224 px it is the identity.
  The paper's dense evaluation turned the fully connected layers into convolutions instead.
* Configurations A-LRN (local response normalization) and C (1x1 convolutions) are left out.
* Initialization is He et al. 2015 (fan-out) for the convolutions and ``N(0, 0.01^2)`` for the
  linear layers. The paper drew weights with variance ``1e-2``, trained A that way, and started
  the deeper configurations' first four convolutions and three linear layers from A's.

``small_input=True`` (28x28 Fashion-MNIST, 32x32 CIFAR-10): the fifth max pool is left out (at
28 px it would pool a 1x1 map to nothing), the average pool goes to 1x1 (global average), and the
classifier is ``512 -> 512 -> 512 -> num_classes`` with the same ReLUs and dropout. The
convolutions are unchanged. The smallest input it takes is 16x16.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "VGG",
    "VGG11",
    "VGG13",
    "VGG16",
    "VGG19",
    "VGG_PARAMS",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vgg_block",
]

# Table 1 of the paper as (num_convs, channels) per stage.
VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))  # A
VGG13 = ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512))  # B
VGG16 = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))  # D
VGG19 = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))  # E

# Parameters of each factory's network at the defaults, 1000 classes (torchvision's model of the
# same name).
VGG_PARAMS: dict[str, int] = {
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
}


def vgg_block(
    num_convs: int, in_channels: int, out_channels: int, batch_norm: bool = False
) -> nn.Sequential:
    """``num_convs`` times (3x3 convolution, [batch norm], ReLU), then a 2x2 max pool.

    Args:
        num_convs: convolutions in the block.
        in_channels: channels of the block's input.
        out_channels: channels of every convolution in the block.
        batch_norm: put ``BatchNorm2d`` between each convolution and its ReLU.

    Returns:
        The block; its children are numbered so that concatenated blocks give torchvision's
        ``features.N`` keys.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2)``.
    """
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers.append(
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1)
        )
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: ``features`` (the blocks, as one flat ``nn.Sequential``), ``avgpool``, ``classifier``.

    Args:
        stages: ``(num_convs, channels)`` per block, for example :data:`VGG16`.
        num_classes: number of output logits.
        in_channels: channels of the input image.
        batch_norm: batch norm after every convolution.
        final_pool: keep the max pool of the last block.
        pooled_size: side of the average pool's output in front of the classifier.
        hidden_features: units in each of the two hidden fully connected layers.
        dropout: probability of zeroing a hidden unit.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``, ``H, W >= 32`` (16 without the final
        pool).
    """

    def __init__(
        self,
        stages: Sequence[tuple[int, int]],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        final_pool: bool = True,
        pooled_size: int = 7,
        hidden_features: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for num_convs, out_channels in stages:
            layers.extend(vgg_block(num_convs, channels, out_channels, batch_norm))
            channels = out_channels
        if not final_pool:
            layers.pop()
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pooled_size, pooled_size))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pooled_size * pooled_size, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Classify a batch of images.

        Args:
            x: images, ``(N, in_channels, H, W)``.

        Returns:
            Logits, ``(N, num_classes)``.
        """
        x = self.avgpool(self.features(x))  # (N, 512, pooled_size, pooled_size)
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)


def _vgg(
    stages: Sequence[tuple[int, int]],
    batch_norm: bool,
    *,
    small_input: bool = False,
    **kwargs: Any,
) -> VGG:
    """The factories' builder: a :class:`VGG`, with the small-input defaults when asked.

    Args:
        stages: a configuration of Table 1, for example :data:`VGG16`.
        batch_norm: batch norm after every convolution (the ``_bn`` factories).
        small_input: the 28-32 px configuration of the module docstring (``final_pool=False``,
            ``pooled_size=1``, ``hidden_features=512``), each setting overridable.
        **kwargs: passed to :class:`VGG` (``num_classes``, ``in_channels``, ``dropout``, ...).
    """
    if small_input:
        kwargs = {"final_pool": False, "pooled_size": 1, "hidden_features": 512, **kwargs}
    return VGG(stages, batch_norm=batch_norm, **kwargs)


def vgg11(**kwargs: Any) -> VGG:
    """VGG-11, configuration A."""
    return _vgg(VGG11, False, **kwargs)


def vgg11_bn(**kwargs: Any) -> VGG:
    """VGG-11, configuration A, with batch norm."""
    return _vgg(VGG11, True, **kwargs)


def vgg13(**kwargs: Any) -> VGG:
    """VGG-13, configuration B."""
    return _vgg(VGG13, False, **kwargs)


def vgg13_bn(**kwargs: Any) -> VGG:
    """VGG-13, configuration B, with batch norm."""
    return _vgg(VGG13, True, **kwargs)


def vgg16(**kwargs: Any) -> VGG:
    """VGG-16, configuration D."""
    return _vgg(VGG16, False, **kwargs)


def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16, configuration D, with batch norm."""
    return _vgg(VGG16, True, **kwargs)


def vgg19(**kwargs: Any) -> VGG:
    """VGG-19, configuration E."""
    return _vgg(VGG19, False, **kwargs)


def vgg19_bn(**kwargs: Any) -> VGG:
    """VGG-19, configuration E, with batch norm."""
    return _vgg(VGG19, True, **kwargs)
