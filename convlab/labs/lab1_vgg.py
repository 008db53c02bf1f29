"""Lab 1 trains a narrow VGG: three blocks (16 px digits -> 2x2 maps), global average pooling and
a 128-unit classifier; 86,346 parameters, so a CPU trains it in seconds.
"""

from __future__ import annotations

from torch import nn

from convlab.labs.settings import LabSettings, built_as_a_student_builds, register
from convlab.models.vgg import VGG

__all__ = ["VGG_LAB_HIDDEN", "VGG_LAB_STAGES"]

VGG_LAB_STAGES = ((1, 16), (1, 32), (2, 64))
VGG_LAB_HIDDEN = 128


def _vgg_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    return built_as_a_student_builds(
        lambda: VGG(
            VGG_LAB_STAGES,
            num_classes=num_classes,
            in_channels=in_channels,
            pooled_size=1,
            hidden_features=VGG_LAB_HIDDEN,
        )
    )


register(
    LabSettings("lab1_vgg", _vgg_lab_reference, quick_epochs=8, quick_lr=3e-3, quick_size=16,
                quick_batch_size=64, data="fashion_mnist", epochs=10, lr=3e-3,
                batch_size=256, adamw=True)
)  # fmt: skip
