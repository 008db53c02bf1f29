"""EfficientNet: torchvision parity for B0-B7, the B0 table, compound scaling, MBConv, small inputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from convlab.layers import SqueezeExcitation
from convlab.models import efficientnet
from convlab.models.efficientnet import (
    EFFICIENTNET_B0,
    EFFICIENTNET_PARAMS,
    EFFICIENTNET_VARIANTS,
    NATIVE_RESOLUTION,
    MBConv,
    compound_scaling,
    scale_stages,
    scaling_table,
)
from tests.conftest import count_params

NAMES = list(EFFICIENTNET_PARAMS)  # one entry per factory


def test_every_variant_has_a_size():
    assert list(EFFICIENTNET_VARIANTS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_parity_and_recorded_params(name, parity):
    ours = getattr(efficientnet, name)()
    reference = getattr(tvm, name)(weights=None)
    assert count_params(ours) == count_params(reference) == EFFICIENTNET_PARAMS[name]
    parity(ours, reference, input_size=(64, 64), batch=1)


def test_b0_table_is_the_papers_table_1():
    assert [row.stage for row in EFFICIENTNET_B0] == [2, 3, 4, 5, 6, 7, 8]
    assert [row.operator for row in EFFICIENTNET_B0] == [
        "MBConv1, k3x3",
        "MBConv6, k3x3",
        "MBConv6, k5x5",
        "MBConv6, k3x3",
        "MBConv6, k5x5",
        "MBConv6, k5x5",
        "MBConv6, k3x3",
    ]
    assert [row.out_channels for row in EFFICIENTNET_B0] == [16, 24, 40, 80, 112, 192, 320]
    assert [row.num_layers for row in EFFICIENTNET_B0] == [1, 2, 2, 3, 3, 4, 1]
    # Input resolutions 112, 112, 56, 28, 14, 14, 7 then 7: stride 2 where the next one halves.
    assert [row.stride for row in EFFICIENTNET_B0] == [1, 2, 2, 2, 1, 2, 1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        EFFICIENTNET_B0[0].num_layers = 2  # type: ignore[misc]


def test_scale_stages_b7():
    scaled = scale_stages(EFFICIENTNET_B0, width_mult=2.0, depth_mult=3.1)
    assert [row.num_layers for row in scaled] == [4, 7, 7, 10, 10, 13, 4]  # ceil(L * 3.1)
    assert [row.out_channels for row in scaled] == [32, 48, 80, 160, 224, 384, 640]
    # Width 1.1 (B2): 16 * 1.1 = 17.6 rounds to 16, 112 * 1.1 = 123.2 to 120, 320 to 352.
    b2 = scale_stages(EFFICIENTNET_B0, width_mult=1.1, depth_mult=1.2)
    assert [row.out_channels for row in b2] == [16, 24, 48, 88, 120, 208, 352]


def test_built_depth_follows_scaled_table():
    model = efficientnet.efficientnet_b1()
    scaled = scale_stages(EFFICIENTNET_B0, 1.0, 1.1)
    assert [len(stage) for stage in model.features[1:-1]] == [row.num_layers for row in scaled]
    assert [len(stage) for stage in model.features[1:-1]] == [2, 3, 3, 4, 4, 5, 2]


def test_compound_scaling():
    assert compound_scaling(0) == (1.0, 1.0, 224.0)
    depth, width, resolution = compound_scaling(1)
    assert (depth, width) == pytest.approx((1.2, 1.1))
    assert resolution == pytest.approx(257.6)
    # Section 3.3: the bases satisfy alpha * beta^2 * gamma^2 ~ 2, so FLOPs grow by ~ 2^phi.
    d, w, r = compound_scaling(1)
    assert d * w**2 * (r / 224) ** 2 == pytest.approx(2.0, abs=0.1)
    d, w, r = compound_scaling(3)
    assert d * w**2 * (r / 224) ** 2 == pytest.approx(1.92027**3, rel=1e-4)
    assert compound_scaling(2, alpha=1.0, beta=1.0, gamma=2.0).resolution == pytest.approx(896)


def test_scaling_table_departs_from_the_formula():
    rows = scaling_table()
    assert [row.name for row in rows] == NAMES
    assert [row.phi for row in rows] == list(range(8))
    b0 = rows[0]
    assert (b0.official_depth, b0.official_width, b0.official_resolution) == (1.0, 1.0, 224)
    assert b0.official_flops == b0.formula_flops == 1.0
    b1 = rows[1]
    assert (b1.official_depth, b1.formula_depth) == pytest.approx((1.1, 1.2))
    assert (b1.official_width, b1.formula_width) == pytest.approx((1.0, 1.1))
    # Eq. 3's FLOPs factor is (1.2 * 1.1^2 * 1.15^2)^phi = 1.92027^phi (Section 4's bases).
    assert [row.formula_flops for row in rows] == pytest.approx(
        [1.92027**phi for phi in range(8)], rel=1e-5
    )
    # B3 by hand: depth 1.4, width 1.2, 300 px: 1.4 * 1.44 * (300 / 224)^2 = 3.6161.
    assert rows[3].official_flops == pytest.approx(3.6161, rel=1e-4)
    # The official variants are cheaper than Eq. 3 with phi = index, for every phi > 0.
    assert all(row.official_flops < row.formula_flops for row in rows[1:])
    b7 = rows[7]
    assert b7.formula_resolution == pytest.approx(596, abs=1)
    assert b7.official_resolution == 600


def test_variants_and_native_resolution():
    assert NATIVE_RESOLUTION == {
        "efficientnet_b0": 224,
        "efficientnet_b1": 240,
        "efficientnet_b2": 260,
        "efficientnet_b3": 300,
        "efficientnet_b4": 380,
        "efficientnet_b5": 456,
        "efficientnet_b6": 528,
        "efficientnet_b7": 600,
    }
    dropouts = [v.dropout for v in EFFICIENTNET_VARIANTS.values()]
    assert dropouts == [0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5]
    assert efficientnet.efficientnet_b2().classifier[0].p == 0.3


def test_mbconv_structure():
    mb1 = MBConv(32, 16, kernel_size=3, stride=1, expand_ratio=1)
    assert len(mb1.block) == 3  # depthwise, SE, project: no expansion
    assert not mb1.use_residual
    mb6 = MBConv(40, 40, kernel_size=5, stride=1, expand_ratio=6)
    assert len(mb6.block) == 4 and mb6.use_residual
    se = mb6.block[2]
    assert isinstance(se, SqueezeExcitation)
    assert se.fc1.in_channels == 240 and se.fc1.out_channels == 10  # max(1, 40 // 4)
    assert mb6.block[1][0].groups == 240 and mb6.block[1][0].kernel_size == (5, 5)
    assert mb6.block[-1][-1].__class__ is nn.BatchNorm2d  # linear projection
    assert not MBConv(40, 40, stride=2).use_residual
    no_se = MBConv(16, 24, se_ratio=None, activation=nn.ReLU)
    assert not any(isinstance(m, SqueezeExcitation) for m in no_se.modules())
    assert not any(isinstance(m, nn.SiLU) for m in no_se.modules())
    assert MBConv(2, 8, se_ratio=0.25).block[2].fc1.out_channels == 1
    with pytest.raises(ValueError):
        MBConv(8, 8, stride=3)


def test_mbconv_stochastic_depth():
    torch.manual_seed(0)
    block = MBConv(8, 8, expand_ratio=2, stochastic_depth_prob=0.5)
    x = torch.randn(64, 8, 4, 4)
    block.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x), block.block(x) + x)
    block.train()
    with torch.no_grad():
        out = block(x)
    dropped = [torch.equal(out[i], x[i]) for i in range(64)]
    assert any(dropped) and not all(dropped)


def test_stochastic_depth_rises_linearly():
    model = efficientnet.efficientnet_b0()
    probs = [m.stochastic_depth.p for m in model.modules() if isinstance(m, MBConv)]
    assert probs == pytest.approx([0.2 * i / 16 for i in range(16)])


def test_batch_norm_settings_follow_torchvision():
    b0_norms = [
        m for m in efficientnet.efficientnet_b0().modules() if isinstance(m, nn.BatchNorm2d)
    ]
    assert {(m.eps, m.momentum) for m in b0_norms} == {(1e-5, 0.1)}
    b5_norms = [
        m for m in efficientnet.efficientnet_b5().modules() if isinstance(m, nn.BatchNorm2d)
    ]
    assert {(m.eps, m.momentum) for m in b5_norms} == {(1e-3, 0.01)}


def test_native_resolution_forward_b0():
    model = efficientnet.efficientnet_b0().eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 224, 224))
    assert features.shape == (1, 1280, 7, 7)  # Table 1, stage 9


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("in_channels", "size"), [(1, 28), (3, 32)])
def test_small_input_forward(name, in_channels, size):
    model = getattr(efficientnet, name)(num_classes=10, in_channels=in_channels, small_input=True)
    assert model.features[0][0].stride == (1, 1)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_small_input_keeps_final_map_above_one_pixel():
    model = efficientnet.efficientnet_b0(small_input=True).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 32, 32))
    assert features.shape[-2:] == (2, 2)
