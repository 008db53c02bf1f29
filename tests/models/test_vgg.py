"""VGG: torchvision parity for all eight configurations, blocks, and the small-input variant."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn

from convlab.models import vgg
from convlab.models.vgg import VGG, VGG_PARAMS, vgg_block
from tests.conftest import count_params

NAMES = list(VGG_PARAMS)  # one entry per factory


@pytest.mark.parametrize("name", NAMES)
def test_matches_torchvision(name: str, parity: Callable[..., None]) -> None:
    # Built on the meta device and then given uninitialized CPU storage: parity loads every
    # tensor from the reference anyway, and skipping our init saves a second per model.
    with torch.device("meta"):
        ours = getattr(vgg, name)()
    ours = ours.to_empty(device="cpu")
    reference = getattr(torchvision.models, name)(weights=None)  # He init keeps the signal
    assert count_params(ours) == count_params(reference) == VGG_PARAMS[name]
    parity(ours, reference, input_size=(32, 32), batch=1)  # the 1x1 map is pooled to 7x7


@pytest.mark.parametrize(
    ("stages", "depth"), [(vgg.VGG11, 11), (vgg.VGG13, 13), (vgg.VGG16, 16), (vgg.VGG19, 19)]
)
def test_stage_tables_have_the_named_depth(stages: tuple, depth: int) -> None:
    assert sum(n for n, _ in stages) + 3 == depth  # convolutions plus three linear layers
    assert [c for _, c in stages] == [64, 128, 256, 512, 512]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_block(batch_norm: bool) -> None:
    block = vgg_block(3, 16, 32, batch_norm=batch_norm)
    kinds = [type(m) for m in block]
    per_conv = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] if batch_norm else [nn.Conv2d, nn.ReLU]
    assert kinds == per_conv * 3 + [nn.MaxPool2d]
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert [c.in_channels for c in convs] == [16, 32, 32]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert block(torch.randn(2, 16, 10, 10)).shape == (2, 32, 5, 5)


@pytest.mark.parametrize("name", NAMES)
def test_small_input(name: str) -> None:
    factory: Callable[..., VGG] = getattr(vgg, name)
    for in_channels, sizes in [(1, (28,)), (3, (32, 16))]:  # 16 px is the smallest
        model = factory(num_classes=10, in_channels=in_channels, small_input=True).eval()
        for size in sizes:
            with torch.no_grad():
                y = model(torch.randn(2, in_channels, size, size))
            assert y.shape == (2, 10)
            assert torch.isfinite(y).all()
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 4
    assert model.classifier[0].in_features == 512 and model.classifier[-1].in_features == 512


def test_native_smallest_input_is_32() -> None:
    model = vgg.vgg11(num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 10)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 1, 31, 31))


def test_small_smallest_input_is_16() -> None:
    model = vgg.vgg11(num_classes=10, in_channels=3, small_input=True).eval()
    with torch.no_grad(), pytest.raises(RuntimeError):
        model(torch.randn(1, 3, 15, 15))
