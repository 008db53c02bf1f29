"""Counting parameters: :func:`count_parameters` and :func:`check_parameter_count`."""

from __future__ import annotations

from torch import nn

from convlab.check._guard import _verify_environment
from convlab.check._messages import CheckError, _describe, _fmt_shape, _layer
from convlab.check._modules import _entries, _Entry, _is_module, _walk
from convlab.check._originals import (
    _ConvNd,
    _dict,
    _int,
    _isinstance,
    _len,
    _list,
    _sum,
    _t_numel,
    _t_shape,
    _type,
    _zip,
)

__all__ = ["check_parameter_count", "count_parameters"]


def count_parameters(module: nn.Module) -> int:
    """The number of parameters of ``module``, each shared tensor counted once.

    Args:
        module: any ``nn.Module``.

    Returns:
        The total number of elements of its parameters.
    """
    return _sum_numel(_entries(module, "_parameters"))


def _sum_numel(entries: list[_Entry]) -> int:
    total = 0
    for entry in entries:
        total += _int(_t_numel(entry.tensor))
    return total


def _breakdown(module: nn.Module) -> list[tuple[str, str, list[str], int]]:
    """Per module that owns parameters: (path, class, parameter shapes, count)."""
    rows: dict[str, tuple[str, str, list[str], int]] = {}
    classes = {path: _type(m).__name__ for path, m in _walk(module)}
    for entry in _entries(module, "_parameters"):
        path, cls, shapes, count = rows.get(
            entry.owner, (entry.owner, classes.get(entry.owner, "?"), [], 0)
        )
        leaf = entry.name[_len(entry.owner) + 1 :] if entry.owner else entry.name
        shapes = [*shapes, f"{leaf} {_fmt_shape(_t_shape(entry.tensor))}"]
        rows[entry.owner] = (path, cls, shapes, count + _int(_t_numel(entry.tensor)))
    return _list(rows.values())


def _breakdown_text(rows: list[tuple[str, str, list[str], int]], limit: int = 30) -> str:
    lines = [
        f"    {path or '(top level)'} ({cls}): {', '.join(shapes)} = {count:,}"
        for path, cls, shapes, count in rows[:limit]
    ]
    if _len(rows) > limit:
        lines.append(f"    ... and {_len(rows) - limit} more layers")
    return "\n".join(lines) if lines else "    (no parameters)"


def check_parameter_count(
    module: nn.Module, expected: int | nn.Module, what: str = "the reference"
) -> None:
    """Check that ``module`` has as many parameters as expected.

    Args:
        module: the student's module.
        expected: the expected count, or a reference module whose count (and per-layer
            breakdown, shown next to the student's on failure) is expected.
        what: how to name the reference in the message, for example ``"BasicBlock(64, 64)"``.

    Raises:
        CheckError: with the student's per-layer breakdown, the difference, the first layer whose
            count differs from the reference's, and a hint.
    """
    _verify_environment()
    if not _is_module(module):
        raise CheckError(f"Expected an nn.Module to count parameters of, got {_describe(module)}.")
    found = count_parameters(module)
    reference_rows = None
    if _is_module(expected):
        reference_rows = _breakdown(expected)
        expected_count = count_parameters(expected)
    else:
        expected_count = _int(expected)
    if found == expected_count:
        return
    rows = _breakdown(module)
    difference = found - expected_count
    lines = [
        f"Your module has {found:,} parameters; {what} has {expected_count:,} "
        f"({'+' if difference > 0 else ''}{difference:,}).",
        "  Your layers:",
        _breakdown_text(rows),
    ]
    if reference_rows is not None:
        lines += ["  Reference layers:", _breakdown_text(reference_rows)]
        for mine, theirs in _zip(rows, reference_rows):
            if mine[3] != theirs[3]:
                lines.append(
                    f"  First difference: your {_layer(mine[0])} has "
                    f"{mine[3]:,}, the reference's {_layer(theirs[0])} has {theirs[3]:,}."
                )
                break
    layers = _dict(_walk(module))
    conv_biases = _sum(
        _int(_t_numel(entry.tensor))
        for entry in _entries(module, "_parameters")
        if entry.name.endswith("bias") and _isinstance(layers.get(entry.owner), _ConvNd)
    )
    if difference > 0 and difference == conv_biases:
        lines.append(
            "  Hint: the difference is exactly the biases of your convolutions; a convolution "
            "followed by batch norm needs no bias (bias=False), batch norm's beta replaces it."
        )
    else:
        lines.append(
            "  Hint: compare the layers above one by one: channel counts, kernel sizes, groups of "
            "grouped convolutions, bias=False before batch norm, and layers missing or extra."
        )
    raise CheckError("\n".join(lines))
