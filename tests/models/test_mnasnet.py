"""MnasNet: torchvision parity (B1), MnasNet-A1 against the paper, the reward, small inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.models as tvm
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlab.layers import SqueezeExcitation
from convlab.models import mnasnet
from convlab.models.efficientnet import MBConv
from convlab.models.mnasnet import MNASNET_A1, MNASNET_PARAMS, reward
from tests.conftest import count_params

# MnasNet-A1: the paper reports 3.9M parameters and 312M multiply-adds (Table 1).
PAPER_A1_PARAMS = 3.9e6
PAPER_A1_MACS = 312e6
A1_TOLERANCE = 0.01  # relative; the paper rounds to 0.1M (our count is 0.33% below)


@pytest.mark.parametrize("name", ["mnasnet0_5", "mnasnet1_0"])
def test_torchvision_parity_and_recorded_params(name, parity):
    ours = getattr(mnasnet, name)()
    reference = getattr(tvm, name)(weights=None)
    assert count_params(ours) == count_params(reference) == MNASNET_PARAMS[name]
    parity(ours, reference, input_size=(64, 64), batch=2)


def test_torchvision_layout_has_no_se_and_its_batch_norm_momentum():
    model = mnasnet.mnasnet1_0()
    assert not any(isinstance(m, SqueezeExcitation) for m in model.modules())
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == pytest.approx(1 - 0.9997) for m in norms)
    assert [len(stage) for stage in model.layers[8:14]] == [3, 3, 3, 2, 4, 1]


def test_a1_parameter_count_matches_paper():
    n = count_params(mnasnet.mnasnet_a1())
    assert n == MNASNET_PARAMS["mnasnet_a1"]  # SE squeeze = max(1, int(0.25 * block input))
    assert abs(n - PAPER_A1_PARAMS) / PAPER_A1_PARAMS < A1_TOLERANCE


def test_a1_multiply_adds_match_paper():
    model = mnasnet.mnasnet_a1().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    macs = counter.get_total_flops() / 2  # FLOPs = 2 x MACs
    assert abs(macs - PAPER_A1_MACS) / PAPER_A1_MACS < 0.01


def test_a1_se_convention_is_relative_to_block_input():
    model = mnasnet.mnasnet_a1()
    blocks = [m for m in model.modules() if isinstance(m, MBConv)]
    assert len(blocks) == sum(row.num_layers for row in MNASNET_A1) == 16
    with_se = 0
    for block in blocks:
        in_channels = block.block[0][0].in_channels
        se = [m for m in block.modules() if isinstance(m, SqueezeExcitation)]
        if se:
            with_se += 1
            assert se[0].fc1.out_channels == max(1, in_channels // 4)
            assert isinstance(se[0].activation, nn.ReLU)
    assert with_se == 3 + 2 + 3  # the 40-, 112- and 160-channel stages
    assert not any(isinstance(m, nn.SiLU) for m in model.modules())


def test_a1_shapes_follow_figure_7():
    model = mnasnet.mnasnet_a1().eval()
    x = torch.randn(1, 3, 224, 224)
    shapes = []
    with torch.no_grad():
        for layer in model.features:
            x = layer(x)
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [
        (32, 112, 112),  # Conv 3x3
        (16, 112, 112),  # SepConv 3x3
        (24, 56, 56),  # MBConv6 3x3 x2
        (40, 28, 28),  # MBConv3 5x5 SE x3
        (80, 14, 14),  # MBConv6 3x3 x4
        (112, 14, 14),  # MBConv6 3x3 SE x2
        (160, 7, 7),  # MBConv6 5x5 SE x3
        (320, 7, 7),  # MBConv6 3x3 x1
        (1280, 7, 7),  # Conv 1x1
    ]
    depthwise = [
        next(m for m in stage[0].modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
        for stage in model.features[1:-1]
    ]
    assert [conv.kernel_size[0] for conv in depthwise] == [3, 3, 5, 3, 3, 5, 3]
    expansions = [
        conv.out_channels // stage[0].block[0][0].in_channels
        for conv, stage in zip(depthwise, model.features[1:-1], strict=True)
    ]
    assert expansions == [1, 6, 3, 6, 6, 6, 6]


def test_reward_soft_constraint():
    assert reward(0.75, 80.0, 80.0) == 0.75  # on target: the accuracy itself
    # alpha = beta = -0.07: twice the latency costs a factor 2^-0.07, about 5%.
    assert reward(0.75, 160.0, 80.0) == pytest.approx(0.75 * 2**-0.07)
    assert reward(0.75 * 1.05, 160.0, 80.0) == pytest.approx(reward(0.75, 80.0, 80.0), rel=2e-3)
    # Faster than the target is rewarded, slower penalized, smoothly.
    assert reward(0.75, 40.0, 80.0) > 0.75 > reward(0.75, 81.0, 80.0)
    latencies = [20.0, 50.0, 80.0, 120.0, 300.0]
    rewards = [reward(0.7, lat, 80.0) for lat in latencies]
    assert rewards == sorted(rewards, reverse=True)


def test_reward_hard_constraint_and_errors():
    # The paper's hard constraint: alpha = 0, beta = -1.
    assert reward(0.75, 40.0, 80.0, w=0.0, beta=-1.0) == 0.75
    assert reward(0.75, 160.0, 80.0, w=0.0, beta=-1.0) == pytest.approx(0.375)
    assert math.isclose(reward(0.5, 80.0, 80.0, w=-1.0), 0.5)
    for bad in [(-0.1, 80.0, 80.0), (0.5, 0.0, 80.0), (0.5, 80.0, -1.0)]:
        with pytest.raises(ValueError):
            reward(*bad)


@pytest.mark.parametrize("name", ["mnasnet0_5", "mnasnet1_0", "mnasnet_a1"])
@pytest.mark.parametrize(("in_channels", "size"), [(1, 28), (3, 32)])
def test_small_input_forward(name, in_channels, size):
    model = getattr(mnasnet, name)(num_classes=10, in_channels=in_channels, small_input=True)
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert stem.stride == (1, 1) and stem.in_channels == in_channels
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
