"""Residual networks for ImageNet: ResNet-18 to ResNet-152 and ResNeXt.

He, Zhang, Ren and Sun 2015, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385):
a stack of layers learns a residual F and adds its input back, ``y = F(x, {W_i}) + W_s x``
(Eq. 2), where ``W_s`` is the identity unless the block changes the shape of ``x``.

Xie, Girshick, Dollar, Tu and He 2016, "Aggregated Residual Transformations for Deep Neural
Networks" (arXiv:1611.05431): ResNeXt splits the bottleneck's 3x3 convolution into
``groups`` parallel paths (the cardinality) of ``width_per_group`` channels each; it is the same
:class:`Bottleneck` with two more arguments, not a new block.

Departures, each deliberate:

* Stride in the bottleneck. The paper strides the first 1x1 convolution of a downsampling
  bottleneck; torchvision (and this module, by default) strides the 3x3 convolution ("ResNet
  v1.5", slightly more accurate for slightly more compute). ``stride_in_1x1=True`` restores the
  paper's choice; parameter counts and state-dict keys are the same either way.
* Shortcuts are the paper's option B: identity where shapes agree, a 1x1 projection where
  they do not, here (as in torchvision) followed by batch norm.
* ``zero_init_residual=True`` (off by default, as in torchvision) starts each block's last
  batch-norm scale at zero, so that every block starts as the identity (Goyal et al. 2017,
  arXiv:1706.02677); the paper does not do this.
* ``small_input=True`` is not in the paper: see :class:`ResNet`.

Every factory (``resnet18`` ... ``resnext101_32x8d``) takes the keyword arguments of
:class:`ResNet` (``num_classes``, ``in_channels``, ``small_input``, ``zero_init_residual``,
``stride_in_1x1``); :data:`RESNET_PARAMS` records its size. With default arguments every factory
builds torchvision's model of the same name parameter for parameter and key for key, so
torchvision state dicts load with ``strict=True``.
The CIFAR networks of the paper's Sec. 4.2 and the pre-activation networks of He et al. 2016
live in :mod:`convlab.models.resnet_cifar`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

__all__ = [
    "RESNET_PARAMS",
    "RESNET_STAGES",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "conv1x1",
    "conv3x3",
    "init_weights",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
]

# Table 1 of the paper: (num_blocks, channels) per stage, conv2_x to conv5_x. A Bottleneck stage
# outputs channels * 4.
RESNET_STAGES: dict[int, tuple[tuple[int, int], ...]] = {
    18: ((2, 64), (2, 128), (2, 256), (2, 512)),  # BasicBlock
    34: ((3, 64), (4, 128), (6, 256), (3, 512)),  # BasicBlock
    50: ((3, 64), (4, 128), (6, 256), (3, 512)),  # Bottleneck
    101: ((3, 64), (4, 128), (23, 256), (3, 512)),  # Bottleneck
    152: ((3, 64), (8, 128), (36, 256), (3, 512)),  # Bottleneck
}

# Parameters of each factory's network with 1000 classes (torchvision's model of the same name).
RESNET_PARAMS: dict[str, int] = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,  # about as many as ResNet-50
    # Xie et al. report 32x4d and 64x4d at depth 101; 32x8d is torchvision's setting (also that
    # of Mahajan et al. 2018, arXiv:1805.00932).
    "resnext101_32x8d": 88_791_336,
}


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (batch norm follows it)."""
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias (batch norm follows it)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: ``y = relu(F(x) + shortcut(x))``.

    ``F(x) = BN(conv(relu(BN(conv(x)))))``. The first convolution carries the stride.

    Args:
        in_channels: channels of ``x``.
        out_channels: channels of ``y`` (and of both convolutions).
        stride: stride of the first convolution.
        downsample: the shortcut when ``x`` and ``y`` differ in shape (``W_s`` of Eq. 2, for
            example a 1x1 convolution and batch norm); ``None`` for the identity.

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
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: Tensor) -> Tensor:
        """The residual branch ``F(x)``, before the addition."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + shortcut)  # Eq. 2: y = F(x) + W_s x


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand, plus a shortcut.

    The 3x3 convolution works at ``width = int(out_channels / expansion * width_per_group / 64)
    * groups`` channels: 64, 128, 256, 512 in the four stages of ResNet-50, twice that for
    ResNeXt-50 (32x4d). ``y = relu(F(x) + shortcut(x))``.

    Args:
        in_channels: channels of ``x``.
        out_channels: channels of ``y``; ``out_channels / expansion`` is the bottleneck width of
            the paper's Table 1.
        stride: spatial stride of the block.
        downsample: the shortcut when ``x`` and ``y`` differ in shape; ``None`` for the identity.
        groups: number of paths of the 3x3 convolution (ResNeXt's cardinality; 1 for ResNet).
        width_per_group: channels per path, scaled so that 64 means the ResNet width.
        stride_in_1x1: put the stride on the first 1x1 convolution (the paper) instead of the 3x3
            convolution (torchvision, "ResNet v1.5").

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
        groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        width = int(out_channels // self.expansion * (width_per_group / 64.0)) * groups
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: Tensor) -> Tensor:
        """The residual branch ``F(x)``, before the addition."""
        out = self.relu(self.bn1(self.conv1(x)))  # (N, width, H', W') with stride_in_1x1
        out = self.relu(self.bn2(self.conv2(out)))  # (N, width, H / stride, W / stride)
        return self.bn3(self.conv3(out))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + shortcut)  # Eq. 2: y = F(x) + W_s x


class ResNet(nn.Module):
    """Stem, four stages of residual blocks, global average pooling, linear classifier.

    Stage ``i`` has ``num_blocks`` blocks with strides ``[stride] + [1] * (num_blocks - 1)``
    (stride 1 for the first stage, 2 for the others) and ``channels * block.expansion`` output
    channels. The first block of a stage gets a 1x1 projection plus batch norm as its shortcut
    when its input and output shapes differ.

    ``small_input=True`` adapts the stem to 28x28 to 32x32 images (the usual CIFAR adaptation):
    ``conv1`` becomes a 3x3 stride-1 convolution (padding 1) instead of 7x7 stride 2, and the
    3x3 stride-2 max-pool is dropped (``maxpool`` is ``nn.Identity``). Stages and classifier are
    unchanged, so a 32x32 image reaches ``layer4`` at 4x4 instead of 1x1.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        stages: ``(num_blocks, channels)`` for each of the four stages, as in ``RESNET_STAGES``.
        num_classes: outputs of ``fc``.
        in_channels: channels of the input image.
        small_input: use the stem for small images described above.
        zero_init_residual: initialize the last batch-norm scale of every block to zero.
        groups: ResNeXt cardinality (Bottleneck only).
        width_per_group: ResNeXt channels per path (Bottleneck only).
        stride_in_1x1: stride the first 1x1 convolution, as the paper does (Bottleneck only).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        stages: Sequence[tuple[int, int]],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        if len(stages) != 4:
            raise ValueError(f"ResNet expects 4 stages (layer1..layer4), got {len(stages)}")
        block_kwargs: dict[str, Any] = {}
        if block is Bottleneck:
            block_kwargs = {
                "groups": groups,
                "width_per_group": width_per_group,
                "stride_in_1x1": stride_in_1x1,
            }
        elif (groups, width_per_group, stride_in_1x1) != (1, 64, False):
            raise ValueError(
                "BasicBlock has no grouped or strided 1x1 convolution: groups, width_per_group "
                "and stride_in_1x1 apply to Bottleneck only"
            )
        stem_channels = stages[0][1]
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU()

        channels_in = stem_channels
        layers: list[nn.Sequential] = []
        for index, (num_blocks, channels) in enumerate(stages):
            out_channels = channels * block.expansion
            stride = 1 if index == 0 else 2
            blocks: list[nn.Module] = []
            for block_stride in [stride] + [1] * (num_blocks - 1):
                downsample = None
                if block_stride != 1 or channels_in != out_channels:
                    downsample = nn.Sequential(
                        conv1x1(channels_in, out_channels, block_stride),
                        nn.BatchNorm2d(out_channels),
                    )
                blocks.append(
                    block(channels_in, out_channels, block_stride, downsample, **block_kwargs)
                )
                channels_in = out_channels
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels_in, num_classes)
        self.num_features = channels_in
        init_weights(self, zero_init_residual)

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map of ``layer4``: ``(N, C_in, H, W) -> (N, num_features, H / 32, W / 32)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H / 4, W / 4)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: Tensor) -> Tensor:
        """Global average pooling and classifier: ``(N, C, h, w) -> (N, num_classes)``."""
        return self.fc(self.avgpool(x).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """He-normal convolutions (arXiv:1502.01852, fan-out mode), unit-scale batch norm.

    Linear layers keep PyTorch's default initialization. With ``zero_init_residual`` the last
    batch norm of every residual branch starts at zero scale, so each block starts as its
    shortcut.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)


def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (Table 1): basic blocks."""
    return ResNet(BasicBlock, RESNET_STAGES[18], **kwargs)


def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (Table 1): basic blocks."""
    return ResNet(BasicBlock, RESNET_STAGES[34], **kwargs)


def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (Table 1): bottleneck blocks."""
    return ResNet(Bottleneck, RESNET_STAGES[50], **kwargs)


def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 (Table 1): bottleneck blocks."""
    return ResNet(Bottleneck, RESNET_STAGES[101], **kwargs)


def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 (Table 1): bottleneck blocks."""
    return ResNet(Bottleneck, RESNET_STAGES[152], **kwargs)


def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 (32x4d), Xie et al. Table 1: ResNet-50 with 32 paths of 4 channels per 64."""
    return ResNet(Bottleneck, RESNET_STAGES[50], groups=32, width_per_group=4, **kwargs)


def resnext101_32x8d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 (32x8d): ResNet-101 with 32 paths of 8 channels per 64."""
    return ResNet(Bottleneck, RESNET_STAGES[101], groups=32, width_per_group=8, **kwargs)
