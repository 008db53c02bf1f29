"""A layer-by-layer account of a network: output shapes, parameters, memory and compute.

Conventions, stated once:

* **MACs** are multiply-accumulates of convolutions and matrix products, counted by
  ``torch.utils.flop_counter`` (which reports FLOPs; MACs = FLOPs / 2). Batch norm, activations,
  pooling and additions are not counted, as in torchvision's published figures. torchvision's
  "GFLOPS" column is in fact GMACs.
* **Activations** of a layer are the values of its output. The total counts every distinct
  tensor once (the input included): a ReLU applied in place, or a dropout that is the identity in
  evaluation, adds no new values.
* **Saved for backward** is measured, not estimated: during one training-mode forward pass every
  tensor that autograd keeps for the backward pass is recorded through
  ``torch.autograd.graph.saved_tensors_hooks``, each underlying storage counted once. Saved
  parameters are reported apart from saved activations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["LayerRow", "Summary", "summary"]


@dataclass(frozen=True)
class LayerRow:
    """One leaf module's line in a :class:`Summary`.

    Attributes:
        name: the module's qualified name in the model (``features.0``).
        type: the module's class name (``Conv2d``).
        output_shape: shape of its output, batch dimension included.
        params: parameters owned by the module.
        activations: values in its output.
        activation_bytes: bytes of its output.
        macs: multiply-accumulates done by the module.
        new_tensor: False when the output shares storage with a tensor already counted
            (in-place ReLU, identity dropout); such rows do not add to the activation total.
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    activations: int
    activation_bytes: int
    macs: int
    new_tensor: bool


@dataclass(frozen=True)
class Summary:
    """The result of :func:`summary`: rows and totals; ``print`` it for a table.

    Attributes:
        model: the model's class name.
        input_shape: the input's shape, batch dimension included.
        rows: one :class:`LayerRow` per leaf module, in call order.
        params: all parameters.
        trainable_params: parameters with ``requires_grad``.
        bias_params: parameters named ``bias`` (so ``params - bias_params`` are the weights).
        macs: multiply-accumulates of the whole forward pass.
        input_values: values in the input.
        activations: distinct values produced in the forward pass, the input included.
        activation_bytes: bytes of those values.
        saved_activation_bytes: bytes autograd keeps for backward, parameters excluded.
        saved_param_bytes: bytes of parameters autograd keeps for backward.
    """

    model: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    params: int
    trainable_params: int
    bias_params: int
    macs: int
    input_values: int
    activations: int
    activation_bytes: int
    saved_activation_bytes: int
    saved_param_bytes: int

    @property
    def flops(self) -> int:
        """FLOPs of the forward pass, counting a multiply-accumulate as two."""
        return 2 * self.macs

    @property
    def batch_size(self) -> int:
        return self.input_shape[0]

    def __str__(self) -> str:
        return self.table()

    def table(self, max_rows: int | None = None) -> str:
        """The summary as fixed-width text.

        Args:
            max_rows: show at most this many layer rows (first and last halves); totals are
                always complete.

        Returns:
            The table, one line per layer, then the totals.
        """
        header = ("Layer", "Type", "Output shape", "Params", "Activations", "Act. memory", "MACs")
        lines: list[tuple[str, ...]] = [
            ("input", "", _shape(self.input_shape), "", f"{self.input_values:,}", "", "")
        ]
        rows: Sequence[LayerRow | None] = self.rows
        if max_rows is not None and len(self.rows) > max_rows:
            half = max_rows // 2
            rows = [*self.rows[:half], None, *self.rows[-half:]]
        for row in rows:
            if row is None:
                lines.append(("...",) + ("",) * 6)
                continue
            lines.append(
                (
                    row.name,
                    row.type,
                    _shape(row.output_shape),
                    f"{row.params:,}" if row.params else "",
                    f"{row.activations:,}" + ("" if row.new_tensor else " *"),
                    _bytes(row.activation_bytes),
                    _count(row.macs) if row.macs else "",
                )
            )
        widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
        right = {3, 4, 5, 6}

        def fmt(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        rule = "-" * len(fmt(header))
        n = self.batch_size
        per = f" ({_bytes(self.activation_bytes // n)} per image)" if n > 1 else ""
        saved = self.saved_activation_bytes
        saved_per = f" ({_bytes(saved // n)} per image)" if n > 1 else ""
        totals = [
            f"Parameters: {self.params:,} ({self.params - self.bias_params:,} without biases; "
            f"{self.trainable_params:,} trainable)",
            f"Parameter memory (float32): {_bytes(4 * self.params)}",
            f"MACs: {_count(self.macs)} (FLOPs = 2 x MACs = {_count(self.flops)})",
            f"Forward activations, input included: {self.activations:,} values = "
            f"{_bytes(self.activation_bytes)}{per}",
            f"Saved by autograd for backward (measured): {_bytes(saved)} of activations"
            f"{saved_per} + {_bytes(self.saved_param_bytes)} of parameters",
        ]
        if any(not r.new_tensor for r in self.rows):
            totals.append("* output shares memory with an earlier tensor; not added to the total")
        return "\n".join(
            [f"{self.model}, input {_shape(self.input_shape)}", rule, fmt(header), rule]
            + [fmt(x) for x in lines]
            + [rule, *totals]
        )


def summary(
    model: nn.Module,
    input_size: Sequence[int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    measure_backward: bool = True,
) -> Summary:
    """Run ``model`` once on a random input and account for every leaf layer.

    The model's state is left as it was: the training-mode pass that measures saved tensors
    restores every buffer (batch-norm statistics) and the random-number generator afterwards.

    Args:
        model: any ``nn.Module`` taking one image batch.
        input_size: ``(C, H, W)`` for one image or ``(N, C, H, W)`` for a batch.
        device: where to run (defaults to where the model's parameters are).
        dtype: the input's dtype (sets the bytes per value).
        measure_backward: also measure what autograd keeps for backward (one more forward pass).

    Returns:
        A :class:`Summary`.

    Raises:
        ValueError: the input size is malformed or too small for the network; the message names
            the layer that could not handle it.
    """
    shape = tuple(int(s) for s in input_size)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(
            f"input_size must be (C, H, W) or (N, C, H, W) with positive sizes, got {tuple(input_size)}"
        )
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    x = torch.randn(shape, device=device, dtype=dtype)
    leaves = {name: m for name, m in model.named_modules() if not any(m.children())}
    model_name = type(model).__name__

    was_training = model.training
    model.eval()
    outputs: list[tuple[str, nn.Module, Tensor]] = []
    current: list[str] = []

    def pre_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            current.append(name)

        return hook

    def post_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            current.pop()
            if isinstance(output, Tensor):
                outputs.append((name, module, output))

        return hook

    handles = []
    for name, m in leaves.items():
        handles.append(m.register_forward_pre_hook(pre_hook(name)))
        handles.append(m.register_forward_hook(post_hook(name)))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            _run(model, x, current)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    flops = counter.get_flop_counts()
    seen = {x.untyped_storage().data_ptr()}
    rows: list[LayerRow] = []
    activations = x.numel()
    activation_bytes = x.numel() * x.element_size()
    for name, module, out in outputs:
        ptr = out.untyped_storage().data_ptr()
        new = ptr not in seen
        seen.add(ptr)
        nbytes = out.numel() * out.element_size()
        if new:
            activations += out.numel()
            activation_bytes += nbytes
        module_flops = flops.get(f"{model_name}.{name}", {})
        rows.append(
            LayerRow(
                name=name,
                type=type(module).__name__,
                output_shape=tuple(out.shape),
                params=sum(p.numel() for p in module.parameters(recurse=False)),
                activations=out.numel(),
                activation_bytes=nbytes,
                macs=sum(module_flops.values()) // 2,
                new_tensor=new,
            )
        )

    saved_act, saved_par = _saved_bytes(model, x) if measure_backward else (0, 0)
    params = list(model.named_parameters())
    return Summary(
        model=model_name,
        input_shape=shape,
        rows=tuple(rows),
        params=sum(p.numel() for _, p in params),
        trainable_params=sum(p.numel() for _, p in params if p.requires_grad),
        bias_params=sum(p.numel() for n, p in params if n.rsplit(".", 1)[-1] == "bias"),
        macs=counter.get_total_flops() // 2,
        input_values=x.numel(),
        activations=activations,
        activation_bytes=activation_bytes,
        saved_activation_bytes=saved_act,
        saved_param_bytes=saved_par,
    )


def _run(model: nn.Module, x: Tensor, current: list[str]) -> object:
    """Call the model; turn a shape failure into one line naming the layer and the input."""
    try:
        return model(x)
    except RuntimeError as error:
        where = f" at layer '{current[-1]}'" if current else ""
        reason = str(error).strip().splitlines()[0]
        raise ValueError(
            f"input of shape {tuple(x.shape)} does not fit {type(model).__name__}{where}: {reason}. "
            "Use a larger input (or the model's small-input configuration)."
        ) from None


def _saved_bytes(model: nn.Module, x: Tensor) -> tuple[int, int]:
    """Bytes autograd keeps for backward in one training-mode forward pass.

    Returns:
        ``(activation_bytes, parameter_bytes)``, each storage counted once.
    """
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    buffers = [(b, b.clone()) for b in model.buffers()]
    rng = torch.random.get_rng_state()
    was_training = model.training
    model.train()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        torch.random.set_rng_state(rng)
    param_bytes = sum(n for ptr, n in storages.items() if ptr in param_ptrs)
    return sum(storages.values()) - param_bytes, param_bytes


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _count(n: float) -> str:
    if n == 0:
        return "0"
    exponent = min(int(math.log10(abs(n)) // 3), 4)
    if exponent <= 0:
        return f"{n:,.0f}"
    return f"{n / 10 ** (3 * exponent):.3f} {'KMGT'[exponent - 1]}"
