"""Lab 7 writes MBConv, compound scaling, EfficientNet-B0 from its table, FLOP counts and a small
MnasNet-style search. Its stage tables are tuples (expand_ratio, kernel_size, stride,
out_channels, num_layers): the columns of Table 1 of Tan and Le (2019) without the stage number.
"""

from __future__ import annotations

import functools as _functools
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlab import layers as _layers
from convlab.labs.settings import LabSettings, built_as_a_student_builds, register
from convlab.models import efficientnet as _efficientnet

__all__ = [
    "EFFICIENTNET_LAB_HEAD",
    "EFFICIENTNET_LAB_STAGES",
    "EFFICIENTNET_LAB_STEM",
    "EFFICIENTNET_SEARCH_STAGES",
    "efficientnet_flops",
    "efficientnet_from_table",
    "mbconv_table",
    "stage_rows",
]

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
    return built_as_a_student_builds(
        lambda: efficientnet_from_table(
            EFFICIENTNET_LAB_STAGES,
            num_classes=num_classes,
            in_channels=in_channels,
            small_input=True,
            stem_channels=EFFICIENTNET_LAB_STEM,
            head_channels=EFFICIENTNET_LAB_HEAD,
        )
    )


# Full mode: 5 epochs, not 10: ten took about 27 minutes per seed on a 2-core Xeon (one
# thread, 666 ms a step of 256: depthwise convolutions are slow on a CPU, 2026-12-05).
register(
    LabSettings("lab7_efficientnet", _efficientnet_lab_reference, quick_epochs=6, quick_lr=3e-3,
                quick_size=16, quick_batch_size=64, data="fashion_mnist", epochs=5, lr=3e-3,
                batch_size=256, adamw=True)
)  # fmt: skip
