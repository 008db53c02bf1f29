"""Every architecture of the course, by name.

``create(name, **kwargs)`` builds a model and ``names()`` lists them. Every model takes
``num_classes`` and ``in_channels``. ``spec(name)`` tells a model's native input size and the
keyword arguments of its configuration for small images (28x28 Fashion-MNIST, 32x32 CIFAR-10)::

    model = create("resnet18", **spec("resnet18").small, num_classes=10)

Where a name is also a ``torchvision.models`` name, the model is torchvision's, parameter for
parameter and key for key (see :func:`convlab.models.pretrained.load_torchvision_weights`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from convlab.models import (
    alexnet,
    densenet,
    efficientnet,
    googlenet,
    lenet,
    mnasnet,
    nin,
    resnet,
    resnet_cifar,
    vgg,
)
from convlab.models.pretrained import load_torchvision_weights

__all__ = ["ModelSpec", "create", "load_torchvision_weights", "names", "spec"]

SMALL = MappingProxyType({"small_input": True})


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model.

    Attributes:
        factory: the function that builds it.
        input_size: the side of the square input it was designed for.
        small: keyword arguments that configure it for 28x28 and 32x32 inputs.
        torchvision: whether ``torchvision.models`` has a model of the same name and weights.
    """

    factory: Callable[..., nn.Module]
    input_size: int = 224
    small: Mapping[str, Any] = field(default_factory=lambda: SMALL)
    torchvision: bool = False


NATIVE_SMALL: Mapping[str, Any] = MappingProxyType({})  # already built for 28-32 px inputs

_TABLE: dict[str, ModelSpec] = {
    # Chapter 1: the baseline AlexNet is contrasted with.
    "lenet5": ModelSpec(lenet.lenet5, input_size=28, small=NATIVE_SMALL),
    # Chapter 2: AlexNet, torchvision's one-GPU variant and the 2012 paper's two-GPU network.
    "alexnet": ModelSpec(alexnet.alexnet, torchvision=True),
    "alexnet_paper": ModelSpec(alexnet.alexnet_paper, input_size=227),
    # Chapter 3: VGG, Table 1 configurations A, B, D, E, with and without batch norm.
    **{
        name: ModelSpec(getattr(vgg, name), torchvision=True)
        for name in (f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn"))
    },
    # Chapter 4: Network in Network.
    "nin": ModelSpec(nin.nin),
    # Chapter 5: GoogLeNet as torchvision has it, and as published.
    "googlenet": ModelSpec(googlenet.googlenet, torchvision=True),
    "googlenet_paper": ModelSpec(googlenet.googlenet_paper),
    # Chapter 7: ResNet and ResNeXt for ImageNet ...
    **{
        name: ModelSpec(getattr(resnet, name), torchvision=True)
        for name in (
            *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
            "resnext50_32x4d",
            "resnext101_32x8d",
        )
    },
    # ... the CIFAR networks of He et al. 2015 (Sec. 4.2), with and without shortcuts ...
    **{
        name: ModelSpec(getattr(resnet_cifar, name), input_size=32, small=NATIVE_SMALL)
        for name in (
            *(f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202)),
            *(f"plain{d}" for d in (20, 32, 44, 56, 110)),
            # ... and the pre-activation networks of He et al. 2016.
            *(f"preact_resnet{d}" for d in (110, 164, 1001)),
        )
    },
    # Chapter 9: DenseNet.
    **{
        name: ModelSpec(getattr(densenet, name), torchvision=True)
        for name in (f"densenet{d}" for d in (121, 161, 169, 201))
    },
    # Chapter 10: MnasNet, torchvision's (the reference code's B1) and the paper's A1.
    "mnasnet0_5": ModelSpec(mnasnet.mnasnet0_5, torchvision=True),
    "mnasnet1_0": ModelSpec(mnasnet.mnasnet1_0, torchvision=True),
    "mnasnet_a1": ModelSpec(mnasnet.mnasnet_a1),
    # Chapter 11: EfficientNet B0 to B7, each at its own resolution.
    **{
        name: ModelSpec(getattr(efficientnet, name), input_size=size, torchvision=True)
        for name, size in efficientnet.NATIVE_RESOLUTION.items()
    },
}


def names() -> list[str]:
    """Every model name, sorted."""
    return sorted(_TABLE)


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a model name.

    Raises:
        ValueError: the name is not in the table; the message suggests the closest names.
    """
    try:
        return _TABLE[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _TABLE, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"unknown model {name!r}: {hint}valid names are {', '.join(names())}"
        ) from None


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by name.

    Args:
        name: one of :func:`names`, for example ``"resnet18"``.
        **kwargs: passed to the model's factory: ``num_classes``, ``in_channels``, and the
            factory's own options (``small_input=True`` for 28-32 px inputs; see :func:`spec`).

    Returns:
        The model, freshly initialized.

    Raises:
        ValueError: unknown name.
    """
    return spec(name).factory(**kwargs)
