"""LeNet-5: the convolutional baseline that AlexNet is measured against.

Paper: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
recognition", Proceedings of the IEEE 86(11), 1998 (no arXiv id). Key idea: a feature map is one
small kernel slid over the whole image, ``H_c = s(sum_k W_{c,k} * X_k + b_c)``, so the weights are
shared across positions, and subsampling layers trade resolution for tolerance to small shifts.

The network here is the simplified LeNet-5 that modern courses train on 28x28 Fashion-MNIST:
``conv(6, 5x5, pad 2) - sigmoid - avgpool - conv(16, 5x5) - sigmoid - avgpool - fc120 - fc84 -
fc(num_classes)``, with a sigmoid after both hidden fully connected layers. Departures from the
1998 network, all deliberate:

* Input size. The paper centres 28x28 MNIST digits in a 32x32 field and C1 has no padding
  (32 -> 28). We feed 28x28 images and pad C1 by 2, which gives the same 28x28 C1 maps. For
  32x32 images (CIFAR-10) pass ``padding=0`` and the geometry is the paper's exactly.
* C3 connectivity. In the paper each of the 16 C3 maps reads only a subset of the 6 S2 maps
  (Table I: 6 maps read 3 neighbours, 9 read 4, one reads all 6; 1,516 parameters) to break symmetry
  and save computation. Our C3 is fully connected (2,416 parameters).
* Subsampling. S2 and S4 averaged 2x2 blocks, multiplied by a trainable coefficient, added a
  trainable bias and applied the squashing function. We use parameter-free average pooling and
  apply the activation after the convolution instead.
* Activation. The paper's squashing function is the scaled tanh ``1.7159 tanh(2a/3)``. We use the
  logistic sigmoid, the classic contrast with AlexNet's ReLU.
* Output. The paper's F6 has 84 units (a 7x12 bitmap per class) read by Euclidean radial basis
  function units with fixed, hand-designed parameters. Our last layer is linear, trained with
  softmax cross-entropy.
* C5. The paper's C5 is a convolution with 120 5x5 kernels over the 5x5 S4 maps; on that input
  it equals the fully connected ``fc120`` used here (same 48,120 parameters).
* An ``AdaptiveAvgPool2d((5, 5))`` in front of C5 is the identity at the native size; it only lets
  other sizes through, for example 32x32 CIFAR-10 images with the default padding (S4 then has
  6x6 maps). The smallest input is 12x12.

Initialization: Xavier/Glorot uniform weights, derived for saturating units such as the sigmoid
(Glorot and Bengio 2010), and zero biases.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["LeNet", "lenet5"]


class LeNet(nn.Module):
    """LeNet-5 with sigmoid activations and average pooling.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image (1 for Fashion-MNIST, 3 for CIFAR-10).
        padding: zero padding of the first convolution. 2 for 28x28 inputs (default), 0 for
            32x32 inputs (the paper's geometry); either way C1 produces 28x28 maps.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``; the S4 maps are exactly 5x5 (no
        adaptive pooling needed) for 28x28 with ``padding=2`` and 32x32 with ``padding=0``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, padding: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding),  # C1: (N, 6, 28, 28)
            nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S2: (N, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5),  # C3: (N, 16, 10, 10)
            nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S4: (N, 16, 5, 5)
        )
        self.avgpool = nn.AdaptiveAvgPool2d((5, 5))  # identity at the native size
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),  # C5
            nn.Sigmoid(),
            nn.Linear(120, 84),  # F6
            nn.Sigmoid(),
            nn.Linear(84, num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Classify a batch of images.

        Args:
            x: images, ``(N, in_channels, H, W)``.

        Returns:
            Logits, ``(N, num_classes)``.
        """
        x = self.avgpool(self.features(x))  # (N, 16, 5, 5)
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)


def lenet5(*, num_classes: int = 10, in_channels: int = 1, **kwargs: Any) -> LeNet:
    """LeNet-5 for 28x28 images (natively small: there is no ``small_input`` option).

    It also takes 32x32 images as it is; ``padding=0`` gives them the paper's exact geometry.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image.
        **kwargs: passed to :class:`LeNet` (``padding=0`` for 32x32 inputs).

    Returns:
        A :class:`LeNet` with 61,706 parameters at the defaults.
    """
    return LeNet(num_classes=num_classes, in_channels=in_channels, **kwargs)
