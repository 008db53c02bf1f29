"""Figures for the book and the labs: block diagrams, feature maps and a real photograph.

A block diagram is a set of labelled boxes placed on a grid and the arrows between them, so a
chapter can draw its block (an Inception block's four paths, a residual unit's skip) from a few
lines of data. :func:`feature_maps` lays out the channels of one activation as a grid of images,
and :func:`sample_image` returns one of the photographs that ship with scikit-image, so that
feature maps can be shown on a real picture without downloading anything.

matplotlib is imported when a figure is drawn; scikit-image when a photograph is asked for.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.nn import functional as F

if TYPE_CHECKING:
    from IPython.display import Code
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Box", "diagram", "feature_maps", "sample_image", "source"]

# Box colours by the kind of layer they stand for, so that every diagram of the book agrees.
COLORS: dict[str, str] = {
    "conv": "#cfe2f3",
    "pool": "#d9ead3",
    "norm": "#fff2cc",
    "act": "#fce5cd",
    "merge": "#ead1dc",
    "io": "#eeeeee",
    "fc": "#d9d2e9",
}


@dataclass(frozen=True)
class Box:
    """One box of a diagram.

    Args:
        x: Horizontal position of the box's centre, in grid units.
        y: Vertical position of the box's centre, in grid units; larger is lower on the page, so
            data flows downwards as rows are added.
        label: Text in the box; ``"\\n"`` breaks lines.
        kind: A key of :data:`COLORS` (``"conv"``, ``"pool"``, ``"norm"``, ``"act"``,
            ``"merge"``, ``"io"``, ``"fc"``), or any matplotlib colour.
        width: Box width in grid units.
    """

    x: float
    y: float
    label: str
    kind: str = "conv"
    width: float = 1.8


def diagram(
    boxes: Mapping[str, Box],
    arrows: Sequence[tuple[str, str] | tuple[str, str, str]],
    *,
    title: str | None = None,
    ax: Axes | None = None,
    height: float = 0.6,
) -> Axes:
    """Draw labelled boxes and the arrows between them.

    Args:
        boxes: Box name to :class:`Box`.
        arrows: ``(from_name, to_name)`` pairs, or ``(from_name, to_name, label)`` triples whose
            label is written beside the arrow's middle.
        title: Title above the diagram.
        ax: Axes to draw on; by default a new figure sized to the diagram.
        height: Box height in grid units.

    Returns:
        The axes drawn on.

    Raises:
        KeyError: An arrow names a box that is not in ``boxes``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    missing = sorted({name for arrow in arrows for name in arrow[:2]} - set(boxes))
    if missing:
        raise KeyError(f"arrows name boxes that are not in the diagram: {missing}")
    xs = [b.x for b in boxes.values()]
    ys = [b.y for b in boxes.values()]
    span_x = max(xs) - min(xs) + max(b.width for b in boxes.values()) + 0.6
    span_y = max(ys) - min(ys) + height + 0.6
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3.0, 1.3 * span_x), max(2.0, 1.1 * span_y)))
    patches = {}
    for name, box in boxes.items():
        patch = FancyBboxPatch(
            (box.x - box.width / 2, box.y - height / 2),
            box.width,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=COLORS.get(box.kind, box.kind),
            edgecolor="#444444",
            linewidth=1.0,
        )
        ax.add_patch(patch)
        ax.text(box.x, box.y, box.label, ha="center", va="center", fontsize=9)
        patches[name] = patch
    for arrow in arrows:
        start, end = boxes[arrow[0]], boxes[arrow[1]]
        ax.annotate(
            "",
            xy=(end.x, end.y),
            xytext=(start.x, start.y),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#333333",
                "shrinkA": 0,
                "shrinkB": 0,
                "patchA": patches[arrow[0]],
                "patchB": patches[arrow[1]],
            },
        )
        if len(arrow) == 3:
            ax.text(
                (start.x + end.x) / 2 + 0.08,
                (start.y + end.y) / 2,
                arrow[2],
                fontsize=8,
                color="#555555",
                va="center",
            )
    margin = 0.3
    ax.set_xlim(min(xs) - max(b.width for b in boxes.values()) / 2 - margin,
                max(xs) + max(b.width for b in boxes.values()) / 2 + margin)  # fmt: skip
    ax.set_ylim(max(ys) + height / 2 + margin, min(ys) - height / 2 - margin)  # downwards
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def feature_maps(
    activation: Tensor,
    *,
    channels: int = 16,
    columns: int = 8,
    title: str | None = None,
    scale: float = 1.3,
) -> Figure:
    """Show the first channels of one image's activation as a grid of grey images.

    Each channel is stretched to its own minimum and maximum, so the pattern, not the
    magnitude, is what the figure shows.

    Args:
        activation: Activation of one image, ``(C, H, W)`` or ``(1, C, H, W)``.
        channels: How many channels to show, from the first.
        columns: Images per row.
        title: Title above the grid.
        scale: Size of each image, in inches.

    Returns:
        The figure.

    Raises:
        ValueError: The activation is not one image's ``(C, H, W)`` maps.
    """
    import matplotlib.pyplot as plt

    maps = activation.detach().float().cpu()
    if maps.dim() == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.dim() != 3:
        raise ValueError(
            f"expected one image's feature maps, shaped (C, H, W) or (1, C, H, W); "
            f"got {tuple(activation.shape)}"
        )
    maps = maps[:channels]
    rows = -(-maps.shape[0] // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(scale * columns, scale * rows), squeeze=False
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < maps.shape[0]:
            channel = maps[index]
            low, high = channel.min(), channel.max()
            ax.imshow(((channel - low) / (high - low + 1e-12)).numpy(), cmap="gray")
            ax.set_title(str(index), fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def sample_image(name: str = "chelsea", size: int | None = 224) -> Tensor:
    """A photograph that ships with scikit-image, as a float tensor in [0, 1].

    Args:
        name: The scikit-image sample's name: ``"chelsea"`` (a cat), ``"astronaut"``,
            ``"coffee"``, ``"rocket"``, or any colour image of ``skimage.data``.
        size: Side of the square the centre crop is resized to; ``None`` keeps the photograph.

    Returns:
        The image, ``(3, size, size)`` (or the photograph's own size), float32.

    Raises:
        ImportError: scikit-image is not installed (``pip install scikit-image``).
        ValueError: ``name`` is not a colour photograph of ``skimage.data``.
    """
    try:
        from skimage import data as samples
    except ImportError as error:
        raise ImportError("sample_image needs scikit-image: pip install scikit-image") from error
    loader = getattr(samples, name, None)
    if loader is None:
        raise ValueError(f"skimage.data has no sample named {name!r}; try 'chelsea' or 'coffee'")
    array = loader()
    if array.ndim != 3 or array.shape[2] < 3:
        raise ValueError(f"skimage.data.{name} is not a colour photograph (shape {array.shape})")
    image = torch.from_numpy(array[..., :3].copy()).permute(2, 0, 1).float() / 255  # (3, H, W)
    if size is None:
        return image
    side = min(image.shape[1:])
    top = (image.shape[1] - side) // 2
    left = (image.shape[2] - side) // 2
    crop = image[:, top : top + side, left : left + side]
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True)[0]


def source(obj: Any) -> Code:
    """The source code of a convlab class or function, highlighted, for a notebook to display.

    The book shows library code this way, taken from the installed convlab at the moment the
    page runs, so the page and the library cannot disagree.

    Args:
        obj: A class, function or module.

    Returns:
        An IPython ``Code`` object; as the last expression of a cell, it is displayed.
    """
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
