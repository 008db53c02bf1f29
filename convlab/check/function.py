"""Same function: :func:`check_same_function`, and where two networks part when they differ.

Both sides run on private copies with the reference's weights (:mod:`convlab.check.weights`) and
on the same seeded inputs (:mod:`convlab.check._tensors`); the student's code runs first, traced
and with the reference sealed (:mod:`convlab.check._trace`); outputs and then floating-point
buffers are compared with the tolerances of :mod:`convlab.check._compare`. When they differ,
each layer's first input and output, recorded on both sides, say where the difference appears.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import convlab.layers
from convlab.check._compare import (
    FLOAT32_RTOL,
    _compare,
    _tf32_enabled,
    _tf32_tolerance,
)
from convlab.check._guard import _verify_environment
from convlab.check._messages import CheckError, _fmt, _fmt_shape, _layer
from convlab.check._modules import _device_of, _Entry, _is_module, _set_training, _walk
from convlab.check._originals import (
    _BatchNorm,
    _ConvNd,
    _cpu_generator,
    _deepcopy,
    _dict,
    _dict_items,
    _enumerate,
    _float32,
    _float64,
    _fork_rng,
    _getattr,
    _isinstance,
    _iter,
    _len,
    _Linear,
    _list,
    _module_to,
    _next,
    _no_grad,
    _Parameter,
    _register_forward_hook,
    _register_forward_pre_hook,
    _set,
    _sorted,
    _t_clone,
    _t_detach,
    _t_dtype,
    _t_is_floating_point,
    _t_shape,
    _Tensor,
    _tuple,
    _type,
    _zip,
)
from convlab.check._tensors import (
    Inputs,
    _Args,
    _args_text,
    _fresh,
    _input_specs,
    _make_args,
    _outputs,
)
from convlab.check._trace import (
    _after_student,
    _reference_guard,
    _run_traced,
    _Seal,
    _Tracer,
)
from convlab.check.shapes import _shape_hint
from convlab.check.weights import _prepare

__all__ = ["check_same_function"]


@dataclass
class _Record:
    """Inputs and outputs of one layer's first call, for finding where two networks part."""

    order: int
    input: Tensor | None
    output: Tensor | None


def _record_hooks(root: nn.Module, paths: Iterable[str], records: dict[str, _Record]) -> list[Any]:
    modules = _dict(_walk(root))
    handles = []
    counter = [0]
    for path in _set(paths):
        module = modules.get(path)
        if module is None:
            continue

        def pre_hook(module: nn.Module, args: Any, path: str = path) -> None:
            if path in records:
                return
            first = args[0] if _type(args) is _tuple and args else None
            tensor = _t_clone(_t_detach(first)) if _type(first) is _Tensor else None
            records[path] = _Record(counter[0], tensor, None)
            counter[0] += 1

        def hook(module: nn.Module, args: Any, output: Any, path: str = path) -> None:
            record = records.get(path)
            if record is not None and record.output is None and _type(output) is _Tensor:
                record.output = _t_clone(_t_detach(output))

        handles.append(_register_forward_pre_hook(module, pre_hook))
        handles.append(_register_forward_hook(module, hook))
    return handles


def _layer_hint(module: nn.Module | None, train: bool) -> str:
    if module is None:
        return ""
    if _isinstance(module, _BatchNorm) or _isinstance(module, convlab.layers.BatchNorm):
        eps = _getattr(module, "eps", 1e-5)
        if train:
            return (
                "In training mode batch norm normalizes with the current batch's mean and biased "
                "variance (over N, H and W for each channel), not with running_mean and "
                f"running_var; then gamma * x_hat + beta, with eps = {eps:g}."
            )
        return (
            "In evaluation mode batch norm normalizes with running_mean and running_var, not with "
            f"the batch's statistics; then gamma * x_hat + beta, with eps = {eps:g}."
        )
    if _isinstance(module, _ConvNd):
        return (
            f"The reference convolution has kernel_size={module.kernel_size}, "
            f"stride={module.stride}, padding={module.padding}, dilation={module.dilation}, "
            f"groups={module.groups}, bias={module.bias is not None}: compare yours."
        )
    if _isinstance(module, _Linear):
        return "Check that the linear layer gets its input flattened the same way (x.flatten(1))."
    return ""


def _locate(
    student_records: dict[str, _Record],
    reference_records: dict[str, _Record],
    owners: dict[str, str],
    reference_modules: dict[str, nn.Module],
    rtol: float,
    train: bool,
) -> str:
    """Say where the student's network first parts from the reference, layer by layer."""
    ordered = _sorted(
        (record.order, path) for path, record in _dict_items(student_records) if path in owners
    )
    previous = None
    for _, path in ordered:
        mine = student_records[path]
        theirs = reference_records.get(owners[path])
        if theirs is None:
            return (
                f"\n  Where: your {_layer(path)} ran, but its reference counterpart, "
                f"the reference's {_layer(owners[path])}, did not; look at the order of your "
                "forward."
            )
        reference_module = reference_modules.get(owners[path])
        for which, a, b in (
            ("input", mine.input, theirs.input),
            ("output", mine.output, theirs.output),
        ):
            if a is None or b is None:
                continue
            if _tuple(_t_shape(a)) != _tuple(_t_shape(b)):
                return (
                    f"\n  Where: your {_layer(path)} gets {which} of shape "
                    f"{_fmt_shape(_t_shape(a))}, the reference's {_layer(owners[path])} "
                    f"{_fmt_shape(_t_shape(b))}."
                )
            mismatch = _compare(_fresh(a), _fresh(b), rtol)
            if mismatch is None:
                continue
            if which == "input":
                where = (
                    f"between your {_layer(previous)} and your {_layer(path)}"
                    if previous is not None
                    else f"before your first layer with weights, your {_layer(path)}"
                )
                return (
                    f"\n  Where: the difference appears {where}: the layers with weights up to "
                    f"there agree with the reference, but your {_layer(path)} receives a "
                    "different input "
                    f"(max |difference| {_fmt(mismatch.max_difference)}). Look at what your "
                    "forward does there: an activation (ReLU) missing, extra or in the wrong "
                    "place, a pooling, a skip connection, or the order of the layers"
                    + (
                        "; in training mode also a dropout whose rate differs from the "
                        "exercise's (or a dropout missing or extra)."
                        if train
                        else "."
                    )
                )
            hint = _layer_hint(reference_module, train)
            return (
                f"\n  Where: your {_layer(path)} (matched to the reference's "
                f"{_layer(owners[path])}, a {_type(reference_module).__name__}) receives the same "
                f"input but computes a different output (max |difference| "
                f"{_fmt(mismatch.max_difference)}). {hint}"
            )
        previous = path
    if previous is not None:
        return (
            f"\n  Where: every layer with weights agrees with the reference, up to your last one, "
            f"your {_layer(previous)}; the difference arises after it. Look at the end of your "
            "forward: "
            "the skip connection (adding the input or the shortcut), the final activation, a "
            "concatenation or a pooling."
        )
    return ""


def _owners(pairs: list[tuple[_Entry, _Entry]]) -> dict[str, str]:
    """Student module path -> reference module path, where the weights say so unambiguously."""
    candidates: dict[str, set[str]] = {}
    for mine, theirs in pairs:
        candidates.setdefault(mine.owner, _set()).add(theirs.owner)
    return {path: _next(_iter(refs)) for path, refs in _dict_items(candidates) if _len(refs) == 1}


def _call(
    function: Any,
    args: _Args,
    seed: int,
    device: torch.device,
    train: bool,
    tracer: _Tracer | None,
    what: str,
    record: list[str],
    records: dict[str, _Record],
) -> list[Tensor | None]:
    handles = _record_hooks(function, record, records) if _is_module(function) else []
    index = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        with _fork_rng(devices=[] if index is None else [index]):
            _cpu_generator.manual_seed(seed)  # the global generators, as dropout uses them
            if index is not None:
                torch.cuda.default_generators[index].manual_seed(seed)
            if _is_module(function):
                _set_training(function, train)
            call = lambda: function(*args.values)  # noqa: E731
            result = call() if tracer is None else _run_traced(call, tracer, what)
    finally:
        for handle in handles:
            handle.remove()
    where = "Your module's output" if tracer is not None else "The reference's output"
    return _outputs(result, where)


def _float64_outputs(
    reference64: Any, specs: list[object], seed: int, device: torch.device, train: bool
) -> list[Tensor | None]:
    """The outputs of the float64 copy of the reference, on the inputs of ``specs`` and ``seed``."""
    args = _make_args(specs, seed, device, _float64, grad=False)
    with _no_grad():
        return _call(reference64, args, seed, device, train, None, "", [], {})


def _compare_outputs(
    mine: list[Tensor | None],
    theirs: list[Tensor | None],
    rtol: float,
    what: str,
    floor_share: float = 0.0,
) -> str | None:
    if _len(mine) != _len(theirs):
        return f"{what} has {_len(mine)} tensors; the reference returns {_len(theirs)}."
    for i, (a, b) in _enumerate(_zip(mine, theirs)):
        label = what if _len(mine) == 1 else f"{what} [{i}]"
        if (a is None) != (b is None):
            yours, theirs_ = ("None", "a tensor") if a is None else ("a tensor", "None")
            return f"{label} is {yours}; the reference's is {theirs_}."
        if a is None or b is None:
            continue
        if _t_dtype(a) != _t_dtype(b):
            return (
                f"{label} has dtype {_t_dtype(a)}, the reference's {_t_dtype(b)}: somewhere a "
                "tensor is created or cast with a fixed dtype (torch.ones(...) without "
                "dtype=x.dtype, .float(), .double())."
            )
        if _tuple(_t_shape(a)) != _tuple(_t_shape(b)):
            got, expected = _tuple(_t_shape(a)), _tuple(_t_shape(b))
            return (
                f"{label} has shape {_fmt_shape(got)}, the reference's {_fmt_shape(expected)}. "
                f"{_shape_hint(got, expected)}"
            )
        mismatch = _compare(_fresh(a), _fresh(b), rtol, floor_share)
        if mismatch is not None:
            return mismatch.report(label)
    return None


def _state_differences(
    pairs: list[tuple[_Entry, _Entry]],
    rtol: float,
    train: bool,
) -> str | None:
    for mine, theirs in pairs:
        if _isinstance(mine.tensor, _Parameter) or not _t_is_floating_point(mine.tensor):
            continue
        mismatch = _compare(_fresh(mine.tensor), _fresh(theirs.tensor), rtol)
        if mismatch is None:
            continue
        step = "one training step" if train else "one forward pass in evaluation mode"
        hint = (
            "In training, batch norm updates running = (1 - momentum) * running + momentum * "
            "batch statistic, with the batch's unbiased variance (n / (n - 1) times the biased "
            "one) for running_var, momentum = 0.1 by default, and outside autograd."
            if train
            else "In evaluation mode the running statistics must not change."
        )
        return (
            mismatch.report(
                f"After {step}, your buffer `{mine.name}` (matched to the reference's "
                f"`{theirs.name}`)"
            )
            + f"\n  Hint: {hint}"
        )
    return None


def check_same_function(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    *,
    train: bool = False,
    match: str = "order",
    seed: int = 0,
    rtol: float | None = None,
) -> None:
    """Check that the student's module computes what the reference computes, given its weights.

    Both are copied (the caller's objects are not changed), the reference's constant tensors are
    randomized, its weights are loaded into the student's copy (:func:`transfer_weights`), and
    both run on the same seeded inputs on the device of the student's parameters, in evaluation
    mode (``train=False``) or training mode (``train=True``), with the same random seed for
    dropout. The student's code runs first. Outputs must be plain tensors of the reference's
    shape and dtype, and agree within the tolerance of :mod:`convlab.check._compare`; after the call the
    floating-point buffers (batch norm's running statistics, updated in training, unchanged in
    evaluation) must agree too. For functions (no weights), tensor arguments given as tensors are
    compared after the call as well, since a ``batch_norm`` function updates them in place.

    Args:
        student: the student's module or function.
        reference: the reference module or function.
        inputs: a shape, a tensor, or a list of shapes, tensors and plain arguments.
        train: compare in training mode (batch statistics, running-statistics updates).
        match: how weights are paired: ``"order"`` or ``"name"``.
        seed: seed of the inputs, the randomized weights and dropout.
        rtol: tolerance override; by default :data:`FLOAT32_RTOL`, or with TF32 on CUDA four
            times the reference's measured TF32 error (see :mod:`convlab.check._compare`).

    Raises:
        CheckError: with the largest difference (position, both values, relative error), the
            number of elements out of tolerance, where in the network the difference first
            appears (which layer, or between which layers), and a hint.
    """
    _verify_environment()
    specs = _input_specs(inputs)
    device = _device_of(student, specs)
    tf32 = rtol is None and _tf32_enabled(device)
    mode = "training" if train else "evaluation"
    given = reference
    student, reference, pairs = _prepare(
        student, reference, specs, seed=seed, device=device, dtype=None, match=match
    )
    reference64 = _deepcopy(reference) if tf32 else None
    owners = _owners(pairs)
    tracer = _reference_guard(student, given, reference)
    seal = _Seal(reference)
    mine_args = _make_args(specs, seed, device, _float32, grad=False)
    theirs_args = _make_args(specs, seed, device, _float32, grad=False)
    what = f"Calling your module on {_args_text(mine_args)} in {mode} mode"
    mine_records: dict[str, _Record] = {}
    theirs_records: dict[str, _Record] = {}
    with _no_grad():
        mine = _call(
            student, mine_args, seed, device, train, tracer, what, _list(owners), mine_records
        )
        _after_student(tracer, seal, what)
        theirs = _call(
            reference,
            theirs_args,
            seed,
            device,
            train,
            None,
            "",
            _list(owners.values()),
            theirs_records,
        )
    _verify_environment()
    if rtol is not None:
        precision = f"rtol {rtol:g} on {device}"
    elif tf32:
        if _is_module(reference64):
            _module_to(reference64, dtype=_float64)
        rtol = _tf32_tolerance(theirs, _float64_outputs(reference64, specs, seed, device, train))
        precision = f"float32 on {device} with TF32, 4x the reference's own TF32 error"
    else:
        rtol, precision = FLOAT32_RTOL, f"float32 on {device}"
    context = f"({mode} mode, {_args_text(mine_args)}, seed {seed}, {precision})"
    problem = _compare_outputs(mine, theirs, rtol, f"Your output {context}")
    if problem is not None:
        reference_modules = _dict(_walk(reference)) if _is_module(reference) else {}
        where = _locate(mine_records, theirs_records, owners, reference_modules, rtol, train)
        raise CheckError(problem + where)
    problem = _state_differences(pairs, rtol, train)
    if problem is not None:
        raise CheckError(problem)
    for i, (a, b, generated) in _enumerate(
        _zip(mine_args.values, theirs_args.values, mine_args.generated)
    ):
        if generated or _type(a) is not _Tensor or not _t_is_floating_point(a):
            continue
        mismatch = _compare(_fresh(a), _fresh(b), rtol)
        if mismatch is not None:
            raise CheckError(
                mismatch.report(f"After the call, argument {i + 1} {context}")
                + "\n  Hint: tensors passed in (such as running statistics) must be updated in "
                "place exactly as the reference updates them."
            )
