"""convlab.summary: the numbers the VGG lecture table shows, MACs against torchvision, memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlab import models
from convlab.models.vgg import VGG16
from convlab.summary import summary

# torchvision's published multiply-accumulates (GMACs, its "GFLOPS" column) at 224x224.
PUBLISHED_GMACS = {
    "alexnet": 0.714,
    "vgg16": 15.470,
    "googlenet": 1.498,
    "resnet18": 1.814,
    "resnet50": 4.089,
    "densenet121": 2.834,
    "efficientnet_b0": 0.386,
}


@pytest.fixture(scope="module")
def vgg16_summary():
    return summary(models.create("vgg16"), (3, 224, 224))


def test_vgg16_rows_match_the_lecture_table(vgg16_summary):
    s = vgg16_summary
    convs = [r for r in s.rows if r.type == "Conv2d"]
    pools = [r for r in s.rows if r.type == "MaxPool2d"]
    fcs = [r for r in s.rows if r.type == "Linear"]
    assert (len(convs), len(pools), len(fcs)) == (13, 5, 3)
    # the lecture's table, derived here from the stage table: side halves after each stage
    side, in_channels, expected = 224, 3, []
    for num_convs, channels in VGG16:
        for _ in range(num_convs):
            weights = 3 * 3 * in_channels * channels
            expected.append(((1, channels, side, side), side * side * channels, weights))
            in_channels = channels
        side //= 2
    got = [(r.output_shape, r.activations, r.params - r.output_shape[1]) for r in convs]
    assert got == expected
    assert convs[0].activations == 224 * 224 * 64 == 3_211_264
    assert [r.params - r.output_shape[1] for r in fcs] == [102_760_448, 16_777_216, 4_096_000]
    assert [r.output_shape for r in pools][-1] == (1, 512, 7, 7)


def test_vgg16_totals(vgg16_summary):
    s = vgg16_summary
    assert s.params == 138_357_544
    assert s.params - s.bias_params == 138_344_128
    # every distinct value computed once: input, conv and pool outputs, the classifier's outputs
    rows = sum(r.activations for r in s.rows if r.new_tensor)
    assert s.activations == rows + 3 * 224 * 224
    assert s.activation_bytes == 4 * s.activations
    assert 14e6 < s.activations < 16e6  # not the "24M" often quoted for this network
    # autograd keeps at least every ReLU output and every conv input for backward
    assert s.saved_activation_bytes > 4 * sum(r.activations for r in s.rows if r.type == "Conv2d")
    assert s.saved_param_bytes > 0.99 * 4 * (s.params - s.bias_params)
    table = str(s)
    for text in ("features.0", "3,211,264", "138,357,544", "138,344,128", "MACs"):
        assert text in table


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_macs_match_torchvision_published_figures(name):
    s = summary(models.create(name), (3, 224, 224), measure_backward=False)
    assert s.macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.01)
    assert s.flops == 2 * s.macs
    assert sum(r.macs for r in s.rows) == pytest.approx(s.macs, rel=1e-3)


def test_saved_for_backward_counts_each_storage_once():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    for inplace in (False, True):
        model = nn.Sequential(conv, nn.ReLU(inplace=inplace))
        s = summary(model, (1, 3, 8, 8))
        # the conv keeps its input (768 B) and weight; the ReLU keeps its output (2048 B).
        # In place, the ReLU output overwrites the conv output: one storage either way.
        assert s.saved_activation_bytes == 3 * 64 * 4 + 8 * 64 * 4
        assert s.saved_param_bytes == 8 * 3 * 9 * 4
        assert s.activations == 3 * 64 + 8 * 64 * (1 if inplace else 2)
        assert [r.new_tensor for r in s.rows] == [True, not inplace]


def test_summary_leaves_the_model_as_it_was():
    model = models.create("resnet18", num_classes=10, **models.spec("resnet18").small)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summary(model, (4, 3, 32, 32))
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_too_small_input_is_one_clear_error():
    with pytest.raises(ValueError, match=r"does not fit VGG at layer 'features\.\d+'") as info:
        summary(models.create("vgg16"), (3, 16, 16))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="input_size must be"):
        summary(models.create("lenet5"), (28, 28))


# ----------------------------------------------------------------------------------------------
# The model, the random state and errors are left as they were found


def test_summary_restores_every_modules_own_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())
    model.train()
    model[1].eval()  # frozen batch-norm statistics, as when fine-tuning
    summary(model, (2, 3, 8, 8))
    assert [m.training for m in model] == [True, False, True, True]


def test_summary_leaves_the_random_streams_where_they_were():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.Flatten())
    torch.manual_seed(0)
    summary(model, (2, 3, 8, 8))
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))  # the summary drew nothing from the caller's stream


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_summary_leaves_the_cuda_random_stream_where_it_was():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.Flatten()).cuda()
    torch.cuda.manual_seed(0)
    summary(model, (2, 3, 8, 8))
    after = torch.rand(3, device="cuda")
    torch.cuda.manual_seed(0)
    assert torch.equal(after, torch.rand(3, device="cuda"))


class _Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_an_error_unrelated_to_the_input_size_is_not_blamed_on_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), _Broken())
    with pytest.raises(RuntimeError, match="illegal memory access") as info:
        summary(model, (1, 3, 8, 8))
    assert not isinstance(info.value, ValueError) and "larger input" not in str(info.value)
    # a channel mismatch is the input's fault, but a larger input would not help
    with pytest.raises(ValueError, match=r"does not fit .* at layer '0'") as info:
        summary(nn.Sequential(nn.Conv2d(1, 4, 3)), (1, 3, 8, 8))
    assert "larger input" not in str(info.value)


class _Twice(nn.Module):
    """One 3x3 convolution applied twice (weights shared), as in a recurrent block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))


def test_a_module_called_twice_has_one_row_per_call_with_that_calls_macs():
    s = summary(_Twice(), (1, 4, 8, 8))
    per_call = 4 * 4 * 9 * 8 * 8  # MACs of one 3x3 convolution, 4 -> 4 channels, 8x8 output
    assert [(r.name, r.macs) for r in s.rows] == [("conv", per_call), ("conv", per_call)]
    assert sum(r.macs for r in s.rows) == s.macs == 2 * per_call
    assert sum(r.params for r in s.rows) == s.params == 4 * 4 * 9  # the weights count once
