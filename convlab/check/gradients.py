"""Gradients: :func:`check_gradients`, in float64 on the CPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from convlab.check._compare import _GRADIENT_SCALE_FLOOR, FLOAT64_RTOL, _compare, _rms
from convlab.check._guard import _verify_environment
from convlab.check._messages import CheckError
from convlab.check._originals import (
    _CPU,
    _autograd_grad,
    _enable_grad,
    _enumerate,
    _float64,
    _Generator,
    _isinstance,
    _len,
    _max,
    _Parameter,
    _randn,
    _t_add,
    _t_mul,
    _t_requires_grad,
    _t_shape,
    _t_sum,
    _tuple,
    _type,
    _zip,
)
from convlab.check._tensors import (
    Inputs,
    _Args,
    _args_text,
    _fresh,
    _genuine,
    _input_specs,
    _make_args,
)
from convlab.check._trace import _reference_guard, _run_traced, _Seal
from convlab.check.function import _after_student, _call, _compare_outputs
from convlab.check.weights import _prepare

__all__ = ["check_gradients"]


def check_gradients(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    *,
    train: bool = True,
    match: str = "order",
    seed: int = 0,
    rtol: float = FLOAT64_RTOL,
) -> None:
    """Check gradients of the student's module against the reference's, in float64 on the CPU.

    Both are copied and cast to float64 on the CPU (so float32 rounding cannot hide or fake a
    difference), the reference's weights are loaded into the student's copy, both run on the same
    seeded float64 inputs (training mode by default, so gradients flow through batch statistics)
    and backpropagate ``sum(output * w)`` for a seeded random ``w``. The outputs, then the
    gradients of every input made from a shape, then of every parameter (paired as in
    :func:`transfer_weights`) must agree within ``rtol``.

    Args:
        student: the student's module or function.
        reference: the reference module or function.
        inputs: a shape, a tensor, or a list of shapes, tensors and plain arguments; only inputs
            given as shapes get gradients (tensors given are constants, such as running
            statistics).
        train: run in training mode (the default) or evaluation mode.
        match: how weights are paired: ``"order"`` or ``"name"``.
        seed: seed of the inputs, weights, output weighting and dropout.
        rtol: tolerance (:data:`FLOAT64_RTOL`).

    Raises:
        CheckError: naming the input or parameter (yours and the reference's name) whose gradient
            differs, with the largest difference and its position.
    """
    _verify_environment()
    specs = _input_specs(inputs)
    mode = "training" if train else "evaluation"
    given = reference
    student, reference, pairs = _prepare(
        student, reference, specs, seed=seed, device=_CPU, dtype=_float64, match=match
    )
    tracer = _reference_guard(student, given, reference)
    seal = _Seal(reference)
    mine_args = _make_args(specs, seed, _CPU, _float64, grad=True)
    theirs_args = _make_args(specs, seed, _CPU, _float64, grad=True)
    what = f"Calling your module on float64 {_args_text(mine_args)} in {mode} mode"
    parameter_pairs = [(m, t) for m, t in pairs if _isinstance(m.tensor, _Parameter)]
    with _enable_grad():
        mine = _call(student, mine_args, seed, _CPU, train, tracer, what, [], {})
        _after_student(tracer, seal, what)
        theirs = _call(reference, theirs_args, seed, _CPU, train, None, "", [], {})
    _verify_environment()
    context = f"(float64, {mode} mode, {_args_text(mine_args)}, seed {seed})"
    problem = _compare_outputs(mine, theirs, rtol, f"Your output {context}")
    if problem is not None:
        raise CheckError(problem)
    generator = _Generator().manual_seed(seed + 104729)
    weights = [
        None if t is None else _randn(_tuple(_t_shape(t)), generator=generator, dtype=_float64)
        for t in theirs
    ]
    seal = _Seal(reference)  # again: its forward pass updated its running statistics
    mine_grads = _run_traced(
        lambda: _gradients(mine, weights, mine_args, [m.tensor for m, _ in parameter_pairs], what),
        tracer,
        f"{what}, backpropagating",
    )
    _after_student(tracer, seal, f"{what}, backpropagating")
    theirs_grads = _gradients(
        theirs, weights, theirs_args, [t.tensor for _, t in parameter_pairs], ""
    )
    labels = [f"input {i + 1}" for i, g in _enumerate(mine_args.generated) if g]
    labels += [
        f"your parameter `{m.name}` (the reference's `{t.name}`)" for m, t in parameter_pairs
    ]
    scales = [_rms(g) for g in theirs_grads if g is not None]
    floor = _GRADIENT_SCALE_FLOOR * _max(scales, default=0.0)
    for label, a, b in _zip(labels, mine_grads, theirs_grads):
        if a is None and b is None:
            continue
        if a is None or b is None:
            raise CheckError(
                f"The gradient of {label} {context} is "
                f"{'missing in yours' if a is None else 'missing in the reference'}: "
                + (
                    "is it used in your forward, with requires_grad=True and without .detach() "
                    "or torch.no_grad()?"
                    if a is None
                    else "your module makes it influence the output while the reference does not."
                )
            )
        mismatch = _compare(a, b, rtol, floor)
        if mismatch is not None:
            raise CheckError(
                mismatch.report(f"The gradient of {label} {context}")
                + "\n  Hint: the outputs agree, so the backward pass differs: a custom "
                "autograd.Function's backward, a .detach() or in-place operation, or statistics "
                "treated as constants."
            )


def _gradients(
    outputs: list[Tensor | None],
    weights: list[Tensor | None],
    args: _Args,
    parameters: list[Tensor],
    what: str,
) -> list[Tensor | None]:
    """Gradients of ``sum(output * w)`` for the generated inputs and the given parameters."""
    targets = [v for v, g in _zip(args.values, args.generated) if g] + parameters
    loss = None
    for output, weight in _zip(outputs, weights):
        if output is None or weight is None or not _t_requires_grad(output):
            continue
        term = _t_sum(_t_mul(output, weight))
        loss = term if loss is None else _t_add(loss, term)
    differentiable = [i for i, t in _enumerate(targets) if _t_requires_grad(t)]
    result: list[Tensor | None] = [None] * _len(targets)
    if loss is None or not differentiable:
        return result
    try:
        grads = _autograd_grad(loss, [targets[i] for i in differentiable], allow_unused=True)
    except Exception as error:
        if not what:
            raise
        raise CheckError(
            f"{what}: backpropagating through your module raised {_type(error).__name__}: {error}"
        ) from error
    for i, grad in _zip(differentiable, grads):
        if grad is not None:
            result[i] = _fresh(_genuine(grad, "A gradient"))
    return result
