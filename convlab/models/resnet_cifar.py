"""Residual networks for 32x32 images: the CIFAR-10 ResNets and the pre-activation ResNets.

He, Zhang, Ren and Sun 2015, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385),
Sec. 4.2: ``6n + 2`` layers, a 3x3 convolution then three stages of ``n`` basic blocks with 16,
32 and 64 channels at 32x32, 16x16 and 8x8, global average pooling and a 10-way linear layer;
each block computes ``y = F(x) + x``. Their "plain" twins drop the ``+ x`` (the 20 versus 56
layer degradation experiment, Fig. 1 and Fig. 6).

He, Zhang, Ren and Sun 2016, "Identity Mappings in Deep Residual Networks" (arXiv:1603.05027):
when both the shortcut and the after-addition step are identities, ``x_{l+1} = x_l + F(x_l)``
and any deeper unit sees ``x_L = x_l + sum_i F(x_i)``; the full pre-activation unit
(BN-ReLU-conv, twice or three times) gets there by moving batch norm and ReLU in front of the
convolutions. The paper's Fig. 4 compares five orders of the same components; ``ORDERS`` holds
them, :class:`ResidualUnit` builds any of them and :class:`PreActBlock` /
:class:`PreActBottleneck` write out the winner, order (e).

Deliberate choices and departures:

* Option A shortcuts (the 2015 CIFAR default) subsample by taking every ``stride``-th pixel and
  append zero channels after the input's channels; option B uses a 1x1 convolution (plus batch
  norm) only where the shape changes.
* Pre-activation networks default to option B projections, as in the authors' code. In order
  (e) the projection has no batch norm of its own: its input is already normalized.
* When a unit changes shape, its shortcut reads the unit's pre-activated input (the first unit
  after ``conv1`` and the first unit of each stage share the BN-ReLU, as the 2016 paper does
  for order (e)); identity shortcuts always read the raw input, so the identity path stays clean.
* The stem supplies whatever part of BN-ReLU the first unit does not apply to its input
  (conv-BN-ReLU for orders a-c, conv-BN for d, bare conv for e), and the network applies the
  unit's own pre-activation once more after the last addition (the extra BN-ReLU the paper
  adds for order e, a ReLU for d, nothing for a-c).
* Bottleneck units stride their 3x3 convolution (as torchvision's ImageNet ``Bottleneck``);
  the authors' Torch code strides the first 1x1 convolution. Parameter counts are the same.
* Linear layers keep PyTorch's default initialization; convolutions are He-normal (fan-out).

The factories ``resnet20`` ... ``resnet1202`` and ``plain20`` ... ``plain110`` take the keyword
arguments of :func:`cifar_resnet` (``num_classes``, ``in_channels``, ``shortcut``), the
``preact_resnet*`` factories those of :func:`preact_resnet` (``order``, ``shortcut``, ...);
:data:`CIFAR_PARAMS` records their sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from convlab.models.resnet import BasicBlock, conv1x1, conv3x3, init_weights

__all__ = [
    "CIFAR_PARAMS",
    "CIFAR_WIDTHS",
    "ORDERS",
    "CifarResNet",
    "PlainBlock",
    "PreActBlock",
    "PreActBottleneck",
    "PreActResNet",
    "ResidualUnit",
    "UnitOrder",
    "ZeroPadShortcut",
    "cifar_resnet",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "preact_resnet",
    "preact_resnet110",
    "preact_resnet164",
    "preact_resnet1001",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet1202",
]

# Sec. 4.2: channels of the three stages, at 32x32, 16x16 and 8x8. Bottleneck units use them as
# bottleneck widths and output four times as many (64, 128, 256).
CIFAR_WIDTHS: tuple[int, int, int] = (16, 32, 64)

# Parameters with 10 classes and the default shortcuts (option A for the 2015 networks, B for the
# pre-activation ones); the paper's rounded figure beside each. Plain networks have exactly the
# parameters of their residual twins: option A shortcuts have none.
CIFAR_PARAMS: dict[str, int] = {
    "resnet20": 269_722,  # 0.27M
    "resnet32": 464_154,  # 0.46M
    "resnet44": 658_586,  # 0.66M
    "resnet56": 853_018,  # 0.85M
    "resnet110": 1_727_962,  # 1.7M
    "resnet1202": 19_421_274,  # 19.4M
    "preact_resnet164": 1_703_258,  # 1.7M
    # The 2016 paper's 10.2M is the count without batch norm's scales and shifts (10,178,490);
    # with them the network has 10.3M (for ResNet-164 both round to 1.7M).
    "preact_resnet1001": 10_327_706,
}


@dataclass(frozen=True)
class UnitOrder:
    """Where a residual unit's first and last batch norm and ReLU sit (2016 paper, Fig. 4).

    Between two convolutions of the branch there is always BN then ReLU; the five orders differ
    only at the ends. Entries are ``"bn"`` or ``"relu"``.

    Attributes:
        name: the paper's name for the order.
        before: applied to the unit's input before the first convolution (pre-activation).
        after_last_conv: applied to the branch after its last convolution, before the addition.
        after_add: applied to the sum (post-activation).
    """

    name: str
    before: tuple[str, ...]
    after_last_conv: tuple[str, ...]
    after_add: tuple[str, ...]


# The same components in five orders (Fig. 4); the paper's CIFAR-10 errors, ResNet-110 / 164.
ORDERS: dict[str, UnitOrder] = {
    "a": UnitOrder("original", (), ("bn",), ("relu",)),  # 6.61 / 5.93
    "b": UnitOrder("bn_after_addition", (), (), ("bn", "relu")),  # 8.17 / 6.50
    "c": UnitOrder("relu_before_addition", (), ("bn", "relu"), ()),  # 7.84 / 6.14
    "d": UnitOrder("relu_only_preactivation", ("relu",), ("bn",), ()),  # 6.71 / 5.91
    "e": UnitOrder("full_preactivation", ("bn", "relu"), (), ()),  # 6.37 / 5.46
}


def _order_key(order: str) -> str:
    """Map ``"a"``..``"e"`` or a descriptive name (``"full pre-activation"``) to ``"a"``..``"e"``."""

    def squash(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    wanted = squash(order)
    for key, spec in ORDERS.items():
        if wanted in (key, squash(spec.name)):
            return key
    choices = ", ".join(f"{key!r} ({spec.name})" for key, spec in ORDERS.items())
    raise ValueError(f"unknown residual-unit order {order!r}; choose one of {choices}")


def _norm_act(kinds: tuple[str, ...], channels: int) -> nn.Sequential:
    layers = {"bn": lambda: nn.BatchNorm2d(channels), "relu": nn.ReLU}
    return nn.Sequential(*(layers[kind]() for kind in kinds))


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: keep every ``stride``-th pixel, append zero-filled channels.

    It has no parameters, so a network with option A shortcuts has exactly the parameters of
    its plain twin.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (at least ``in_channels``).
        stride: spatial subsampling factor.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"zero padding cannot reduce channels ({in_channels} -> {out_channels})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (N, C_in, ceil(H / s), ceil(W / s))
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))  # (N, C_out, ...)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def _shortcut(
    kind: str, in_channels: int, out_channels: int, stride: int, norm: bool = True
) -> nn.Module | None:
    """``None`` (identity) where shapes agree, else option A or B (1x1 conv, BN if ``norm``)."""
    if stride == 1 and in_channels == out_channels:
        return None
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    layers: list[nn.Module] = [conv1x1(in_channels, out_channels, stride)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def _check_shortcut(shortcut: str) -> str:
    kind = shortcut.upper()
    if kind not in ("A", "B"):
        raise ValueError(
            f"shortcut must be 'A' (identity with zero padding) or 'B' (1x1 projection where the "
            f"shape changes), got {shortcut!r}"
        )
    return kind


def _blocks_per_stage(depth: int, layers_per_block: int) -> int:
    """``n`` from ``depth = 3 * layers_per_block * n + 2``, with an error a student can act on."""
    step = 3 * layers_per_block
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < step + 2:
        raise ValueError(f"depth must be an integer {step}n+2 with n >= 1, got {depth!r}")
    if (depth - 2) % step:
        examples = ", ".join(str(step * n + 2) for n in (1, 2, 3, 5, 9, 18))
        raise ValueError(
            f"depth must be {step}n+2 (conv1 + 3 stages of n units of {layers_per_block} "
            f"layers + fc): {examples}, ...; got {depth}"
        )
    return (depth - 2) // step


class PlainBlock(BasicBlock):
    """A :class:`BasicBlock` without its shortcut: ``y = relu(F(x))``.

    The building block of the paper's "plain" baselines (Sec. 4.2); the only difference from
    the residual block is the missing ``+ x``.

    Args:
        in_channels: channels of ``x``.
        out_channels: channels of ``y``.
        stride: stride of the first convolution.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride, downsample=None)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x))  # no shortcut


class CifarResNet(nn.Module):
    """The CIFAR-10 network of Sec. 4.2 (residual or plain), ``6n + 2`` weighted layers.

    ``conv1`` (3x3, 16) -> BN -> ReLU -> ``layer1..layer3`` (``n`` blocks each, 16/32/64
    channels, the first block of ``layer2`` and ``layer3`` with stride 2) -> global average
    pooling -> ``fc``.

    Freshly built and in evaluation mode (running statistics still 0 and 1, so batch norm is
    nearly the identity) a very deep network such as ResNet-1202 grows its activations with every
    block until they overflow float32; run it in training mode, or train it, before evaluating.

    Args:
        num_blocks: blocks per stage, ``n``.
        shortcut: ``"A"`` (identity, zero padding where channels grow) or ``"B"`` (1x1
            projection and batch norm where the shape changes).
        plain: use :class:`PlainBlock` (no shortcuts at all).
        num_classes: outputs of ``fc``.
        in_channels: channels of the input image.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``; any ``H, W >= 1``, designed for 32x32.
    """

    def __init__(
        self,
        num_blocks: int,
        *,
        shortcut: str = "A",
        plain: bool = False,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        kind = _check_shortcut(shortcut)
        self.conv1 = conv3x3(in_channels, CIFAR_WIDTHS[0])
        self.bn1 = nn.BatchNorm2d(CIFAR_WIDTHS[0])
        self.relu = nn.ReLU()
        channels_in = CIFAR_WIDTHS[0]
        layers: list[nn.Sequential] = []
        for index, channels in enumerate(CIFAR_WIDTHS):
            blocks: list[nn.Module] = []
            for stride in [1 if index == 0 else 2] + [1] * (num_blocks - 1):
                if plain:
                    blocks.append(PlainBlock(channels_in, channels, stride))
                else:
                    downsample = _shortcut(kind, channels_in, channels, stride)
                    blocks.append(BasicBlock(channels_in, channels, stride, downsample))
                channels_in = channels
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels_in, num_classes)
        self.num_features = channels_in
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map of ``layer3``: ``(N, C_in, H, W) -> (N, 64, H / 4, W / 4)``."""
        x = self.relu(self.bn1(self.conv1(x)))  # (N, 16, H, W)
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: Tensor) -> Tensor:
        """Global average pooling and classifier: ``(N, C, h, w) -> (N, num_classes)``."""
        return self.fc(self.avgpool(x).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class PreActBlock(nn.Module):
    """Full pre-activation basic unit, order (e): ``x + conv(relu(BN(conv(relu(BN(x))))))``.

    Nothing follows the addition, so the identity path from one unit to the next is clean.

    Args:
        in_channels: channels of ``x``.
        out_channels: channels of the output.
        stride: stride of the first convolution.
        downsample: shortcut when the shape changes, applied to ``relu(BN(x))``; ``None`` for
            the identity on ``x``.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    expansion: int = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        return out + shortcut  # x_{l+1} = x_l + F(x_l)


class PreActBottleneck(nn.Module):
    """Full pre-activation bottleneck unit, order (e): BN-ReLU-conv three times, then ``+ x``.

    1x1 to ``out_channels / 4`` channels, 3x3 (strided), 1x1 back to ``out_channels``.

    Args:
        in_channels: channels of ``x``.
        out_channels: channels of the output (four times the bottleneck width).
        stride: stride of the 3x3 convolution.
        downsample: shortcut when the shape changes, applied to ``relu(BN(x))``; ``None`` for
            the identity on ``x``.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    expansion: int = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        width = out_channels // self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)  # (N, width, H, W)
        out = self.conv2(self.relu(self.bn2(out)))  # (N, width, H / stride, W / stride)
        out = self.conv3(self.relu(self.bn3(out)))  # (N, out_channels, H / stride, W / stride)
        return out + shortcut  # x_{l+1} = x_l + F(x_l)


class ResidualUnit(nn.Module):
    """A residual unit in any of the five orders of Fig. 4 of the 2016 paper.

    ``pre`` (order's ``before``) -> ``branch`` (conv, then BN-ReLU-conv for every further
    convolution, then the order's ``after_last_conv``) -> ``+ shortcut`` -> ``post`` (the
    order's ``after_add``). Order (a) computes what :class:`BasicBlock` computes, order (e) what
    :class:`PreActBlock` / :class:`PreActBottleneck` compute; all five have the same convolutions,
    batch norms and ReLUs.

    Args:
        in_channels: channels of ``x``.
        out_channels: channels of the output.
        stride: stride of the 3x3 convolution that carries it (the first; the middle one of a
            bottleneck).
        downsample: shortcut when the shape changes, applied to ``pre(x)``; ``None`` for the
            identity on ``x``.
        order: ``"a"``..``"e"`` or the order's name (``"original"``, ``"bn_after_addition"``,
            ``"relu_before_addition"``, ``"relu_only_preactivation"``, ``"full_preactivation"``).
        bottleneck: three convolutions (1x1, 3x3, 1x1 at ``out_channels / 4``) instead of two 3x3.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        order: str = "e",
        bottleneck: bool = False,
    ) -> None:
        super().__init__()
        self.order = _order_key(order)
        spec = ORDERS[self.order]
        if bottleneck:
            width = out_channels // 4
            convs = [
                conv1x1(in_channels, width),
                conv3x3(width, width, stride),
                conv1x1(width, out_channels),
            ]
        else:
            convs = [
                conv3x3(in_channels, out_channels, stride),
                conv3x3(out_channels, out_channels),
            ]
        self.pre = _norm_act(spec.before, in_channels)
        branch: list[nn.Module] = []
        for index, conv in enumerate(convs):
            if index > 0:
                branch += [nn.BatchNorm2d(conv.in_channels), nn.ReLU()]
            branch.append(conv)
        self.branch = nn.Sequential(*branch, *_norm_act(spec.after_last_conv, out_channels))
        self.downsample = downsample
        self.post = _norm_act(spec.after_add, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.pre(x)
        shortcut = x if self.downsample is None else self.downsample(pre)
        return self.post(self.branch(pre) + shortcut)

    def extra_repr(self) -> str:
        return f"order={self.order!r} ({ORDERS[self.order].name})"


class PreActResNet(nn.Module):
    """CIFAR ResNet of the 2016 paper: any unit order, basic or bottleneck units.

    ``conv1`` (3x3, 16) -> ``stem_act`` -> ``layer1..layer3`` -> ``final_act`` -> global average
    pooling -> ``fc``. Stage ``i`` has ``n`` units of output width ``CIFAR_WIDTHS[i]`` (times 4
    for bottlenecks); ``layer2`` and ``layer3`` start with stride 2. ``stem_act`` completes the
    BN-ReLU that the first unit does not apply to its own input and ``final_act`` repeats the
    unit's pre-activation after the last addition (for order (e): nothing, then BN-ReLU).
    Order (e) uses :class:`PreActBlock` / :class:`PreActBottleneck`, the others
    :class:`ResidualUnit`.

    Args:
        num_blocks: units per stage, ``n``.
        order: unit order, ``"a"``..``"e"`` or its name (see ``ORDERS``).
        bottleneck: bottleneck units (``9n + 2`` layers) instead of basic ones (``6n + 2``).
        shortcut: ``"B"`` (1x1 projection where the shape changes) or ``"A"`` (zero padding).
        num_classes: outputs of ``fc``.
        in_channels: channels of the input image.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``; any ``H, W >= 1``, designed for 32x32.
    """

    def __init__(
        self,
        num_blocks: int,
        *,
        order: str = "e",
        bottleneck: bool = True,
        shortcut: str = "B",
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        kind = _check_shortcut(shortcut)
        self.order = _order_key(order)
        spec = ORDERS[self.order]
        unit: Callable[..., nn.Module]
        if self.order == "e":
            unit = PreActBottleneck if bottleneck else PreActBlock
        else:
            unit = partial(ResidualUnit, order=self.order, bottleneck=bottleneck)
        expansion = 4 if bottleneck else 1

        stem_channels = CIFAR_WIDTHS[0]
        self.conv1 = conv3x3(in_channels, stem_channels)
        # stem tail + the first unit's own `before` make one BN-ReLU: (bn, relu), (bn,) or ()
        stem_kinds = ("bn", "relu")[: 2 - len(spec.before)]
        self.stem_act = _norm_act(stem_kinds, stem_channels)
        channels_in = stem_channels
        layers: list[nn.Sequential] = []
        for index, channels in enumerate(CIFAR_WIDTHS):
            out_channels = channels * expansion
            units: list[nn.Module] = []
            for stride in [1 if index == 0 else 2] + [1] * (num_blocks - 1):
                # a pre-normalized input (order e) needs no BN after the projection
                downsample = _shortcut(
                    kind, channels_in, out_channels, stride, norm="bn" not in spec.before
                )
                units.append(unit(channels_in, out_channels, stride, downsample))
                channels_in = out_channels
            layers.append(nn.Sequential(*units))
        self.layer1, self.layer2, self.layer3 = layers
        self.final_act = _norm_act(spec.before, channels_in)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels_in, num_classes)
        self.num_features = channels_in
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Activated feature map after ``layer3``: ``(N, C_in, H, W) -> (N, C, H / 4, W / 4)``."""
        x = self.stem_act(self.conv1(x))  # (N, 16, H, W)
        return self.final_act(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: Tensor) -> Tensor:
        """Global average pooling and classifier: ``(N, C, h, w) -> (N, num_classes)``."""
        return self.fc(self.avgpool(x).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def cifar_resnet(
    depth: int,
    *,
    shortcut: str = "A",
    plain: bool = False,
    num_classes: int = 10,
    in_channels: int = 3,
) -> CifarResNet:
    """The ``depth``-layer CIFAR network of the 2015 paper, Sec. 4.2.

    Args:
        depth: weighted layers, ``6n + 2`` (20, 32, 44, 56, 110, 1202, ...).
        shortcut: ``"A"`` (zero-padding identity, the paper's CIFAR choice) or ``"B"``
            (projection where the shape changes). Ignored when ``plain``.
        plain: no shortcuts (the paper's plain baseline).
        num_classes: outputs of the classifier.
        in_channels: channels of the input image.

    Returns:
        A :class:`CifarResNet` with ``n = (depth - 2) / 6`` blocks per stage.

    Raises:
        ValueError: if ``depth`` is not ``6n + 2`` or ``shortcut`` is not ``"A"``/``"B"``.
    """
    return CifarResNet(
        _blocks_per_stage(depth, layers_per_block=2),
        shortcut=shortcut,
        plain=plain,
        num_classes=num_classes,
        in_channels=in_channels,
    )


def preact_resnet(
    depth: int,
    *,
    order: str = "e",
    bottleneck: bool = True,
    shortcut: str = "B",
    num_classes: int = 10,
    in_channels: int = 3,
) -> PreActResNet:
    """The ``depth``-layer CIFAR network of the 2016 paper, in any of the five unit orders.

    Args:
        depth: weighted layers: ``9n + 2`` with bottleneck units (164, 1001), else ``6n + 2``
            (110).
        order: unit order, ``"a"``..``"e"`` or its name; ``"e"`` is full pre-activation.
        bottleneck: bottleneck units instead of two 3x3 convolutions.
        shortcut: ``"B"`` (projection where the shape changes) or ``"A"`` (zero padding).
        num_classes: outputs of the classifier.
        in_channels: channels of the input image.

    Returns:
        A :class:`PreActResNet`.

    Raises:
        ValueError: for a depth that does not fit the unit, an unknown order or shortcut.
    """
    return PreActResNet(
        _blocks_per_stage(depth, layers_per_block=3 if bottleneck else 2),
        order=order,
        bottleneck=bottleneck,
        shortcut=shortcut,
        num_classes=num_classes,
        in_channels=in_channels,
    )


def resnet20(**kwargs: Any) -> CifarResNet:
    """ResNet-20 for CIFAR-10 (n = 3)."""
    return cifar_resnet(20, **kwargs)


def resnet32(**kwargs: Any) -> CifarResNet:
    """ResNet-32 for CIFAR-10 (n = 5)."""
    return cifar_resnet(32, **kwargs)


def resnet44(**kwargs: Any) -> CifarResNet:
    """ResNet-44 for CIFAR-10 (n = 7)."""
    return cifar_resnet(44, **kwargs)


def resnet56(**kwargs: Any) -> CifarResNet:
    """ResNet-56 for CIFAR-10 (n = 9)."""
    return cifar_resnet(56, **kwargs)


def resnet110(**kwargs: Any) -> CifarResNet:
    """ResNet-110 for CIFAR-10 (n = 18)."""
    return cifar_resnet(110, **kwargs)


def resnet1202(**kwargs: Any) -> CifarResNet:
    """ResNet-1202 for CIFAR-10 (n = 200); before evaluating it fresh, see :class:`CifarResNet`."""
    return cifar_resnet(1202, **kwargs)


def plain20(**kwargs: Any) -> CifarResNet:
    """Plain 20-layer CIFAR-10 network (no shortcuts)."""
    return cifar_resnet(20, plain=True, **kwargs)


def plain32(**kwargs: Any) -> CifarResNet:
    """Plain 32-layer CIFAR-10 network (no shortcuts)."""
    return cifar_resnet(32, plain=True, **kwargs)


def plain44(**kwargs: Any) -> CifarResNet:
    """Plain 44-layer CIFAR-10 network (no shortcuts)."""
    return cifar_resnet(44, plain=True, **kwargs)


def plain56(**kwargs: Any) -> CifarResNet:
    """Plain 56-layer CIFAR-10 network (no shortcuts): trains worse than plain-20 (Fig. 1)."""
    return cifar_resnet(56, plain=True, **kwargs)


def plain110(**kwargs: Any) -> CifarResNet:
    """Plain 110-layer CIFAR-10 network (no shortcuts)."""
    return cifar_resnet(110, plain=True, **kwargs)


def preact_resnet110(**kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-110, basic units (n = 18): the network of the order ablation."""
    return preact_resnet(110, bottleneck=False, **kwargs)


def preact_resnet164(**kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-164, bottleneck units (n = 18)."""
    return preact_resnet(164, bottleneck=True, **kwargs)


def preact_resnet1001(**kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-1001, bottleneck units (n = 111)."""
    return preact_resnet(1001, bottleneck=True, **kwargs)
