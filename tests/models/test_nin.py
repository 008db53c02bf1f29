"""Network in Network: parameter count from the layer table, mlpconv blocks, shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlab.models.nin import NiN, nin, nin_block
from tests.conftest import count_params


def expected_params(in_channels: int, num_classes: int) -> int:
    """Four mlpconv blocks: a k x k convolution and two 1x1 convolutions, all with biases.

    block  channels     k   params at 3 channels in, 1000 classes
    1      96           11     34,944 + 2 x   9,312 =    53,568
    2      256           5    614,656 + 2 x  65,792 =   746,240
    3      384           3    885,120 + 2 x 147,840 = 1,180,800
    4      num_classes   3  3,457,000 + 2 x 1,001,000 = 5,459,000
    total                                              7,439,608
    """
    table = [(96, 11), (256, 5), (384, 3), (num_classes, 3)]
    total, channels = 0, in_channels
    for out_channels, k in table:
        total += channels * out_channels * k * k + out_channels  # k x k convolution
        total += 2 * (out_channels * out_channels + out_channels)  # two 1x1 convolutions
        channels = out_channels
    return total


def test_parameter_count_from_layer_table() -> None:
    assert expected_params(3, 1000) == 7_439_608
    assert count_params(nin()) == 7_439_608
    assert count_params(nin(num_classes=10, in_channels=1)) == expected_params(1, 10)
    # small_input only changes the first kernel: 11x11 -> 3x3
    assert count_params(nin(small_input=True)) == 7_439_608 - 96 * 3 * (121 - 9)


def test_nin_block_is_conv_then_two_1x1_convs() -> None:
    block = nin_block(8, 16, kernel_size=5, stride=2, padding=2)
    assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU] * 3
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (1, 1), (1, 1)]
    assert convs[0].stride == (2, 2) and convs[1].stride == (1, 1)
    assert block(torch.randn(2, 8, 12, 12)).shape == (2, 16, 6, 6)


def test_no_fully_connected_layers() -> None:
    assert not any(isinstance(m, nn.Linear) for m in nin().modules())


def test_native_224() -> None:
    model = nin(num_classes=10).eval()
    with torch.no_grad():
        maps = model.features(torch.randn(1, 3, 224, 224))
        y = model.classifier(maps)
    assert maps.shape == (1, 384, 5, 5)
    assert y.shape == (1, 10)
    assert (y >= 0).all()  # the last mlpconv ends in a ReLU


@pytest.mark.parametrize(("small_input", "smallest"), [(False, 67), (True, 15)])
def test_smallest_input(small_input: bool, smallest: int) -> None:
    model = nin(num_classes=10, small_input=small_input).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, smallest, smallest)).shape == (1, 10)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, smallest - 1, smallest - 1))


@pytest.mark.parametrize(("in_channels", "size"), [(1, 28), (3, 32)])
def test_small_input(in_channels: int, size: int) -> None:
    model: NiN = nin(num_classes=10, in_channels=in_channels, small_input=True).eval()
    first = model.features[0][0]
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)
    with torch.no_grad():
        y = model(torch.randn(2, in_channels, size, size))
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()
