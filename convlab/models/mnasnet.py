"""MnasNet: Tan, Chen, Pang, Vasudevan, Sandler, Howard and Le 2019, "MnasNet: Platform-Aware
Neural Architecture Search for Mobile" (arXiv:1807.11626).

Key idea: search architectures for the multi-objective reward (Eq. 2)
``ACC(m) * [LAT(m) / T]^w`` with ``w = alpha`` if ``LAT(m) <= T`` else ``beta``, where the latency
``LAT`` is measured on the target phone and ``T`` is the target latency; the soft constraint
``alpha = beta = -0.07`` (:func:`reward`) trades about 5% relative accuracy for 2x latency.

Two families live here:

* :func:`mnasnet0_5`, :func:`mnasnet1_0` (:class:`MnasNet`): torchvision's models of those names,
  key-for-key (``layers``, ``classifier``). They are the *MnasNet-B1* network of the reference
  TensorFlow code (the search result of the paper's first arXiv version): MBConv blocks with ReLU
  and no squeeze-and-excitation, every width scaled by ``alpha`` and rounded with
  :func:`~convlab.layers.make_divisible` except the 1280-channel head. Its blocks are
  :class:`InvertedResidual`, whose flat ``layers`` Sequential (conv, BN, ReLU, ...) is
  torchvision's checkpoint layout; :class:`~convlab.models.efficientnet.MBConv` computes the same
  function with nested names.
* :func:`mnasnet_a1` (:class:`MnasNetA1`): MnasNet-A1 of the paper's Fig. 7, built from
  :class:`~convlab.models.efficientnet.MBConv` with ReLU and optional SE. torchvision has no A1.

Departures and conventions, all deliberate:

* :class:`MnasNet` uses torchvision's batch norm momentum ``1 - 0.9997`` (PyTorch convention) and
  eps ``1e-5``; :class:`MnasNetA1` uses the reference code's eps ``1e-3`` but PyTorch's
  momentum 0.1 rather than its decay of 0.99 (momentum 0.01), which suits short runs (see the
  class).
* MnasNet-A1's SE bottleneck is ``max(1, int(0.25 * in_channels))`` channels, a quarter of the
  block's *input* channels, with ReLU inside and a sigmoid gate, as in the reference code. This
  gives the paper's "3.9M" parameters with 1000 classes (:data:`MNASNET_PARAMS`, 0.3% below: the
  paper rounds). A quarter of the *expanded* channels (the SE paper's convention) would give
  5,139,518, and no SE at all 3,629,072.
* MnasNet-A1's "SepConv" is an MBConv with ``expand_ratio = 1`` and no SE: depthwise 3x3, BN,
  ReLU, pointwise 1x1, BN (32 -> 16 channels, so no shortcut).
* Classifier dropout 0.2 (reference code); no stochastic depth in MnasNet.
* ``small_input=True`` (all three factories) makes the stem convolution stride 1 instead of 2;
  nothing else changes. A 32x32 image leaves the last stage at 2x2 instead of 1x1.

The factories take the keyword arguments of their class (``num_classes``, ``in_channels``,
``small_input``, ``dropout``); :data:`MNASNET_PARAMS` records their sizes.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import Tensor, nn

from convlab.layers import make_divisible
from convlab.models.efficientnet import EfficientNet, MBConvStage, init_weights

__all__ = [
    "BN_MOMENTUM",
    "HEAD_CHANNELS",
    "MNASNET_A1",
    "MNASNET_B1",
    "MNASNET_PARAMS",
    "STEM_CHANNELS",
    "InvertedResidual",
    "MnasNet",
    "MnasNetA1",
    "mnasnet0_5",
    "mnasnet1_0",
    "mnasnet_a1",
    "reward",
]


def reward(
    accuracy: float,
    latency: float,
    target: float,
    w: float = -0.07,
    *,
    beta: float | None = None,
) -> float:
    """The MnasNet search objective, Eq. 2: ``ACC(m) * [LAT(m) / T]^w``.

    With the default soft constraint (``alpha = beta = w = -0.07``) a model twice as slow must be
    about 5% more accurate (relative) to earn the same reward, since ``2^-0.07 = 0.953``; a model
    faster than the target is rewarded too. The hard constraint of the paper is ``w = 0,
    beta = -1``: no bonus below the target, a steep penalty above it.

    Args:
        accuracy: ``ACC(m)``, for example top-1 accuracy in ``[0, 1]``.
        latency: ``LAT(m)``, measured inference latency (any unit, the same as ``target``).
        target: ``T``, the target latency.
        w: the exponent ``alpha`` used when ``latency <= target``.
        beta: the exponent used when ``latency > target``; ``None`` means ``w`` (soft
            constraint ``alpha = beta``).

    Returns:
        The reward, in the units of ``accuracy``.
    """
    if accuracy < 0:
        raise ValueError(f"accuracy must be non-negative, got {accuracy}")
    if latency <= 0 or target <= 0:
        raise ValueError(f"latency and target must be positive, got {latency} and {target}")
    exponent = w if beta is None or latency <= target else beta
    return accuracy * (latency / target) ** exponent


# ----------------------------------------------------------------------------------------------
# torchvision's MnasNet (the reference code's MnasNet-B1)

BN_MOMENTUM = 1 - 0.9997  # torchvision's MnasNet: a TensorFlow decay of 0.9997
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280  # not scaled by alpha

MNASNET_B1: tuple[MBConvStage, ...] = (
    # stage, expand_ratio, kernel_size, stride, out_channels, num_layers, se_ratio
    MBConvStage(2, 1, 3, 1, 16, 1, None),  # SepConv, k3x3, 112x112
    MBConvStage(3, 3, 3, 2, 24, 3, None),  # MBConv3, k3x3, 112x112
    MBConvStage(4, 3, 5, 2, 40, 3, None),  # MBConv3, k5x5, 56x56
    MBConvStage(5, 6, 5, 2, 80, 3, None),  # MBConv6, k5x5, 28x28
    MBConvStage(6, 6, 3, 1, 96, 2, None),  # MBConv6, k3x3, 14x14
    MBConvStage(7, 6, 5, 2, 192, 4, None),  # MBConv6, k5x5, 14x14
    MBConvStage(8, 6, 3, 1, 320, 1, None),  # MBConv6, k3x3, 7x7
)


class InvertedResidual(nn.Module):
    """MBConv without SE, with torchvision's flat MnasNet layout ``layers.0`` ... ``layers.7``.

    Expand 1x1 -> BN -> ReLU -> depthwise kxk -> BN -> ReLU -> project 1x1 -> BN, plus the
    identity when ``stride == 1`` and ``in_channels == out_channels``. The expansion is left out
    when ``expand_ratio == 1``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel size.
        stride: depthwise stride, 1 or 2.
        expand_ratio: hidden width as a multiple of ``in_channels``.
        bn_momentum: momentum of every batch norm.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride}")
        hidden_channels = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [
                nn.Conv2d(in_channels, hidden_channels, 1, bias=False),
                nn.BatchNorm2d(hidden_channels, momentum=bn_momentum),
                nn.ReLU(inplace=True),
            ]
        layers += [
            nn.Conv2d(
                hidden_channels,
                hidden_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=hidden_channels,
                bias=False,
            ),
            nn.BatchNorm2d(hidden_channels, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, out_channels, 1, bias=False),  # linear bottleneck
            nn.BatchNorm2d(out_channels, momentum=bn_momentum),
        ]
        self.layers = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(x)
        return out + x if self.use_residual else out


class MnasNet(nn.Module):
    """torchvision's MnasNet (MnasNet-B1): flat ``layers`` Sequential, then dropout and linear.

    ``layers[0:3]`` is the stem (conv 3x3 stride 2, BN, ReLU), ``layers[3:8]`` the SepConv
    (depthwise 3x3, BN, ReLU, 1x1, BN), ``layers[8:14]`` one Sequential of
    :class:`InvertedResidual` per row of :data:`MNASNET_B1` after the first, ``layers[14:17]``
    the 1x1 head conv to 1280 channels, BN, ReLU.

    Args:
        alpha: width multiplier (the "depth multiplier" of the MobileNet papers).
        num_classes: classifier outputs.
        dropout: dropout before the classifier.
        in_channels: image channels.
        small_input: stride-1 stem for 28x28 and 32x32 images.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` for any ``H, W >= 1``.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.2,
        in_channels: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        stem = make_divisible(STEM_CHANNELS * alpha, 8)
        sepconv, *stages = MNASNET_B1
        sep_out = make_divisible(sepconv.out_channels * alpha, 8)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, stem, 3, stride=1 if small_input else 2, padding=1, bias=False),
            nn.BatchNorm2d(stem, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem, stem, 3, padding=1, groups=stem, bias=False),
            nn.BatchNorm2d(stem, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem, sep_out, 1, bias=False),
            nn.BatchNorm2d(sep_out, momentum=BN_MOMENTUM),
        ]
        channels = sep_out
        for row in stages:
            out = make_divisible(row.out_channels * alpha, 8)
            blocks = [
                InvertedResidual(
                    channels if i == 0 else out,
                    out,
                    row.kernel_size,
                    row.stride if i == 0 else 1,
                    row.expand_ratio,
                    bn_momentum=BN_MOMENTUM,
                )
                for i in range(row.num_layers)
            ]
            layers.append(nn.Sequential(*blocks))
            channels = out
        layers += [
            nn.Conv2d(channels, HEAD_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(HEAD_CHANNELS, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ]
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(HEAD_CHANNELS, num_classes))
        self.num_features = HEAD_CHANNELS
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map before pooling: ``(N, C_in, H, W) -> (N, 1280, H', W')``."""
        return self.layers(x)

    def forward_head(self, x: Tensor) -> Tensor:
        """Global average pool, dropout, linear: ``(N, 1280, H', W') -> (N, num_classes)``."""
        return self.classifier(x.mean(dim=(2, 3)))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------------------------
# MnasNet-A1, the paper's Fig. 7

MNASNET_A1: tuple[MBConvStage, ...] = (
    # stage, expand_ratio, kernel_size, stride, out_channels, num_layers, se_ratio
    MBConvStage(2, 1, 3, 1, 16, 1, None),  # SepConv, k3x3 -> 112x112x16
    MBConvStage(3, 6, 3, 2, 24, 2, None),  # MBConv6, k3x3, x2 -> 56x56x24
    MBConvStage(4, 3, 5, 2, 40, 3, 0.25),  # MBConv3, k5x5, SE, x3 -> 28x28x40
    MBConvStage(5, 6, 3, 2, 80, 4, None),  # MBConv6, k3x3, x4 -> 14x14x80
    MBConvStage(6, 6, 3, 1, 112, 2, 0.25),  # MBConv6, k3x3, SE, x2 -> 14x14x112
    MBConvStage(7, 6, 5, 2, 160, 3, 0.25),  # MBConv6, k5x5, SE, x3 -> 7x7x160
    MBConvStage(8, 6, 3, 1, 320, 1, None),  # MBConv6, k3x3, x1 -> 7x7x320
)


class MnasNetA1(EfficientNet):
    """MnasNet-A1: stem conv 3x3 (32), the :data:`MNASNET_A1` stages, 1x1 conv (1280), pool, FC.

    The same network skeleton as :class:`~convlab.models.efficientnet.EfficientNet` (whose
    search space descends from MnasNet's), with the searched table instead of B0's, ReLU
    everywhere, no stochastic depth, and the reference code's batch-norm eps ``1e-3`` with
    PyTorch's momentum 0.1 (the reference code's decay of 0.99, momentum 0.01 here, leaves the
    running statistics far from the data after a short run: 10% test accuracy on the quick
    digits recipe, against 88% with 0.1). Module layout: ``features[0]`` stem, ``features[1:-1]`` stages of
    :class:`~convlab.models.efficientnet.MBConv`, ``features[-1]`` head; ``avgpool``;
    ``classifier`` = Dropout + Linear.

    Args:
        num_classes: classifier outputs.
        dropout: dropout before the classifier.
        in_channels: image channels.
        small_input: stride-1 stem for 28x28 and 32x32 images.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` for any ``H, W >= 1``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        dropout: float = 0.2,
        in_channels: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__(
            dropout=dropout,
            stages=MNASNET_A1,
            stochastic_depth_prob=0.0,
            num_classes=num_classes,
            in_channels=in_channels,
            small_input=small_input,
            norm_layer=partial(nn.BatchNorm2d, eps=1e-3),
            activation=nn.ReLU,
        )


# ----------------------------------------------------------------------------------------------
# Factories

# Parameters of each factory's network with 1000 classes: torchvision's models of the same name for
# B1, ours for A1 (the paper: 3.9M).
MNASNET_PARAMS: dict[str, int] = {
    "mnasnet0_5": 2_218_512,
    "mnasnet1_0": 4_383_312,
    "mnasnet_a1": 3_887_038,
}


def mnasnet0_5(**kwargs: Any) -> MnasNet:
    """MnasNet-B1 at width 0.5, torchvision's ``mnasnet0_5``."""
    return MnasNet(0.5, **kwargs)


def mnasnet1_0(**kwargs: Any) -> MnasNet:
    """MnasNet-B1 at width 1.0, torchvision's ``mnasnet1_0``."""
    return MnasNet(1.0, **kwargs)


def mnasnet_a1(**kwargs: Any) -> MnasNetA1:
    """MnasNet-A1, the paper's Fig. 7 (torchvision has no A1)."""
    return MnasNetA1(**kwargs)
