"""The model table: every name builds, runs at its native and small sizes, and matches torchvision."""

from __future__ import annotations

import pytest
import torch

from convlab import models

# Every torchvision model the course covers, under torchvision's own name.
TORCHVISION_NAMES = {
    "alexnet",
    *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
    "googlenet",
    *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
    "resnext50_32x4d",
    "resnext101_32x8d",
    *(f"densenet{d}" for d in (121, 161, 169, 201)),
    "mnasnet0_5",
    "mnasnet1_0",
    *(f"efficientnet_b{i}" for i in range(8)),
}

COURSE_NAMES = {
    "lenet5",
    "alexnet_paper",
    "nin",
    "googlenet_paper",
    *(f"resnet{d}" for d in (20, 56, 110, 1202)),
    "plain20",
    "plain56",
    "preact_resnet164",
    "preact_resnet1001",
    "mnasnet_a1",
}


def test_names_cover_the_course():
    names = models.names()
    assert names == sorted(set(names))
    assert TORCHVISION_NAMES | COURSE_NAMES <= set(names)
    assert {n for n in names if models.spec(n).torchvision} == TORCHVISION_NAMES


def test_unknown_name_is_one_clear_error():
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'.*resnet18") as info:
        models.create("resnet19")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", models.names())
def test_native_size_output(name):
    """Training-mode forward (batch statistics) at the size the network was designed for.

    In evaluation a freshly built network normalizes with running statistics of 0 and 1, which
    rescale nothing: ResNet-1202's activations then double block after block and overflow.
    """
    spec = models.spec(name)
    model = models.create(name, num_classes=7).train()
    channels = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    with torch.no_grad():
        out = model(torch.randn(2, channels, spec.input_size, spec.input_size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", models.names())
def test_small_configuration(name):
    """The registry's small-image keyword arguments give a network for 28x28 grey images.

    (Each family's own tests also run 32x32 colour images through it.)
    """
    model = models.create(name, num_classes=10, in_channels=1, **models.spec(name).small).train()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(TORCHVISION_NAMES))
def test_parameter_count_equals_torchvision_published(name):
    from torchvision.models import get_model_weights

    published = get_model_weights(name).DEFAULT.meta["num_params"]
    model = models.create(name)
    assert sum(p.numel() for p in model.parameters()) == published
