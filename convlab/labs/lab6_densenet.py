"""Lab 6 writes the dense layer (plain and bottleneck), the dense block, the transition, the
channel arithmetic of a DenseNet and a small DenseNet-BC, which it trains on 16 px digits:
a 3x3 stem of 16 channels, three dense blocks of 3 bottleneck layers with growth rate 8
(16x16, 8x8 and 4x4 maps), compression 0.5; 32,350 parameters on 1-channel digits. fit's SGD
at 0.1 reached 98.9-99.7% in 6 epochs at seeds 0-2 (2-core CPU, one thread, about a minute
each, 2026-12-03).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from convlab.labs.settings import LabSettings, built_as_a_student_builds, register
from convlab.models import densenet as _densenet

__all__ = [
    "DENSENET_LAB_BLOCKS",
    "DENSENET_LAB_GROWTH",
    "DENSENET_LAB_STEM",
    "densenet_lab_network",
    "plain_dense_layer",
]

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
    # DenseNet's He initialization is replaced by PyTorch's default
    return built_as_a_student_builds(
        lambda: densenet_lab_network(
            DENSENET_LAB_GROWTH, DENSENET_LAB_BLOCKS, DENSENET_LAB_STEM, in_channels, num_classes
        )
    )


# Full mode: 5 epochs, not 10: ten took about 27 minutes per seed on a 2-core Xeon (one
# thread, 325 ms a step of 128: concatenation copies every map again, 2026-12-05).
register(
    LabSettings("lab6_densenet", _densenet_lab_reference, quick_epochs=6, quick_lr=0.1,
                quick_size=16, quick_batch_size=64, data="fashion_mnist", epochs=5, lr=0.1,
                batch_size=128)
)  # fmt: skip
