"""LeNet-5: parameter count from the layer table, shapes, and the sigmoid/average-pool design."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlab.models.lenet import LeNet, lenet5
from tests.conftest import count_params


def expected_params(in_channels: int, num_classes: int) -> int:
    """C1 (6 5x5), C3 (16 5x5), then 400 -> 120 -> 84 -> num_classes, all with biases."""
    conv = [(in_channels, 6, 5), (6, 16, 5)]
    fc = [(16 * 5 * 5, 120), (120, 84), (84, num_classes)]
    return sum(i * o * k * k + o for i, o, k in conv) + sum(i * o + o for i, o in fc)


def test_parameter_count_from_layer_table() -> None:
    # 156 + 2,416 + 48,120 + 10,164 + 850
    assert expected_params(1, 10) == 61_706
    assert count_params(lenet5()) == 61_706
    assert count_params(lenet5(in_channels=3, num_classes=100)) == expected_params(3, 100)


def test_is_the_sigmoid_average_pool_baseline() -> None:
    kinds = {type(m) for m in lenet5().modules()}
    assert nn.Sigmoid in kinds and nn.AvgPool2d in kinds
    assert not kinds & {nn.ReLU, nn.MaxPool2d}, "LeNet is the sigmoid / average-pool baseline"


@pytest.mark.parametrize(
    ("in_channels", "size", "kwargs"),
    [(1, 28, {}), (3, 32, {"padding": 0})],
    ids=["28px-gray", "32px-rgb-paper-geometry"],
)
def test_native_geometry_gives_5x5_maps(in_channels: int, size: int, kwargs: dict) -> None:
    model = lenet5(num_classes=10, in_channels=in_channels, **kwargs).eval()
    with torch.no_grad():
        assert model.features(torch.randn(2, in_channels, size, size)).shape == (2, 16, 5, 5)


@pytest.mark.parametrize(("in_channels", "size"), [(1, 28), (3, 32), (3, 12)])
def test_output_shape_with_defaults(in_channels: int, size: int) -> None:
    model = lenet5(num_classes=10, in_channels=in_channels).eval()
    with torch.no_grad():
        y = model(torch.randn(2, in_channels, size, size))
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()


def test_smallest_input_is_12() -> None:
    with torch.no_grad(), pytest.raises(RuntimeError):
        lenet5()(torch.randn(1, 1, 11, 11))


def test_learns_a_tiny_batch() -> None:
    """Xavier init: a few Adam steps must fit 16 random images (a dead init would not)."""
    torch.manual_seed(0)
    model = LeNet()
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
