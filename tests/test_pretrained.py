"""Loading torchvision's published weight files, tested on state dicts shaped like those files."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision

from convlab import models
from convlab.models import load_torchvision_weights
from tests.conftest import randomize_norm_stats


def _outputs_equal(ours, reference, size=64):
    ours.eval()
    reference.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


def test_densenet_file_with_old_key_names(tmp_path):
    reference = torchvision.models.densenet121(weights=None)
    randomize_norm_stats(reference)
    # the published file predates the rename: denselayer1.norm1.weight was denselayer1.norm.1.weight
    old = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
        for k, v in reference.state_dict().items()
    }
    assert any(".norm.1.weight" in k for k in old) and not any(".norm1." in k for k in old)
    path = tmp_path / "densenet121-old.pth"
    torch.save(old, path)
    ours = load_torchvision_weights(models.create("densenet121"), path)
    _outputs_equal(ours, reference)


def test_googlenet_file_with_auxiliary_heads_and_input_transform(tmp_path):
    published = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    randomize_norm_stats(published)
    path = tmp_path / "googlenet.pth"
    torch.save(published.state_dict(), path)
    # what torchvision builds for pretrained weights: no aux heads, transform_input on
    reference = torchvision.models.googlenet(
        weights=None, aux_logits=False, transform_input=True, init_weights=False
    )
    state = {k: v for k, v in published.state_dict().items() if not k.startswith("aux")}
    reference.load_state_dict(state)
    ours = load_torchvision_weights(models.create("googlenet"), path)
    assert ours.transform_input
    _outputs_equal(ours, reference)


def test_weights_for_another_network_are_refused_clearly():
    state = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(ValueError, match=r"do not fit ResNet: .*missing"):
        load_torchvision_weights(models.create("resnet34"), state)
    with pytest.raises(ValueError, match="wrong shape"):
        load_torchvision_weights(models.create("resnet18", num_classes=10), state)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "payload": _RunsCode()}, path)
    with pytest.raises(ValueError, match="could run code"):
        load_torchvision_weights(models.create("lenet5"), path)
    assert "this would run on load" not in capsys.readouterr().out
