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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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

    The model and the caller's random streams are left as they were: every module gets its own
    training or evaluation mode back, the training-mode pass that measures saved tensors restores
    every buffer (batch-norm statistics), the input comes from a private generator, and the CPU's
    random state (and the CUDA device's, on a GPU) is restored afterwards. A module called more
    than once has a row per call, each with that call's MACs; its parameters count once.

    Args:
        model: any ``nn.Module`` taking one image batch.
        input_size: ``(C, H, W)`` for one image or ``(N, C, H, W)`` for a batch.
        device: where to run (defaults to where the model's parameters are).
        dtype: the input's dtype (sets the bytes per value).
        measure_backward: also measure what autograd keeps for backward (one more forward pass).

    Returns:
        A :class:`Summary`.

    Raises:
        ValueError: the input size is malformed, too small for the network or of the wrong
            shape for a layer; the message names the layer that could not handle it. Other
            errors of the model's forward pass are raised as they are, with a note naming the
            layer.
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
    device = torch.device(device)
    # the input comes from a private generator: the caller's random streams stay where they were
    x = torch.randn(shape, device=device, dtype=dtype, generator=_generator(device))
    leaves = {name: m for name, m in model.named_modules() if not any(m.children())}
    model_name = type(model).__name__

    modes = {m: m.training for m in model.modules()}
    model.eval()
    calls: list[tuple[str, nn.Module, Tensor, int]] = []  # one per call of a leaf
    current: list[tuple[str, int]] = []  # the leaves being called, with the FLOPs before

    def module_flops(name: str) -> int:
        return sum(counter.get_flop_counts().get(f"{model_name}.{name}", {}).values())

    def pre_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            current.append((name, module_flops(name)))

        return hook

    def post_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            _, before = current.pop()
            if isinstance(output, Tensor):
                calls.append((name, module, output, module_flops(name) - before))

        return hook

    handles = []
    for name, m in leaves.items():
        handles.append(m.register_forward_pre_hook(pre_hook(name)))
        handles.append(m.register_forward_hook(post_hook(name)))
    try:
        with _random_state_kept(device):
            try:
                with torch.no_grad(), FlopCounterMode(display=False) as counter:
                    _run(model, x, current)
            finally:
                for h in handles:
                    h.remove()
            saved_act, saved_par = _saved_bytes(model, x) if measure_backward else (0, 0)
    finally:
        for module, mode in modes.items():
            module.training = mode

    seen = {x.untyped_storage().data_ptr()}
    counted: set[nn.Module] = set()  # a module called again owns no more parameters
    rows: list[LayerRow] = []
    activations = x.numel()
    activation_bytes = x.numel() * x.element_size()
    for name, module, out, flops in calls:
        ptr = out.untyped_storage().data_ptr()
        new = ptr not in seen
        seen.add(ptr)
        nbytes = out.numel() * out.element_size()
        if new:
            activations += out.numel()
            activation_bytes += nbytes
        params = 0 if module in counted else sum(p.numel() for p in module.parameters(False))
        counted.add(module)
        rows.append(
            LayerRow(
                name=name,
                type=type(module).__name__,
                output_shape=tuple(out.shape),
                params=params,
                activations=out.numel(),
                activation_bytes=nbytes,
                macs=flops // 2,
                new_tensor=new,
            )
        )

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


# What PyTorch says when an input is too small for a layer (a kernel or pooling window larger
# than the map, an output size below one); only these are answered with "use a larger input".
_TOO_SMALL = (
    "too small",
    "can't be greater than actual input size",
    "kernel size can't be greater",
    "padded input size per channel",
    "output size is too small",
)
# Other mismatches between the input and a layer (channels, flattened features).
_MISMATCH = (
    "expected input",
    "to have",
    "channels",
    "shapes cannot be multiplied",
    "size of tensor",
)


def _run(model: nn.Module, x: Tensor, current: list[tuple[str, int]]) -> object:
    """Call the model; a shape failure becomes one line naming the layer and the input.

    Errors that have nothing to do with the input's shape are raised as they are, with a note
    naming the layer.
    """
    try:
        return model(x)
    except RuntimeError as error:
        layer = current[-1][0] if current else None
        reason = str(error).strip().splitlines()[0]
        lowered = reason.lower()
        where = f" at layer '{layer}'" if layer is not None else ""
        fits = f"input of shape {tuple(x.shape)} does not fit {type(model).__name__}{where}"
        if any(text in lowered for text in _TOO_SMALL):
            raise ValueError(
                f"{fits}: {reason}. Use a larger input (or the model's small-input configuration)."
            ) from None
        if any(text in lowered for text in _MISMATCH):
            raise ValueError(
                f"{fits}: {reason}. Check the input's channels and size against the layer's."
            ) from None
        if layer is not None:
            error.add_note(f"(raised in layer '{layer}' while summarizing {type(model).__name__})")
        raise


def _generator(device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(0)
    return generator


@contextmanager
def _random_state_kept(device: torch.device) -> Iterator[None]:
    """The CPU's random state, and the device's where it is CUDA, restored afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        yield


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
    model.train()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    finally:  # the caller restores modes and random state
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
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
