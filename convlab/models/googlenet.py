"""GoogLeNet (Inception v1): parallel 1x1, 3x3, 5x5 and pooling paths, concatenated.

Paper: C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan, V. Vanhoucke,
A. Rabinovich, "Going Deeper with Convolutions", 2014 (arXiv:1409.4842). Key idea: an Inception
block looks at the same input at several scales at once,
``y = concat(conv1x1(x), conv3x3(reduce(x)), conv5x5(reduce(x)), proj(maxpool3x3(x)))``, and
1x1 "reduce" convolutions in front of the large kernels (NiN's idea) keep it cheap, so 22 layers
cost about 7M parameters against AlexNet's 61M.

Two factories share one class:

* :func:`googlenet` is torchvision's ``googlenet``, key for key (6,624,904 parameters with
  ``aux_logits=False``; 13,004,888 with the two auxiliary heads). torchvision departs from the
  paper in: batch norm (``eps=0.001``) after every convolution, whose bias it drops; a 3x3 kernel
  where the paper has 5x5 in the third path (a bug kept for its ported weights); the 2x2 max pool
  in front of block 5a where the paper has 3x3 stride 2; no local response normalization;
  dropout 0.2 before the last linear layer where the paper has 0.4.
* :func:`googlenet_paper` is the network as published (Table 1, Figure 3): 5x5 third path,
  convolutions with bias and no batch norm, local response normalization after the first max
  pool and after the stem's 3x3 convolution, a 3x3 stride-2 pool before 5a, dropout 0.4, one
  linear classifier. Every one of these choices is one argument of :class:`GoogLeNet` (and
  ``branch3_kernel_size`` of :class:`Inception`).

Departures of :func:`googlenet_paper` from the paper:

* The response normalization constants are not in the paper; we use those of the BVLC Caffe
  reproduction (``size=5, alpha=1e-4, beta=0.75, k=1``, with Caffe's and PyTorch's
  ``alpha / size`` convention).
* The auxiliary heads (``aux_logits=True``; off by default in both factories) average-pool their
  14x14 input to 4x4 adaptively, windows 4 wide at 0, 3, 7, 10, as torchvision does; the paper's
  5x5 stride-3 pool has windows 5 wide at 0, 3, 6, 9. The adaptive pool also lets small inputs
  through. The paper adds the auxiliary losses with weight 0.3 while training (Sec. 5).
* Table 1's "params" column is approximate: it counts no biases, its rows sum to about 6.8M,
  several rows are a few percent off the sizes in the same table, and its conv1 entry (2.7K) is
  far from the ``7 * 7 * 3 * 64 = 9,408`` weights of that layer. From the layer sizes the network
  has 6,990,272 weights and 8,280 biases, 6,998,552 parameters.
* Initialization (both factories): He et al. 2015 (fan-in) for convolutions, ``N(0, 0.01^2)``
  for linear layers, zero biases.

``small_input=True`` (28x28 Fashion-MNIST, 32x32 CIFAR-10), for both factories: conv1 becomes
3x3, stride 1, padding 1, and the max pool after it is left out; the stem's second max pool
stays, so the Inception blocks run at 16, 8 and 4 px for a 32 px input (28 -> 14 -> 7 -> 4)
instead of 28, 14 and 7 for 224 px. Everything else is unchanged. The smallest inputs, small and
native: 4 and 15 px for :func:`googlenet`, 8 and 31 px for :func:`googlenet_paper` (its 3x3 pool
before 5a needs a 2x2 map).

``transform_input=True`` expects images normalized with the ImageNet mean and standard deviation
and rescales them to ``2 * pixel - 1`` (``[-1, 1]``), the scaling of the weights torchvision
ported from TensorFlow.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "INCEPTION_TABLE",
    "BasicConv2d",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionAux",
    "googlenet",
    "googlenet_paper",
]

# Table 1: in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_TABLE: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class GoogLeNetOutputs(NamedTuple):
    """What a training-mode :class:`GoogLeNet` with auxiliary heads returns.

    Field names and order are torchvision's, so a training loop written for either model works
    with both. The auxiliary logits come from the heads after blocks 4d (``aux_logits2``) and 4a
    (``aux_logits1``).
    """

    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


class BasicConv2d(nn.Module):
    """Convolution, batch norm (``eps=0.001``, or nothing), ReLU.

    Attribute names (``conv``, ``bn``) match torchvision's GoogLeNet. Without batch norm ``bn``
    is an ``nn.Identity`` and the convolution gets its bias back.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: convolution stride.
        padding: zero padding.
        batch_norm: normalize after the convolution.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H', W')``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=not batch_norm
        )
        self.bn: nn.Module = (
            nn.BatchNorm2d(out_channels, eps=0.001) if batch_norm else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Apply convolution, normalization and ReLU."""
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """The Inception block: four paths over the same input, concatenated along channels.

    Path 1 is a 1x1 convolution; path 2 a 1x1 reduction and a 3x3 convolution; path 3 a 1x1
    reduction and a ``branch3_kernel_size`` convolution (5 in the paper, 3 in torchvision's
    port); path 4 a 3x3 stride-1 max pool and a 1x1 projection. Every path keeps the spatial
    size. The argument names are the columns of the paper's Table 1.

    Args:
        in_channels: input channels.
        ch1x1: "#1x1", channels of path 1.
        ch3x3red: "#3x3 reduce", channels of path 2's 1x1 reduction.
        ch3x3: "#3x3", channels of path 2.
        ch5x5red: "#5x5 reduce", channels of path 3's 1x1 reduction.
        ch5x5: "#5x5", channels of path 3.
        pool_proj: "pool proj", channels of path 4.
        branch3_kernel_size: kernel of path 3's second convolution; 5 is the paper's.
        batch_norm: batch norm after every convolution (torchvision) or none (the paper).

    Shape:
        ``(N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        branch3_kernel_size: int = 3,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        conv = partial(BasicConv2d, batch_norm=batch_norm)
        k = branch3_kernel_size
        self.branch1 = conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(
            conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3, padding=1)
        )
        self.branch3 = nn.Sequential(
            conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, k, padding=k // 2)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1), conv(in_channels, pool_proj, 1)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        """Run the four paths and concatenate them along channels."""
        paths = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(paths, dim=1)  # (N, out_channels, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier: average pool to 4x4, 1x1 conv (128), fc 1024, dropout, fc.

    Args:
        in_channels: channels of the Inception block it reads (512 after 4a, 528 after 4d).
        num_classes: number of output logits.
        dropout: probability of zeroing a hidden unit (0.7 in the paper).
        batch_norm: batch norm after the 1x1 convolution.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(
        self, in_channels: int, num_classes: int, dropout: float = 0.7, batch_norm: bool = True
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Classify from an intermediate feature map."""
        x = self.conv(self.avgpool(x))  # (N, 128, 4, 4)
        x = self.relu(self.fc1(torch.flatten(x, 1)))  # (N, 1024)
        return self.fc2(self.dropout(x))  # (N, num_classes)


class GoogLeNet(nn.Module):
    """GoogLeNet: a stem, nine Inception blocks, global average pooling, one linear layer.

    Attribute names are torchvision's (``conv1`` ... ``inception5b``, ``aux1``, ``aux2``,
    ``fc``); ``norm1`` and ``norm2`` are the paper's response normalizations (identities
    otherwise) and hold no parameters.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image.
        aux_logits: build the two auxiliary classifiers (used in training mode only).
        transform_input: rescale ImageNet-normalized input to ``[-1, 1]`` first (3 channels).
        batch_norm: batch norm after every convolution (torchvision) or none (the paper).
        branch3_kernel_size: kernel of the Inception blocks' third path (paper: 5).
        local_response_norm: response normalization in the stem (the paper).
        maxpool4_kernel_size: kernel of the stride-2 max pool before block 5a (paper: 3).
        small_input: 3x3 stride-1 conv1 and no max pool after it, for 28-32 px images.
        dropout: probability of zeroing a feature in front of ``fc``.
        dropout_aux: the same in the auxiliary classifiers.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``; in training mode with ``aux_logits``, a
        :class:`GoogLeNetOutputs` of three such tensors.
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = False,
        transform_input: bool = False,
        batch_norm: bool = True,
        branch3_kernel_size: int = 3,
        local_response_norm: bool = False,
        maxpool4_kernel_size: int = 2,
        small_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError(f"transform_input needs 3 input channels, got {in_channels}")
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        conv = partial(BasicConv2d, batch_norm=batch_norm)
        block = partial(Inception, branch3_kernel_size=branch3_kernel_size, batch_norm=batch_norm)

        def norm() -> nn.Module:
            # BVLC Caffe constants; nn.LocalResponseNorm divides alpha by size, as Caffe does.
            if local_response_norm:
                return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            return nn.Identity()

        if small_input:
            self.conv1 = conv(in_channels, 64, 3, padding=1)
            self.maxpool1: nn.Module = nn.Identity()
        else:
            self.conv1 = conv(in_channels, 64, 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.norm1 = norm()
        self.conv2 = conv(64, 64, 1)
        self.conv3 = conv(64, 192, 3, padding=1)
        self.norm2 = norm()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = block(*INCEPTION_TABLE["3a"])
        self.inception3b = block(*INCEPTION_TABLE["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = block(*INCEPTION_TABLE["4a"])
        self.inception4b = block(*INCEPTION_TABLE["4b"])
        self.inception4c = block(*INCEPTION_TABLE["4c"])
        self.inception4d = block(*INCEPTION_TABLE["4d"])
        self.inception4e = block(*INCEPTION_TABLE["4e"])
        self.maxpool4 = nn.MaxPool2d(maxpool4_kernel_size, stride=2, ceil_mode=True)
        self.inception5a = block(*INCEPTION_TABLE["5a"])
        self.inception5b = block(*INCEPTION_TABLE["5b"])

        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout_aux, batch_norm)
            self.aux2 = InceptionAux(528, num_classes, dropout_aux, batch_norm)

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def _transform_input(self, x: Tensor) -> Tensor:
        # x = (pixel - mean) / std  ->  (pixel - 0.5) / 0.5 = x * std / 0.5 + (mean - 0.5) / 0.5
        scale = x.new_tensor([s / 0.5 for s in _IMAGENET_STD]).view(1, 3, 1, 1)
        shift = x.new_tensor([(m - 0.5) / 0.5 for m in _IMAGENET_MEAN]).view(1, 3, 1, 1)
        return x * scale + shift

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        """Classify a batch of images.

        Args:
            x: images, ``(N, in_channels, H, W)``.

        Returns:
            Logits ``(N, num_classes)``; in training mode with ``aux_logits``,
            ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``.
        """
        if self.transform_input:
            x = self._transform_input(x)
        # Shapes for a 224 px input.
        x = self.norm1(self.maxpool1(self.conv1(x)))  # (N, 64, 56, 56)
        x = self.maxpool2(self.norm2(self.conv3(self.conv2(x))))  # (N, 192, 28, 28)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (N, 480, 14, 14)
        x = self.inception4a(x)  # (N, 512, 14, 14)
        with_aux = self.training and self.aux_logits
        aux1 = self.aux1(x) if with_aux and self.aux1 is not None else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (N, 528, 14, 14)
        aux2 = self.aux2(x) if with_aux and self.aux2 is not None else None
        x = self.maxpool4(self.inception4e(x))  # (N, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))  # (N, 1024, 7, 7)
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))  # (N, num_classes)
        if with_aux:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    aux_logits: bool = False,
    transform_input: bool = False,
    **kwargs: Any,
) -> GoogLeNet:
    """torchvision's GoogLeNet (6,624,904 parameters at the defaults; native 224 px).

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image.
        small_input: 3x3 stride-1 conv1 and no max pool after it, for 28-32 px images.
        aux_logits: add the two auxiliary classifiers (keys ``aux1``, ``aux2`` as torchvision).
        transform_input: rescale ImageNet-normalized input to ``[-1, 1]``, as torchvision's
            ported weights expect.
        **kwargs: passed to :class:`GoogLeNet` (for example ``dropout``).

    Returns:
        A :class:`GoogLeNet`.
    """
    return GoogLeNet(
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        aux_logits=aux_logits,
        transform_input=transform_input,
        **kwargs,
    )


def googlenet_paper(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    aux_logits: bool = False,
    **kwargs: Any,
) -> GoogLeNet:
    """GoogLeNet as published in 2014 (6,998,552 parameters at the defaults; native 224 px).

    5x5 third path, no batch norm, response normalization in the stem, a 3x3 pool before 5a,
    dropout 0.4 (see the module docstring).

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image.
        small_input: 3x3 stride-1 conv1 and no max pool after it, for 28-32 px images.
        aux_logits: add the paper's two auxiliary classifiers (training mode only).
        **kwargs: passed to :class:`GoogLeNet`.

    Returns:
        A :class:`GoogLeNet`.
    """
    paper = {
        "batch_norm": False,
        "branch3_kernel_size": 5,
        "local_response_norm": True,
        "maxpool4_kernel_size": 3,
        "dropout": 0.4,
    }
    return GoogLeNet(
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        aux_logits=aux_logits,
        **{**paper, **kwargs},
    )
