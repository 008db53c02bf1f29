"""convlab.layers: the from-scratch batch norm against torch, and the shared blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlab.layers import (
    BatchNorm,
    ConvBNAct,
    SqueezeExcitation,
    StochasticDepth,
    batch_norm,
    make_divisible,
)

SHAPES = [(16, 5), (8, 3, 6, 7)]


def _pair(shape: tuple[int, ...], momentum: float | None = 0.1, affine: bool = True):
    channels = shape[1]
    reference = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(
        channels, momentum=momentum, affine=affine
    )
    ours = BatchNorm(channels, momentum=momentum, affine=affine)
    if affine:
        with torch.no_grad():
            reference.weight.uniform_(0.5, 1.5)
            reference.bias.normal_()
    ours.load_state_dict(reference.state_dict())
    return ours, reference


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm_matches_torch_in_training_and_evaluation(shape, momentum):
    torch.manual_seed(0)
    ours, reference = _pair(shape, momentum)
    for step in range(4):
        x = torch.randn(shape) * (step + 1) + step  # statistics that change from batch to batch
        torch.testing.assert_close(ours(x), reference(x))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name), msg=name)
    ours.eval()
    reference.eval()
    x = torch.randn(shape) * 3 + 1
    torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_gradients_match_torch(shape):
    torch.manual_seed(1)
    ours, reference = _pair(shape)
    x = torch.randn(shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    upstream = torch.randn(shape)
    (ours(x) * upstream).sum().backward()
    (reference(x_ref) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad)
    torch.testing.assert_close(ours.bias.grad, reference.bias.grad)


def test_running_variance_is_the_unbiased_estimate():
    bn = BatchNorm(1, momentum=1.0)  # momentum 1: running stats become the last batch's
    x = torch.tensor([[1.0], [2.0], [4.0]])
    bn(x)
    assert bn.running_var.item() == pytest.approx(x.var(unbiased=True).item())
    assert bn.running_var.item() != pytest.approx(x.var(unbiased=False).item())


def test_training_normalizes_with_the_batch_and_evaluation_with_running_stats():
    bn = BatchNorm(3, affine=False)
    x = torch.randn(64, 3, 4, 4) * 5 + 2
    y = bn(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    bn.eval()
    expected = (x - bn.running_mean.view(1, 3, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, 3, 1, 1) + bn.eps
    )
    torch.testing.assert_close(bn(x), expected)
    # one step from (0, 1) with momentum 0.1 leaves running stats far from the batch's
    assert bn(x).mean() > 0.5


def test_gamma_and_beta_can_undo_the_normalization():
    x = torch.randn(32, 4) * 3 + 5
    mean, var = x.mean(0), x.var(0, unbiased=False)
    y = batch_norm(x, None, None, weight=torch.sqrt(var + 1e-5), bias=mean, training=True, eps=1e-5)
    torch.testing.assert_close(y, x)


def test_batchnorm_state_dicts_move_both_ways():
    ours, reference = _pair((4, 6, 2, 2))
    nn.BatchNorm2d(6).load_state_dict(ours.state_dict())
    assert set(ours.state_dict()) == set(reference.state_dict())


def test_batchnorm_rejects_bad_input_clearly():
    with pytest.raises(ValueError, match="3 channels"):
        BatchNorm(3)(torch.randn(4, 5, 2, 2))
    with pytest.raises(ValueError, match="batch larger than 1"):
        BatchNorm(3)(torch.randn(1, 3))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(32, 32), (32 * 1.1, 32), (32 * 1.2, 40), (16 * 1.4, 24), (3, 8), (95, 96), (91, 88)],
)
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected
    assert make_divisible(value) % 8 == 0
    assert make_divisible(value) >= 0.9 * value


def test_conv_bn_act_keys_and_padding():
    block = ConvBNAct(3, 8, kernel_size=5, stride=2)
    assert [k for k in block.state_dict() if k.endswith("weight")] == ["0.weight", "1.weight"]
    assert block[0].bias is None
    assert block(torch.randn(1, 3, 16, 16)).shape == (1, 8, 8, 8)
    plain = ConvBNAct(3, 8, norm_layer=None, activation=None)
    assert len(plain) == 1 and plain[0].bias is not None


def test_squeeze_excitation_gates_each_channel():
    se = SqueezeExcitation(6, 2)
    x = torch.randn(2, 6, 5, 5)
    gate = se(x) / x
    # one gate per (sample, channel), constant over space, in (0, 1)
    torch.testing.assert_close(gate, gate[..., :1, :1].expand_as(gate))
    assert ((gate > 0) & (gate < 1)).all()


def test_stochastic_depth_keeps_expectation_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = StochasticDepth(0.25)
    x = torch.ones(20000, 1, 1, 1)
    y = drop(x)
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.75))
    assert y.mean().item() == pytest.approx(1.0, abs=0.03)
    drop.eval()
    assert torch.equal(drop(x), x)
    with pytest.raises(ValueError):
        StochasticDepth(1.0)
