"""Comparing tensors: the criterion, the tolerances, and the TF32 measurement.

Outputs are compared element by element as ``|yours - reference| <= rtol * (|reference| +
scale)``, where ``scale`` is the root mean square of the reference tensor, so the allowance
follows the output's magnitude and still covers elements near zero. Results become plain Python
floats before any comparison. ``rtol`` is:

* :data:`FLOAT32_RTOL` ``= 1e-4`` for float32 on a CPU, or on a GPU with TF32 off. Measured
  against float64 with this criterion, the float32 outputs of the course's networks (small-input
  configurations, batch 2, 32x32, batch-norm statistics randomized as here) are off by at most
  ``4e-6`` in evaluation mode (PreAct-ResNet-110) and ``2e-5`` in training mode (ResNeXt-50,
  where batch norm divides by statistics of few values); a student and the reference each err
  that much, so ``1e-4`` leaves a margin of more than two. It is still five times smaller than
  the smallest mistake the labs target (batch norm's ``eps = 1e-3`` instead of ``1e-5`` moves
  outputs by about ``5e-4``).
* On a CUDA device with TF32 on for convolutions or matrix products (cuDNN convolutions use TF32
  by default), four times the reference's own TF32 error, measured on the spot against a float64
  run of the reference, kept within [:data:`TF32_RTOL_MIN`, :data:`TF32_RTOL_MAX`] ``=
  [5e-3, 5e-2]``. TF32 keeps 10 mantissa bits (unit roundoff ``2^-11 = 4.9e-4``). Emulated on a
  CPU (every convolution and linear operand rounded to TF32), the same networks are off by
  ``2e-4`` (EfficientNet-B0) to ``5e-3`` (PreAct-ResNet-110) in evaluation mode and ``9e-4``
  (ResNet-56) to ``2.7e-2`` (ResNeXt-50) in training mode; ResNet-18 by ``4e-4`` and ``2e-3``.
  One fixed figure would be loose for a block or too tight for a deep network in training, hence
  the measurement; the floor covers a student whose operations round where the reference's do
  not, the ceiling keeps a broken measurement (dropout drawing differently in float64) from
  excusing anything. Real mistakes differ by ``O(1)``.
* :data:`FLOAT64_RTOL` ``= 1e-7`` for :func:`~convlab.check.check_gradients`, which always runs
  in float64 on the CPU. Gradients of correct answers agree to ``1e-14`` there (a ResNet-18
  included); the rest of the room is for correct but numerically different formulas
  (``E[x^2] - E[x]^2`` for a variance, a hand-written backward), while a mistake in the
  mathematics still differs by ``O(1)``. Gradients that are zero in exact arithmetic (a bias
  before batch norm in training) are compared against ``1e-3`` of the largest gradient scale,
  not against their own rounding noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from convlab.check._messages import _fmt
from convlab.check._originals import (
    _INF,
    _abs,
    _any,
    _float,
    _int,
    _math_isfinite,
    _math_sqrt,
    _max,
    _min,
    _reversed,
    _str,
    _t_abs,
    _t_add,
    _t_argmax,
    _t_div,
    _t_getitem,
    _t_gt,
    _t_item,
    _t_max,
    _t_mean,
    _t_mul,
    _t_nan_to_num,
    _t_numel,
    _t_reshape,
    _t_shape,
    _t_sub,
    _t_sum,
    _tuple,
    _zip,
)
from convlab.check._tensors import _fresh

__all__ = ["FLOAT32_RTOL", "FLOAT64_RTOL", "TF32_RTOL_MAX", "TF32_RTOL_MIN"]

FLOAT32_RTOL = 1e-4  # float32 on a CPU, or on a GPU with TF32 off (see the module docstring)
TF32_RTOL_MIN = 5e-3  # float32 on CUDA with TF32: at least this ...
TF32_RTOL_MAX = 5e-2  # ... at most this, 4x the reference's own TF32 error in between
FLOAT64_RTOL = 1e-7  # check_gradients, float64 on the CPU
_TF32_SAFETY = 4.0  # tolerance / the reference's measured TF32 error
_GRADIENT_SCALE_FLOOR = 1e-3  # fraction of the largest gradient RMS a gradient is measured against


def _rms(tensor: Tensor) -> float:
    if _t_numel(tensor) == 0:
        return 0.0
    return _math_sqrt(_float(_t_item(_t_mean(_t_mul(tensor, tensor)))))


@dataclass(frozen=True)
class _Mismatch:
    """Where two tensors differ most, relative to the tolerance."""

    position: tuple[int, ...]
    yours: float
    reference: float
    max_difference: float
    bad: int
    total: int
    scale: float
    rtol: float

    def report(self, what: str) -> str:
        index = ", ".join(_str(i) for i in self.position)
        difference = _abs(self.yours - self.reference)
        relative = self.max_difference / self.scale if self.scale > 0 else _INF
        return (
            f"{what} differs from the reference.\n"
            f"  largest difference (relative to the tolerance) at [{index}]: "
            f"yours {_fmt(self.yours)}, reference {_fmt(self.reference)}, "
            f"|difference| {_fmt(difference)}\n"
            f"  maximum |difference| {_fmt(self.max_difference)}, relative error "
            f"{_fmt(relative)} (maximum |difference| / RMS of the reference, {_fmt(self.scale)})\n"
            f"  elements out of tolerance: {self.bad:,} of {self.total:,} "
            f"({100.0 * self.bad / _max(self.total, 1):.1f}%); tolerance "
            f"|yours - reference| <= {self.rtol:g} * (|reference| + {_fmt(self.scale)})"
        )


def _compare(yours: Tensor, reference: Tensor, rtol: float, floor: float = 0.0) -> _Mismatch | None:
    """Compare two fresh float64 CPU tensors of one shape; ``None`` when within tolerance.

    Element ``i`` passes when ``|yours_i - reference_i| <= rtol * (|reference_i| + scale)``,
    ``scale`` being the RMS of ``reference`` (at least ``floor``; 1 for an all-zero reference).
    NaN and infinity never pass. ``rtol = 0`` asks for exact equality.
    """
    total = _int(_t_numel(reference))
    if total == 0:
        return None
    scale = _max(_rms(reference), floor)
    if scale == 0.0 or not _math_isfinite(scale):
        scale = 1.0
    difference = _t_nan_to_num(_t_abs(_t_sub(yours, reference)), nan=_INF, posinf=_INF)
    allowed = _t_mul(_t_add(_t_abs(reference), scale), rtol)
    bad = _int(_t_item(_t_sum(_t_gt(difference, allowed))))
    if bad == 0:
        return None
    ratio = _t_reshape(_t_div(difference, _t_add(allowed, 1e-300)), (-1,))
    worst = _int(_t_item(_t_argmax(ratio)))
    position: list[int] = []
    rest = worst
    for size in _reversed(_tuple(_t_shape(reference))):
        position.append(rest % size)
        rest //= size
    position.reverse()
    return _Mismatch(
        position=_tuple(position),
        yours=_float(_t_item(_t_getitem(_t_reshape(yours, (-1,)), worst))),
        reference=_float(_t_item(_t_getitem(_t_reshape(reference, (-1,)), worst))),
        max_difference=_float(_t_item(_t_max(difference))),
        bad=bad,
        total=total,
        scale=scale,
        rtol=rtol,
    )


def _flag(read: Callable[[], object]) -> object:
    """A backend flag, or None where reading it fails (mixed legacy and new TF32 settings)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read()
    except Exception:
        return None


def _tf32_enabled(device: torch.device) -> bool:
    """Whether float32 convolutions or matrix products on ``device`` may round to TF32.

    Any setting that says so counts: the ``fp32_precision`` settings of torch 2.9 and later
    (cuDNN convolutions default to ``"tf32"``), the older ``allow_tf32`` flags, and
    ``torch.get_float32_matmul_precision()``. Erring towards TF32 only lets the tolerance follow
    the reference's measured error.
    """
    if device.type != "cuda":
        return False
    backends = torch.backends
    flags = [
        _flag(lambda: backends.cudnn.conv.fp32_precision) == "tf32",
        _flag(lambda: backends.cuda.matmul.fp32_precision) == "tf32",
        _flag(lambda: backends.cudnn.allow_tf32) is True,
        _flag(lambda: backends.cuda.matmul.allow_tf32) is True,
        _flag(torch.get_float32_matmul_precision) in ("high", "medium"),
    ]
    return _any(flags)


def _tf32_tolerance(theirs: list[Tensor | None], exact: list[Tensor | None]) -> float:
    """The TF32 tolerance: 4x the reference's own error, within [TF32_RTOL_MIN, TF32_RTOL_MAX].

    The reference's float32 outputs ``theirs`` are measured against ``exact``, the outputs of the
    same reference with the same weights in float64 (where TF32 never applies) on the same
    inputs, with the criterion of :func:`_compare`.
    """
    drift = 0.0
    for rounded, precise in _zip(theirs, exact):
        if rounded is None or precise is None:
            continue
        a, b = _fresh(rounded), _fresh(precise)
        scale = _rms(b) or 1.0
        ratio = _t_div(_t_abs(_t_sub(a, b)), _t_add(_t_abs(b), scale))
        if _t_numel(ratio):
            drift = _max(drift, _float(_t_item(_t_max(_t_nan_to_num(ratio, nan=1.0)))))
    return _min(_max(TF32_RTOL_MIN, _TF32_SAFETY * drift), TF32_RTOL_MAX)
