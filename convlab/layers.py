"""Building blocks shared by two or more model families.

* :class:`ConvBNAct`: convolution, batch norm, activation, the stem of most modern networks.
* :class:`SqueezeExcitation`: channel attention of Hu et al. 2018 (arXiv:1709.01507),
  ``y = x * sigmoid(W2 relu(W1 avgpool(x)))``, used by MnasNet-A1 and EfficientNet.
* :func:`make_divisible`: rounds a scaled channel count to a hardware-friendly multiple.
* :class:`StochasticDepth`: drops a residual branch per sample (Huang et al. 2016, arXiv:1603.09382).
* :func:`batch_norm` and :class:`BatchNorm`: batch normalization written out (Ioffe and Szegedy
  2015, arXiv:1502.03167), ``y = gamma * (x - mu_B) / sqrt(sigma_B^2 + eps) + beta``, numerically
  interchangeable with ``torch.nn.BatchNorm1d/2d`` in training and evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "BatchNorm",
    "ConvBNAct",
    "SqueezeExcitation",
    "StochasticDepth",
    "batch_norm",
    "make_divisible",
]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never losing more than 10%.

    This is the rounding rule of the MobileNet, MnasNet and EfficientNet reference code: the
    nearest multiple, bumped up one step if rounding down would remove more than a tenth of the
    channels.

    Args:
        value: the scaled channel count, for example ``32 * 1.1``.
        divisor: the multiple to round to.
        min_value: the smallest result allowed (defaults to ``divisor``).

    Returns:
        A positive multiple of ``divisor``.
    """
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """``Conv2d -> BatchNorm2d -> activation`` with "same" padding for odd kernels.

    Children are positional (``0``, ``1``, ``2``), so state dicts match torchvision's
    ``Conv2dNormActivation``. The convolution has no bias when a norm layer follows it: batch
    norm's shift ``beta`` would absorb it.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: convolution stride.
        groups: convolution groups (``groups == in_channels`` makes it depthwise).
        norm_layer: builds the norm from the channel count; ``None`` leaves it out.
        activation: builds the activation; ``None`` leaves it out.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        activation: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=(kernel_size - 1) // 2,
                groups=groups,
                bias=norm_layer is None,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation: rescale each channel by a gate computed from all channels.

    Attribute names (``fc1``, ``fc2``) match torchvision's, so state dicts are interchangeable.

    Args:
        channels: channels of the input (and output).
        squeeze_channels: width of the bottleneck between the two 1x1 convolutions.
        activation: nonlinearity after ``fc1`` (ReLU in the SE paper, SiLU in EfficientNet).
        scale_activation: gate nonlinearity (sigmoid; hard sigmoid in MobileNetV3).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        activation: Callable[[], nn.Module] = nn.ReLU,
        scale_activation: Callable[[], nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc2(self.activation(self.fc1(self.avgpool(x))))  # (N, C, 1, 1)
        return x * self.scale_activation(gate)


class StochasticDepth(nn.Module):
    """Zero a residual branch for a random subset of the batch while training.

    Kept samples are scaled by ``1 / (1 - p)`` so the expected output is unchanged; in
    evaluation the module is the identity.

    Args:
        p: probability of dropping the branch for a sample.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"StochasticDepth: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    num_batches_tracked: Tensor | None = None,
) -> Tensor:
    """Batch normalization over the batch (2-D input) or batch and space (4-D input).

    In training the batch's own mean and biased variance normalize ``x``, and the running
    estimates move towards the batch's mean and *unbiased* variance:
    ``running = (1 - momentum) * running + momentum * batch``. With ``momentum=None`` they are
    the cumulative average over all batches seen, as in PyTorch. In evaluation the running
    estimates normalize ``x``. ``weight`` (gamma) and ``bias`` (beta) then scale and shift, and
    can undo the normalization entirely (gamma = sigma, beta = mu).

    Args:
        x: ``(N, C)`` or ``(N, C, H, W)``.
        running_mean, running_var: ``(C,)`` buffers, updated in place while training; ``None``
            to always use batch statistics.
        weight, bias: ``(C,)`` gamma and beta, or ``None`` for 1 and 0.
        training: use (and update with) batch statistics.
        momentum: weight of the newest batch in the running estimates.
        eps: added to the variance for numerical safety.
        num_batches_tracked: counter buffer, incremented in training (needed for
            ``momentum=None``).

    Returns:
        A tensor shaped like ``x``.
    """
    if x.dim() not in (2, 4):
        raise ValueError(
            f"batch_norm expects (N, C) or (N, C, H, W) input, got shape {tuple(x.shape)}"
        )
    dims = (0,) if x.dim() == 2 else (0, 2, 3)
    shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
    use_batch_stats = training or running_mean is None or running_var is None
    if use_batch_stats:
        count = x.numel() // x.shape[1]
        if training and count < 2:
            raise ValueError(
                "batch_norm needs more than one value per channel in training; "
                f"got input of shape {tuple(x.shape)} (use a batch larger than 1)"
            )
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        if training and running_mean is not None and running_var is not None:
            with torch.no_grad():
                if num_batches_tracked is not None:
                    num_batches_tracked.add_(1)
                factor = momentum
                if factor is None:
                    if num_batches_tracked is None:
                        raise ValueError("momentum=None needs num_batches_tracked")
                    factor = 1.0 / float(num_batches_tracked.item())
                running_mean.lerp_(mean.detach(), factor)
                running_var.lerp_(var.detach() * count / (count - 1), factor)
    else:
        mean, var = running_mean, running_var
    x_hat = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + eps)
    if weight is not None:
        x_hat = x_hat * weight.reshape(shape)
    if bias is not None:
        x_hat = x_hat + bias.reshape(shape)
    return x_hat


class BatchNorm(nn.Module):
    """Batch normalization as a module, for ``(N, C)`` and ``(N, C, H, W)`` inputs.

    Parameters and buffers carry the names of ``torch.nn.BatchNorm1d/2d`` (``weight``, ``bias``,
    ``running_mean``, ``running_var``, ``num_batches_tracked``), so state dicts move both ways.

    Args:
        num_features: channels ``C``.
        eps: added to the variance.
        momentum: weight of the newest batch in the running estimates (``None``: cumulative).
        affine: learn gamma and beta.
        track_running_stats: keep running estimates for evaluation.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm({self.num_features}) got input of shape {tuple(x.shape)}: "
                f"dimension 1 must have {self.num_features} channels"
            )
        return batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
            num_batches_tracked=self.num_batches_tracked,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
