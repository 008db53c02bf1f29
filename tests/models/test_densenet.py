"""DenseNet: torchvision parity, recorded parameter counts, channel arithmetic, small inputs."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

from convlab.models import densenet
from convlab.models.densenet import (
    DENSENET_PARAMS,
    DenseBlock,
    DenseLayer,
    Transition,
    densenet_channels,
)
from tests.conftest import count_params

# Classifier input width, the paper's Table 1 (1024 for DenseNet-121 ...).
FINAL_CHANNELS = {
    "densenet121": 1024,
    "densenet161": 2208,
    "densenet169": 1664,
    "densenet201": 1920,
}
NAMES = list(DENSENET_PARAMS)  # one entry per factory


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_parity_and_recorded_params(name, parity):
    ours = getattr(densenet, name)()
    reference = getattr(tvm, name)(weights=None)
    assert count_params(ours) == count_params(reference) == DENSENET_PARAMS[name]
    parity(ours, reference, input_size=(64, 64), batch=2)


def test_channel_arithmetic_densenet121():
    assert densenet_channels(64, 32, (6, 12, 24, 16)) == [
        ("denseblock1", 256),
        ("transition1", 128),
        ("denseblock2", 512),
        ("transition2", 256),
        ("denseblock3", 1024),
        ("transition3", 512),
        ("denseblock4", 1024),
    ]
    # Without compression (theta = 1) the transitions keep every channel: plain DenseNet-B.
    no_compression = densenet_channels(64, 32, (6, 12, 24, 16), compression=1.0)
    assert no_compression[-1] == ("denseblock4", 64 + 32 * (6 + 12 + 24 + 16))
    with pytest.raises(ValueError):
        densenet_channels(64, 32, (6,), compression=0.0)


@pytest.mark.parametrize("name", NAMES)
def test_channel_arithmetic_matches_built_model(name):
    growth_rate, block_config, num_init_features = densenet.DENSENET_CONFIGS[name]
    expected = densenet_channels(num_init_features, growth_rate, block_config)
    model = getattr(densenet, name)(num_classes=10, small_input=True).eval()
    seen: dict[str, int] = {}
    for module_name, _ in expected:
        module = model.features.get_submodule(module_name)
        module.register_forward_hook(
            lambda _m, _i, out, key=module_name: seen.__setitem__(key, out.shape[1])
        )
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    assert seen == dict(expected)
    assert expected[-1][1] == FINAL_CHANNELS[name] == model.classifier.in_features


def test_dense_block_concatenates_its_input():
    block = DenseBlock(num_layers=3, in_channels=5, growth_rate=4).eval()
    x = torch.randn(2, 5, 6, 6)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 5 + 3 * 4, 6, 6) and block.out_channels == 17
    torch.testing.assert_close(out[:, :5], x)  # x_0 is carried through unchanged
    # Layer l reads all l earlier outputs: its input width grows by growth_rate each time.
    widths = [layer.norm1.num_features for layer in block.values()]
    assert widths == [5, 9, 13]


def test_dense_layer_and_transition_shapes():
    layer = DenseLayer(in_channels=10, growth_rate=6, bn_size=4)
    assert layer.conv1.out_channels == 24
    assert layer(torch.randn(2, 10, 5, 5)).shape == (2, 6, 5, 5)
    assert Transition(10, 5)(torch.randn(2, 10, 8, 7)).shape == (2, 5, 4, 3)


def test_small_input_stem():
    model = densenet.densenet121(small_input=True)
    assert "pool0" not in dict(model.features.named_children())
    assert model.features.conv0.kernel_size == (3, 3) and model.features.conv0.stride == (1, 1)
    assert "pool0" in dict(densenet.densenet121().features.named_children())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("in_channels", "size"), [(1, 28), (3, 32)])
def test_small_input_forward(name, in_channels, size):
    model = getattr(densenet, name)(num_classes=10, in_channels=in_channels, small_input=True)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
