"""Network in Network: a small MLP slid over the image, and no fully connected layers.

Paper: M. Lin, Q. Chen, S. Yan, "Network In Network", 2013 (arXiv:1312.4400). Key idea: the
"mlpconv" layer replaces a linear filter by a multilayer perceptron shared across positions,
``f^n = max(W_n^T f^(n-1) + b_n, 0)`` (Eq. 2), which is a ``k x k`` convolution followed by 1x1
convolutions; the last mlpconv emits one map per class, and global average pooling turns the
maps into logits in place of fully connected layers.

:func:`nin` is the ImageNet-size network: three mlpconv blocks with AlexNet's kernel sizes and
strides (96 11x11/4, 256 5x5, 384 3x3), each followed by a 3x3 stride-2 max pool, dropout, a
fourth mlpconv with ``num_classes`` channels, global average pooling. Every convolution is
followed by a ReLU, the last one included, so the class maps (and the logits) are non-negative.

Departures from the paper and the authors' released model:

* The paper reports CIFAR-10/100, SVHN and MNIST with three mlpconv layers (Sec. 4), not this
  network. The authors' ImageNet model (Caffe Model Zoo) has the layout above, but its last
  mlpconv is 1024 (3x3) -> 1024 (1x1) -> 1000 (1x1); here all three of its convolutions have
  ``num_classes`` channels, the compact form used for teaching (about 7.4M parameters at 1000
  classes instead of about 7.6M).
* The paper puts dropout after every mlpconv but the last; here there is one dropout, in front of
  the last mlpconv (as in the ImageNet model).
* Initialization: He et al. 2015 (fan-in) for every convolution, zero biases.

``small_input=True`` (28x28 Fashion-MNIST, 32x32 CIFAR-10): the first convolution becomes 3x3,
stride 1, padding 1 (96 channels as before); everything else is unchanged (28 -> 13 -> 6 -> 2,
32 -> 15 -> 7 -> 3 after the three max pools). The smallest input it takes is 15x15; the native
configuration (224 px) takes 67x67 and up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

__all__ = ["NIN_IMAGENET", "NiN", "nin", "nin_block"]

# (out_channels, kernel_size, stride, padding) of each block's first convolution, 224 px.
NIN_IMAGENET: tuple[tuple[int, int, int, int], ...] = (
    (96, 11, 4, 0),
    (256, 5, 1, 2),
    (384, 3, 1, 1),
)


def nin_block(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> nn.Sequential:
    """An mlpconv layer: a ``k x k`` convolution and two 1x1 convolutions, each with a ReLU.

    The two 1x1 convolutions are the hidden and output layers of a per-pixel MLP applied to the
    first convolution's response.

    Args:
        in_channels: channels of the input.
        out_channels: channels of all three convolutions.
        kernel_size: size of the first convolution's kernel.
        stride: stride of the first convolution.
        padding: zero padding of the first convolution.

    Returns:
        ``nn.Sequential(conv, ReLU, conv1x1, ReLU, conv1x1, ReLU)``.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H', W')`` with
        ``H' = (H + 2 padding - kernel_size) // stride + 1``.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
    )


class NiN(nn.Module):
    """Network in Network: mlpconv blocks and max pools (``features``), then ``classifier``.

    ``classifier`` is dropout, an mlpconv with one output map per class, global average pooling
    and a flatten: there are no fully connected layers.

    Args:
        blocks: ``(out_channels, kernel_size, stride, padding)`` of each mlpconv block in
            ``features``, for example :data:`NIN_IMAGENET`.
        num_classes: number of output logits (and channels of the last mlpconv).
        in_channels: channels of the input image.
        dropout: probability of zeroing a unit in front of the last mlpconv.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(
        self,
        blocks: Sequence[tuple[int, int, int, int]] = NIN_IMAGENET,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for out_channels, kernel_size, stride, padding in blocks:
            layers.append(nin_block(channels, out_channels, kernel_size, stride, padding))
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nin_block(channels, num_classes, kernel_size=3, padding=1),  # one map per class
            nn.AdaptiveAvgPool2d((1, 1)),  # global average pooling
            nn.Flatten(),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Classify a batch of images.

        Args:
            x: images, ``(N, in_channels, H, W)``.

        Returns:
            Logits, ``(N, num_classes)``, non-negative.
        """
        return self.classifier(self.features(x))  # (N, 384, h, w) -> (N, num_classes)


def nin(
    *, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> NiN:
    """Network in Network for 224 px images (7,439,608 parameters at the defaults).

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image.
        small_input: 3x3 stride-1 first convolution, for 28-32 px images.
        **kwargs: passed to :class:`NiN` (for example ``dropout``).

    Returns:
        A :class:`NiN`.
    """
    blocks = NIN_IMAGENET
    if small_input:
        blocks = ((NIN_IMAGENET[0][0], 3, 1, 1), *NIN_IMAGENET[1:])
    return NiN(blocks, num_classes=num_classes, in_channels=in_channels, **kwargs)
