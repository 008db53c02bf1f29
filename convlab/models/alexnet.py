"""AlexNet: five convolutions and three fully connected layers, trained on two GPUs.

Paper: A. Krizhevsky, I. Sutskever, G. E. Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NeurIPS 2012 (no arXiv id). Key idea: a much deeper and wider
LeNet becomes trainable on ImageNet with ReLUs ``f(x) = max(0, x)`` instead of saturating units,
dropout in the wide fully connected layers, and GPU convolutions.

One class, two tables (see :data:`ALEXNET_TORCHVISION` and :data:`ALEXNET_PAPER`):

* :func:`alexnet` is torchvision's ``alexnet``, key for key (61,100,840 parameters). It follows
  the one-GPU network of Krizhevsky's 2014 "One weird trick" report (arXiv:1404.5997) loosely,
  and departs from the 2012 paper in: 64/192/384/256/256 channels instead of 96/256/384/384/256,
  no grouped convolutions, no local response normalization, 224 px input with conv1 padded by 2,
  an ``AdaptiveAvgPool2d((6, 6))`` before the classifier (any input of at least 63 px works), and
  dropout on the *inputs* of the two hidden fully connected layers.
* :func:`alexnet_paper` is the 2012 network: 96/256/384/384/256 channels; conv2, conv4 and conv5
  read only their own GPU's half of the previous layer, which is a grouped convolution with
  ``groups=2`` (conv1, conv3 and the fully connected layers saw every input and are ordinary);
  local response normalization after the ReLU of conv1 and conv2 (Sec. 3.3); overlapping 3x3
  stride-2 max pooling (Sec. 3.4); dropout 0.5 on the outputs of the two 4096-unit hidden layers
  (Sec. 4.2). 60,965,224 parameters, the paper's "60 million".

Input size, 224 or 227. The paper says the input is 224x224x3 and conv1 has 11x11 kernels at
stride 4, yet Figure 2 shows 55x55 maps after conv1: ``(224 - 11) / 4 + 1 = 54.25`` is not a
size. ``(227 - 11) / 4 + 1 = 55`` is, and with 227 every later layer is exact too (55 -> 27 ->
13 -> 13 -> 13 -> 6 after the last pool); Caffe's reproduction crops 227 px.
torchvision keeps 224 and pads conv1 by 2 instead (``floor((228 - 11) / 4) + 1 = 55``).
:func:`alexnet_paper` has no padding and a native input of 227x227; its adaptive average pool is
then the identity, and only lets other sizes (67 px and up) through.

Deliberate departures of :func:`alexnet_paper` from the paper:

* On two GPUs each half of conv1 and conv2's output was normalized on its own; our response
  normalization window runs over all channels, so it crosses the halves' boundary for the 2
  channels either side of it.
* Initialization: PyTorch's default (as torchvision), not the paper's ``N(0, 0.01)`` weights with
  biases of 1 in conv2, conv4, conv5 and the hidden fully connected layers.

``small_input=True`` (28x28 Fashion-MNIST, 32x32 CIFAR-10), for both factories: conv1 becomes
3x3, stride 1, padding 1 (same channels and groups); the three max pools stay (28 -> 13 -> 6 -> 2,
32 -> 15 -> 7 -> 3); the average pool goes to 1x1 (global average); the hidden fully connected
layers have 1024 units instead of 4096. The smallest input it takes is 15x15.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "ALEXNET_PAPER",
    "ALEXNET_TORCHVISION",
    "AlexNet",
    "ConvSpec",
    "alexnet",
    "alexnet_paper",
    "paper_local_response_norm",
]


class ConvSpec(NamedTuple):
    """One convolution of AlexNet's feature extractor."""

    out_channels: int
    kernel_size: int
    stride: int
    padding: int
    groups: int = 1


# torchvision's one-GPU AlexNet, 224 px: 2,469,696 parameters in the convolutions.
ALEXNET_TORCHVISION: tuple[ConvSpec, ...] = (
    ConvSpec(64, 11, 4, 2),
    ConvSpec(192, 5, 1, 2),
    ConvSpec(384, 3, 1, 1),
    ConvSpec(256, 3, 1, 1),
    ConvSpec(256, 3, 1, 1),
)

# Krizhevsky et al. 2012, Figure 2, 227 px; groups=2 is the two-GPU split. 2,334,080 parameters
# in the convolutions.
ALEXNET_PAPER: tuple[ConvSpec, ...] = (
    ConvSpec(96, 11, 4, 0),
    ConvSpec(256, 5, 1, 2, groups=2),
    ConvSpec(384, 3, 1, 1),
    ConvSpec(384, 3, 1, 1, groups=2),
    ConvSpec(256, 3, 1, 1, groups=2),
)

_POOL_AFTER = (0, 1, 4)  # max pooling follows conv1, conv2 and conv5
_NORM_AFTER = (0, 1)  # response normalization follows conv1 and conv2 (after their ReLU)


def paper_local_response_norm(
    size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> nn.LocalResponseNorm:
    """Local response normalization with the constants *as the paper writes them* (Sec. 3.3).

    The defaults are the paper's: ``n = 5``, ``alpha = 1e-4``, ``beta = 0.75``, ``k = 2``.

    The paper's ``b_i = a_i / (k + alpha * sum_j a_j^2)^beta`` sums over the ``size`` channels
    around ``i`` with no division; ``nn.LocalResponseNorm`` (like Caffe) divides ``alpha`` by
    ``size``, so it is given ``size * alpha``.

    Args:
        size: channels in the window ``n``.
        alpha: the paper's ``alpha``.
        beta: the exponent.
        k: the additive constant.

    Returns:
        The equivalent ``nn.LocalResponseNorm``.
    """
    return nn.LocalResponseNorm(size, alpha=size * alpha, beta=beta, k=k)


class AlexNet(nn.Module):
    """AlexNet: five convolutions (``features``), an average pool, three linear layers.

    Args:
        convs: the five convolutions; :data:`ALEXNET_TORCHVISION` or :data:`ALEXNET_PAPER`.
        num_classes: number of output logits.
        in_channels: channels of the input image.
        local_response_norm: normalize after the ReLU of conv1 and conv2, as the paper does.
        pooled_size: side of the average pool's output in front of the classifier.
        hidden_features: units in each of the two hidden fully connected layers.
        dropout: probability of zeroing a unit.
        dropout_on_hidden: ``True`` drops the outputs of the two hidden layers (the paper);
            ``False`` drops their inputs (torchvision).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(
        self,
        convs: Sequence[ConvSpec] = ALEXNET_TORCHVISION,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        local_response_norm: bool = False,
        pooled_size: int = 6,
        hidden_features: int = 4096,
        dropout: float = 0.5,
        dropout_on_hidden: bool = False,
    ) -> None:
        super().__init__()
        if len(convs) != 5:
            raise ValueError(f"AlexNet has five convolutions, got {len(convs)}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i, spec in enumerate(convs):
            layers.append(
                nn.Conv2d(
                    channels,
                    spec.out_channels,
                    spec.kernel_size,
                    stride=spec.stride,
                    padding=spec.padding,
                    groups=spec.groups,
                )
            )
            layers.append(nn.ReLU(inplace=True))
            if local_response_norm and i in _NORM_AFTER:
                layers.append(paper_local_response_norm())
            if i in _POOL_AFTER:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))  # overlapping: 3 > 2
            channels = spec.out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pooled_size, pooled_size))
        flat = channels * pooled_size * pooled_size
        if dropout_on_hidden:
            head: list[nn.Module] = [
                nn.Linear(flat, hidden_features),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden_features, hidden_features),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden_features, num_classes),
            ]
        else:
            head = [
                nn.Dropout(dropout),
                nn.Linear(flat, hidden_features),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden_features, hidden_features),
                nn.ReLU(inplace=True),
                nn.Linear(hidden_features, num_classes),
            ]
        self.classifier = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        """Classify a batch of images.

        Args:
            x: images, ``(N, in_channels, H, W)``.

        Returns:
            Logits, ``(N, num_classes)``.
        """
        x = self.avgpool(self.features(x))  # (N, 256, pooled_size, pooled_size)
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)


def _small(convs: Sequence[ConvSpec]) -> tuple[ConvSpec, ...]:
    # 3x3 stride-1 first convolution for 28-32 px images; channels and groups unchanged.
    return (convs[0]._replace(kernel_size=3, stride=1, padding=1), *convs[1:])


def alexnet(
    *, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> AlexNet:
    """torchvision's one-GPU AlexNet (61,100,840 parameters at the defaults; native 224 px).

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image.
        small_input: 3x3 stride-1 conv1, global average pool, 1024-unit hidden layers, for
            28-32 px images (see the module docstring).
        **kwargs: passed to :class:`AlexNet` (for example ``dropout``).

    Returns:
        An :class:`AlexNet`.
    """
    convs = _small(ALEXNET_TORCHVISION) if small_input else ALEXNET_TORCHVISION
    if small_input:
        kwargs = {"pooled_size": 1, "hidden_features": 1024, **kwargs}
    return AlexNet(convs, num_classes=num_classes, in_channels=in_channels, **kwargs)


def alexnet_paper(
    *, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> AlexNet:
    """The 2012 two-GPU AlexNet as grouped convolutions (60,965,224 parameters; native 227 px).

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image.
        small_input: 3x3 stride-1 conv1, global average pool, 1024-unit hidden layers, for
            28-32 px images (see the module docstring).
        **kwargs: passed to :class:`AlexNet` (for example ``dropout``).

    Returns:
        An :class:`AlexNet` with response normalization and dropout on the hidden layers.
    """
    convs = _small(ALEXNET_PAPER) if small_input else ALEXNET_PAPER
    if small_input:
        kwargs = {"pooled_size": 1, "hidden_features": 1024, **kwargs}
    kwargs = {"local_response_norm": True, "dropout_on_hidden": True, **kwargs}
    return AlexNet(convs, num_classes=num_classes, in_channels=in_channels, **kwargs)
