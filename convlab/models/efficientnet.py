"""EfficientNet: Tan and Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks" (arXiv:1905.11946).

Key idea (compound scaling, Eq. 3): grow depth, width and resolution together,
``d = alpha^phi, w = beta^phi, r = gamma^phi`` with ``alpha * beta^2 * gamma^2 ~ 2``, so every
unit of ``phi`` roughly doubles the FLOPs of the baseline EfficientNet-B0 (Table 1, a MnasNet-style
network of MBConv blocks with squeeze-and-excitation).

The building block is the mobile inverted bottleneck ``MBConv`` (Sandler et al. 2018; Tan et al.
2019): 1x1 expansion by ``expand_ratio``, depthwise kxk convolution, squeeze-and-excitation,
linear 1x1 projection, and an identity shortcut (with stochastic depth) when shapes allow.
Module names and positions follow torchvision's ``efficientnet_b0`` ... ``efficientnet_b7``
(``features.N``, ``block`` inside each MBConv, ``avgpool``, ``classifier`` = Dropout + Linear) so
its state dicts load with ``strict=True``.

Every factory (``efficientnet_b0`` ... ``efficientnet_b7``) builds one row of
:data:`EFFICIENTNET_VARIANTS` and takes the keyword arguments of :class:`EfficientNet`, with
``dropout`` and ``norm_layer`` defaulting to the row's; :data:`EFFICIENTNET_PARAMS` records its
size.

Departures and where the official numbers differ from the paper's text:

* B1-B7 use the official per-variant table (:data:`EFFICIENTNET_VARIANTS`, from the reference
  TensorFlow code), not ``compound_scaling(phi)`` for an integer ``phi``; the paper never lists
  its ``phi`` values. :func:`scaling_table` puts both side by side.
* Widths are rounded with :func:`~convlab.layers.make_divisible` (multiples of 8), depths by
  ``ceil``, as the reference code; the paper only gives the real-valued multipliers.
* Batch norm: the reference code uses ``eps = 1e-3`` and decay 0.99 (PyTorch momentum 0.01). We
  follow torchvision, whose B0-B4 use PyTorch's defaults (``eps = 1e-5``, momentum 0.1) and B5-B7
  the reference values, so torchvision's checkpoints give identical outputs.
* Stochastic depth (Huang et al. 2016) with a drop probability rising linearly from 0 to
  ``0.2 * (n - 1) / n`` over the ``n`` blocks, as the reference code and torchvision do (the paper
  only says "stochastic depth with survival probability 0.8").
* ``small_input=True`` makes the stem convolution stride 1 (instead of 2); nothing else changes.
  A 32x32 image then leaves the last stage at 2x2 instead of 1x1 and 28x28 works too. This is not
  from the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from convlab.layers import ConvBNAct, SqueezeExcitation, StochasticDepth, make_divisible

__all__ = [
    "BASE_RESOLUTION",
    "EFFICIENTNET_B0",
    "EFFICIENTNET_PARAMS",
    "EFFICIENTNET_VARIANTS",
    "HEAD_CHANNELS",
    "NATIVE_RESOLUTION",
    "STEM_CHANNELS",
    "CompoundScaling",
    "EfficientNet",
    "EfficientNetVariant",
    "MBConv",
    "MBConvStage",
    "ScalingRow",
    "compound_scaling",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "init_weights",
    "mbconv_stages",
    "scale_depth",
    "scale_stages",
    "scale_width",
    "scaling_table",
]


# ----------------------------------------------------------------------------------------------
# The block


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand 1x1 -> depthwise kxk -> SE -> project 1x1 (+ shortcut).

    ``block`` holds, in order: the expansion ``ConvBNAct`` (absent when ``expand_ratio == 1``),
    the depthwise ``ConvBNAct``, the :class:`~convlab.layers.SqueezeExcitation` (absent when
    ``se_ratio is None``) and the projection ``ConvBNAct`` without activation (a linear
    bottleneck). The shortcut exists when ``stride == 1`` and ``in_channels == out_channels``; its
    residual branch then passes through stochastic depth.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel (3 or 5 in EfficientNet and MnasNet).
        stride: depthwise stride, 1 or 2.
        expand_ratio: hidden width as a multiple of ``in_channels`` (the 6 of "MBConv6").
        se_ratio: SE bottleneck as a fraction of the block's *input* channels,
            ``max(1, int(in_channels * se_ratio))``, the convention of the EfficientNet and
            MnasNet reference code; ``None`` for no SE.
        stochastic_depth_prob: probability of dropping the residual branch while training.
        activation: nonlinearity of the expansion, depthwise and SE layers (SiLU, a.k.a. swish,
            in EfficientNet; ReLU in MnasNet).
        norm_layer: builds a norm layer from a channel count.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        expand_ratio: int = 6,
        se_ratio: float | None = 0.25,
        stochastic_depth_prob: float = 0.0,
        activation: Callable[[], nn.Module] = nn.SiLU,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"MBConv: stride must be 1 or 2, got {stride}")
        hidden_channels = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(
                ConvBNAct(
                    in_channels, hidden_channels, 1, norm_layer=norm_layer, activation=activation
                )
            )
        layers.append(
            ConvBNAct(
                hidden_channels,
                hidden_channels,
                kernel_size,
                stride=stride,
                groups=hidden_channels,
                norm_layer=norm_layer,
                activation=activation,
            )
        )
        if se_ratio is not None:
            squeeze_channels = max(1, int(in_channels * se_ratio))
            layers.append(
                SqueezeExcitation(hidden_channels, squeeze_channels, activation=activation)
            )
        layers.append(
            ConvBNAct(hidden_channels, out_channels, 1, norm_layer=norm_layer, activation=None)
        )
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_residual:
            out = self.stochastic_depth(out) + x
        return out


# ----------------------------------------------------------------------------------------------
# The B0 table and its scaling


@dataclass(frozen=True)
class MBConvStage:
    """One row of a stage table such as the paper's Table 1: ``num_layers`` identical MBConvs.

    Only the first block of a stage has ``stride``; the others have stride 1 and a shortcut.

    Attributes:
        stage: the row number in the paper's table (the stem is stage 1).
        expand_ratio: expansion of the hidden layer (1 or 6 in EfficientNet-B0).
        kernel_size: depthwise kernel size.
        stride: stride of the first block.
        out_channels: channels ``C_i`` of every block of the stage.
        num_layers: number of blocks ``L_i``.
        se_ratio: squeeze-and-excitation ratio to the block input, ``None`` for none.
    """

    stage: int
    expand_ratio: int
    kernel_size: int
    stride: int
    out_channels: int
    num_layers: int
    se_ratio: float | None = 0.25

    @property
    def operator(self) -> str:
        """The paper's name for the block, for example ``"MBConv6, k5x5"``."""
        k = self.kernel_size
        return f"MBConv{self.expand_ratio}, k{k}x{k}"


STEM_CHANNELS = 32  # stage 1: Conv3x3, stride 2, 224x224 -> 112x112
HEAD_CHANNELS = 1280  # stage 9: Conv1x1 & Pooling & FC on 7x7

# Table 1 of the paper. The input resolution of each stage (at 224x224) is in the comment; a
# stage has stride 2 exactly when the next stage's resolution is half its own.
EFFICIENTNET_B0: tuple[MBConvStage, ...] = (
    # stage, expand_ratio, kernel_size, stride, out_channels, num_layers
    MBConvStage(2, 1, 3, 1, 16, 1),  # MBConv1, k3x3, 112x112
    MBConvStage(3, 6, 3, 2, 24, 2),  # MBConv6, k3x3, 112x112
    MBConvStage(4, 6, 5, 2, 40, 2),  # MBConv6, k5x5, 56x56
    MBConvStage(5, 6, 3, 2, 80, 3),  # MBConv6, k3x3, 28x28
    MBConvStage(6, 6, 5, 1, 112, 3),  # MBConv6, k5x5, 14x14
    MBConvStage(7, 6, 5, 2, 192, 4),  # MBConv6, k5x5, 14x14
    MBConvStage(8, 6, 3, 1, 320, 1),  # MBConv6, k3x3, 7x7
)


def scale_width(channels: int, width_mult: float) -> int:
    """``channels * width_mult`` rounded to a multiple of 8 (never more than 10% down)."""
    return make_divisible(channels * width_mult, 8)


def scale_depth(num_layers: int, depth_mult: float) -> int:
    """``ceil(num_layers * depth_mult)``: a stage never loses a layer."""
    return math.ceil(num_layers * depth_mult)


def scale_stages(
    stages: Sequence[MBConvStage], width_mult: float = 1.0, depth_mult: float = 1.0
) -> tuple[MBConvStage, ...]:
    """Apply width and depth multipliers to a stage table.

    Args:
        stages: the baseline table, for example :data:`EFFICIENTNET_B0`.
        width_mult: channel multiplier ``w``.
        depth_mult: layer-count multiplier ``d``.

    Returns:
        The table with ``out_channels`` rounded by :func:`scale_width` and ``num_layers`` by
        :func:`scale_depth`.
    """
    return tuple(
        replace(
            row,
            out_channels=scale_width(row.out_channels, width_mult),
            num_layers=scale_depth(row.num_layers, depth_mult),
        )
        for row in stages
    )


class CompoundScaling(NamedTuple):
    """Multipliers given by Eq. 3 for one value of ``phi``."""

    depth_mult: float
    width_mult: float
    resolution: float


BASE_RESOLUTION = 224  # EfficientNet-B0's input side, pixels


def compound_scaling(
    phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15
) -> CompoundScaling:
    """The paper's compound scaling rule (Eq. 3): ``d = alpha^phi, w = beta^phi, r = gamma^phi``.

    FLOPs of a convolutional network grow like ``d * w^2 * r^2``, so the constraint
    ``alpha * beta^2 * gamma^2 ~ 2`` makes them grow by about ``2^phi``. The defaults are the
    grid-searched values for B0 (Section 4): ``1.2 * 1.1^2 * 1.15^2 = 1.92``.

    Args:
        phi: the compound coefficient (0 gives B0).
        alpha: depth base.
        beta: width base.
        gamma: resolution base.

    Returns:
        ``(depth_mult, width_mult, resolution)``; the resolution is ``224 * gamma^phi`` pixels,
        unrounded.
    """
    return CompoundScaling(alpha**phi, beta**phi, BASE_RESOLUTION * gamma**phi)


@dataclass(frozen=True)
class EfficientNetVariant:
    """The official hyperparameters of one EfficientNet model.

    Attributes:
        width_mult: channel multiplier.
        depth_mult: layer-count multiplier.
        resolution: native (training and evaluation) input side, pixels.
        dropout: dropout before the classifier.
        bn_eps: batch-norm epsilon (torchvision's choice, see the module docstring).
        bn_momentum: batch-norm momentum, PyTorch convention (1 - TensorFlow's decay).
    """

    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1


# The reference code's table (efficientnet_builder.py), not Eq. 3.
EFFICIENTNET_VARIANTS: dict[str, EfficientNetVariant] = {
    "efficientnet_b0": EfficientNetVariant(1.0, 1.0, 224, 0.2),
    "efficientnet_b1": EfficientNetVariant(1.0, 1.1, 240, 0.2),
    "efficientnet_b2": EfficientNetVariant(1.1, 1.2, 260, 0.3),
    "efficientnet_b3": EfficientNetVariant(1.2, 1.4, 300, 0.3),
    "efficientnet_b4": EfficientNetVariant(1.4, 1.8, 380, 0.4),
    "efficientnet_b5": EfficientNetVariant(1.6, 2.2, 456, 0.4, 1e-3, 0.01),
    "efficientnet_b6": EfficientNetVariant(1.8, 2.6, 528, 0.5, 1e-3, 0.01),
    "efficientnet_b7": EfficientNetVariant(2.0, 3.1, 600, 0.5, 1e-3, 0.01),
}

# Parameters of each variant's network with 1000 classes (torchvision's model of the same name).
EFFICIENTNET_PARAMS: dict[str, int] = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
}

# Native input side per model name, pixels (for the model registry).
NATIVE_RESOLUTION: dict[str, int] = {
    name: variant.resolution for name, variant in EFFICIENTNET_VARIANTS.items()
}


@dataclass(frozen=True)
class ScalingRow:
    """Official multipliers of one variant beside Eq. 3's for ``phi`` = the variant's index.

    ``*_flops`` is the ideal FLOPs factor over B0, ``depth * width^2 * (resolution / 224)^2``,
    before the rounding of channels and layers.
    """

    name: str
    phi: int
    official_depth: float
    formula_depth: float
    official_width: float
    formula_width: float
    official_resolution: int
    formula_resolution: float
    official_flops: float
    formula_flops: float


def scaling_table() -> list[ScalingRow]:
    """Where the official B0-B7 table departs from ``compound_scaling(phi)`` with ``phi = 0..7``.

    The official multipliers grow more slowly at first: B1 scales depth by 1.1 and keeps the
    width, while Eq. 3 with ``phi = 1`` asks for 1.2 and 1.1 (about 1.3x instead of 1.9x the
    FLOPs). By B7 the two meet again in width and resolution (2.0 vs 1.95, 600 vs 596 px), with
    less depth than the formula (3.1 vs 3.6).

    Returns:
        One :class:`ScalingRow` per variant, B0 first.
    """
    rows = []
    for phi, (name, variant) in enumerate(EFFICIENTNET_VARIANTS.items()):
        formula = compound_scaling(phi)
        rows.append(
            ScalingRow(
                name=name,
                phi=phi,
                official_depth=variant.depth_mult,
                formula_depth=formula.depth_mult,
                official_width=variant.width_mult,
                formula_width=formula.width_mult,
                official_resolution=variant.resolution,
                formula_resolution=formula.resolution,
                official_flops=_flops_factor(
                    variant.depth_mult, variant.width_mult, variant.resolution
                ),
                formula_flops=_flops_factor(
                    formula.depth_mult, formula.width_mult, formula.resolution
                ),
            )
        )
    return rows


def _flops_factor(depth_mult: float, width_mult: float, resolution: float) -> float:
    return depth_mult * width_mult**2 * (resolution / BASE_RESOLUTION) ** 2


# ----------------------------------------------------------------------------------------------
# The network


def mbconv_stages(
    stages: Sequence[MBConvStage],
    in_channels: int,
    *,
    stochastic_depth_prob: float = 0.0,
    activation: Callable[[], nn.Module] = nn.SiLU,
    norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
) -> list[nn.Sequential]:
    """Build one ``nn.Sequential`` of :class:`MBConv` blocks per table row.

    The drop probability of block ``i`` of ``n`` (counted over all stages, from 0) is
    ``stochastic_depth_prob * i / n``.

    Args:
        stages: the (already scaled) table.
        in_channels: channels entering the first stage.
        stochastic_depth_prob: the drop probability that the last block approaches.
        activation: passed to every :class:`MBConv`.
        norm_layer: passed to every :class:`MBConv`.

    Returns:
        The stages, in order.
    """
    total_blocks = sum(row.num_layers for row in stages)
    block_index = 0
    built = []
    for row in stages:
        blocks = []
        for i in range(row.num_layers):
            blocks.append(
                MBConv(
                    in_channels if i == 0 else row.out_channels,
                    row.out_channels,
                    row.kernel_size,
                    stride=row.stride if i == 0 else 1,
                    expand_ratio=row.expand_ratio,
                    se_ratio=row.se_ratio,
                    stochastic_depth_prob=stochastic_depth_prob * block_index / total_blocks,
                    activation=activation,
                    norm_layer=norm_layer,
                )
            )
            block_index += 1
        built.append(nn.Sequential(*blocks))
        in_channels = row.out_channels
    return built


def init_weights(model: nn.Module) -> None:
    """Initialize as the MnasNet and EfficientNet reference code does, in place.

    Convolutions: He normal with fan-out; batch norm: ``gamma = 1, beta = 0``; linear layers:
    uniform in ``+-1 / sqrt(out_features)``; all biases zero.

    Args:
        model: the network whose submodules are initialized.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


class EfficientNet(nn.Module):
    """Stem conv, MBConv stages, 1x1 head conv, global average pool, dropout, linear.

    ``features[0]`` is the stem, ``features[1:-1]`` the stages of the table, ``features[-1]``
    the head convolution.

    Args:
        width_mult: channel multiplier ``w`` (applied to stem, stages and head).
        depth_mult: layer-count multiplier ``d``.
        dropout: dropout probability before the classifier.
        stages: the baseline table (EfficientNet-B0's Table 1 by default).
        stochastic_depth_prob: drop probability approached by the last block.
        num_classes: classifier outputs.
        in_channels: image channels.
        small_input: stride-1 stem for 28x28 and 32x32 images.
        norm_layer: builds a norm layer from a channel count.
        activation: the nonlinearity everywhere (SiLU; MnasNet-A1 uses ReLU).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` for any ``H, W >= 1``.
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
        stages: Sequence[MBConvStage] = EFFICIENTNET_B0,
        stochastic_depth_prob: float = 0.2,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        activation: Callable[[], nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        stages = scale_stages(stages, width_mult, depth_mult)
        stem_channels = scale_width(STEM_CHANNELS, width_mult)
        head_channels = scale_width(HEAD_CHANNELS, width_mult)
        stem_stride = 1 if small_input else 2
        self.features = nn.Sequential(
            ConvBNAct(
                in_channels,
                stem_channels,
                3,
                stem_stride,
                norm_layer=norm_layer,
                activation=activation,
            ),
            *mbconv_stages(
                stages,
                stem_channels,
                stochastic_depth_prob=stochastic_depth_prob,
                activation=activation,
                norm_layer=norm_layer,
            ),
            ConvBNAct(
                stages[-1].out_channels,
                head_channels,
                1,
                norm_layer=norm_layer,
                activation=activation,
            ),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_channels, num_classes))
        self.num_features = head_channels

        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map before pooling: ``(N, C_in, H, W) -> (N, num_features, H', W')``."""
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        """Pool, dropout, classify: ``(N, num_features, H', W') -> (N, num_classes)``."""
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _efficientnet(name: str, **kwargs: Any) -> EfficientNet:
    """The factories' builder: the :class:`EfficientNet` of a row of :data:`EFFICIENTNET_VARIANTS`.

    Args:
        name: the row, for example ``"efficientnet_b0"``.
        **kwargs: passed to :class:`EfficientNet` (``num_classes``, ``in_channels``,
            ``small_input``, ``stochastic_depth_prob``, ...); ``dropout`` and ``norm_layer``
            default to the row's dropout and batch-norm settings.
    """
    variant = EFFICIENTNET_VARIANTS[name]
    kwargs.setdefault("dropout", variant.dropout)
    kwargs.setdefault(
        "norm_layer", partial(nn.BatchNorm2d, eps=variant.bn_eps, momentum=variant.bn_momentum)
    )
    return EfficientNet(variant.width_mult, variant.depth_mult, **kwargs)


def efficientnet_b0(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B0, the baseline of Table 1."""
    return _efficientnet("efficientnet_b0", **kwargs)


def efficientnet_b1(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B1."""
    return _efficientnet("efficientnet_b1", **kwargs)


def efficientnet_b2(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B2."""
    return _efficientnet("efficientnet_b2", **kwargs)


def efficientnet_b3(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B3."""
    return _efficientnet("efficientnet_b3", **kwargs)


def efficientnet_b4(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B4."""
    return _efficientnet("efficientnet_b4", **kwargs)


def efficientnet_b5(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B5."""
    return _efficientnet("efficientnet_b5", **kwargs)


def efficientnet_b6(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B6."""
    return _efficientnet("efficientnet_b6", **kwargs)


def efficientnet_b7(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B7."""
    return _efficientnet("efficientnet_b7", **kwargs)
