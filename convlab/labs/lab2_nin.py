"""Lab 2 writes NiN's mlpconv block, the paper's plain Inception block (5x5 third path, no batch
norm; Szegedy et al. 2014, Fig. 2b) and NiN's global-average-pooling head, and trains a small
net of all three on 16 px digits: an mlpconv stem of 32 channels, a 3x3/2 max pool, two
Inception blocks (7x7 maps; 56 and 88 channels out), a 3x3/2 max pool, dropout and an mlpconv
with one map per class, averaged; 30,586 parameters on 1-channel digits.
Two departures, both measured (AdamW at 3e-3, 10 epochs, 2-core CPU, 2026-12-03):
* The head's last 1x1 convolution has no ReLU, so its maps (the logits) can be negative. With
  NiN's final ReLU (convlab's NiN keeps it) a class whose map died stayed dead: 89-98% at seeds
  0-2, 59-98% with dropout 0.2, plateaus at 8 or 6 live classes; without it 97.5-98.1%.
* He initialization (as convlab's NiN and GoogLeNet have): with PyTorch's default, paths of up
  to 10 convolutions without batch norm reached 66-80% (seeds 0-1, with the final ReLU).
Batch 64 instead of 32 (half the steps): 32-89% without the final ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from convlab.labs.settings import LabSettings, register
from convlab.models import googlenet as _googlenet
from convlab.models import nin as _nin

__all__ = [
    "NIN_LAB_DROPOUT",
    "NIN_LAB_INCEPTION",
    "NIN_LAB_STEM",
    "nin_lab_init",
    "reference_inception_nin",
    "reference_nin_head",
]

NIN_LAB_STEM = (32, 3, 1, 1)  # out_channels, kernel_size, stride, padding of the first mlpconv
# in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj (the columns of Table 1)
NIN_LAB_INCEPTION = ((32, 16, 16, 24, 4, 8, 8), (56, 24, 24, 32, 8, 16, 16))
NIN_LAB_DROPOUT = 0.5


def nin_lab_init(model: nn.Module) -> nn.Module:
    """He initialization (fan-in, for ReLU) of every convolution, zero biases; returns ``model``.

    The initialization of convlab's NiN and GoogLeNet: deep ReLU stacks without batch norm
    barely train from PyTorch's default, whose weights shrink the signal at every layer.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def reference_nin_head(in_channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Lab 2's head: dropout, an mlpconv with one map per class without its last ReLU, GAP.

    :func:`~convlab.models.nin.nin_block` less its final ReLU, so the averaged maps are logits of
    either sign (convlab's :class:`~convlab.models.nin.NiN` keeps the ReLU).
    """
    mlpconv = _nin.nin_block(in_channels, num_classes, kernel_size=3, padding=1)
    return nn.Sequential(nn.Dropout(dropout), *mlpconv[:-1], nn.AdaptiveAvgPool2d(1), nn.Flatten())


def reference_inception_nin(
    stem: tuple[int, int, int, int],
    inception: Sequence[tuple[int, int, int, int, int, int, int]],
    in_channels: int,
    num_classes: int,
    dropout: float = NIN_LAB_DROPOUT,
) -> nn.Sequential:
    """Lab 2's network from convlab's parts (PyTorch's default initialization).

    An mlpconv (``stem``: out_channels, kernel_size, stride, padding), a 3x3 stride-2 max pool,
    one plain :class:`~convlab.models.googlenet.Inception` per row of ``inception``, a 3x3
    stride-2 max pool, and :func:`reference_nin_head`.
    """
    last = inception[-1]
    out_channels = last[1] + last[3] + last[5] + last[6]
    return nn.Sequential(
        _nin.nin_block(in_channels, *stem),
        nn.MaxPool2d(kernel_size=3, stride=2),
        *(_googlenet.Inception(*row, branch3_kernel_size=5, batch_norm=False) for row in inception),
        nn.MaxPool2d(kernel_size=3, stride=2),
        reference_nin_head(out_channels, num_classes, dropout),
    )


def _nin_lab_reference(num_classes: int, in_channels: int) -> nn.Module:
    return nin_lab_init(
        reference_inception_nin(NIN_LAB_STEM, NIN_LAB_INCEPTION, in_channels, num_classes)
    )


# Full mode: 6 epochs, not 10: ten took about 19 minutes per seed on a 2-core Xeon (one
# thread, 226 ms a step of 128, 2026-12-05), and every seed is recorded on a CPU; on a GPU the
# six take seconds.
register(
    LabSettings("lab2_nin", _nin_lab_reference, quick_epochs=10, quick_lr=3e-3, quick_size=16,
                quick_batch_size=32, data="fashion_mnist", epochs=6, lr=3e-3,
                batch_size=128, adamw=True)
)  # fmt: skip
