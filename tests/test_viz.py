"""Figures: diagrams check their arrows, feature maps their shape, the sample photo its range."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from convlab.layers import make_divisible
from convlab.viz import Box, diagram, feature_maps, sample_image, source


def test_diagram_draws_one_box_per_entry_and_one_arrow_per_edge():
    boxes = {"x": Box(1, 0, "input", "io"), "a": Box(0, 1, "1x1"), "b": Box(2, 1, "3x3")}
    ax = diagram(boxes, [("x", "a"), ("x", "b", "skip")], title="two paths")
    assert len(ax.patches) == 3
    assert len([t for t in ax.texts if t.get_text() in {"input", "1x1", "3x3"}]) == 3
    assert len(ax.texts) == 3 + 2 + 1  # labels, two arrows (empty annotations), one arrow label
    plt.close(ax.figure)


def test_diagram_names_the_boxes_an_arrow_misses():
    with pytest.raises(KeyError, match="'nowhere'"):
        diagram({"a": Box(0, 0, "a")}, [("a", "nowhere")])


def test_feature_maps_shows_the_requested_channels_and_rejects_a_batch():
    figure = feature_maps(torch.randn(1, 10, 6, 6), channels=10, columns=4)
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 10 and len(figure.axes) == 12
    plt.close(figure)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        feature_maps(torch.randn(2, 3, 4, 4))


def test_sample_image_is_a_real_colour_photo_in_the_unit_range():
    pytest.importorskip("skimage")
    image = sample_image("chelsea", size=64)
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.05
    assert not torch.allclose(image[0], image[1])  # colour, not grey
    with pytest.raises(ValueError, match="no sample named"):
        sample_image("no_such_picture")


def test_source_shows_the_installed_code_of_an_object():
    code = source(make_divisible)
    assert code.data.startswith("def make_divisible(")
    assert '<span class="k">def</span>' in code._repr_html_()  # highlighted as Python
