"""Loading torchvision's published ImageNet weight files into convlab models.

Every convlab model that shares a name with a ``torchvision.models`` model has the same
parameter names and shapes, so a freshly built torchvision state dict loads with plain
``model.load_state_dict``. The files torchvision publishes differ from fresh state dicts in two
ways, and :func:`load_torchvision_weights` handles both:

* DenseNet files predate a renaming: ``denselayer1.norm.1.weight`` is today's
  ``denselayer1.norm1.weight`` (likewise ``relu.N`` and ``conv.N``).
* The GoogLeNet file carries the two auxiliary classifiers (``aux1``, ``aux2``), used only in
  training, and its weights, ported from TensorFlow, expect inputs scaled to [-1, 1]. The
  model's ``transform_input`` switch converts ImageNet-normalized input to that range.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["load_torchvision_weights"]

# features.denseblock1.denselayer1.norm.1.weight -> features.denseblock1.denselayer1.norm1.weight
_OLD_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.\w+)$")


def load_torchvision_weights(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    strict: bool = True,
    transform_input: bool = True,
) -> nn.Module:
    """Load a torchvision weight file (or its state dict) into a convlab model.

    Args:
        model: a convlab model built under the same name as the weights, for example
            ``create("densenet121")`` for ``densenet121-a639ec97.pth``.
        weights: the path of a ``.pth`` file (read with ``torch.load(weights_only=True)``, so a
            file that would run code is refused) or a state dict.
        strict: require every key to match, as ``load_state_dict`` does.
        transform_input: for models with a ``transform_input`` switch (GoogLeNet), the value to
            set; the published GoogLeNet weights need ``True``.

    Returns:
        ``model``, with the weights loaded.

    Raises:
        ValueError: the file holds more than tensors, or the weights do not fit the model; the
            message says which.
    """
    if isinstance(weights, (str, os.PathLike)):
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ValueError(
                f"refused to load {os.fspath(weights)!r}: it holds Python objects, not only "
                "tensors, and unpickling them could run code"
            ) from None
    else:
        state = weights
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            "expected a state dict (parameter name -> tensor); if the file wraps one, "
            "pass the inner dict (for example checkpoint['model'])"
        )
    state = {_OLD_DENSENET_KEY.sub(r"\1\2", key): value for key, value in state.items()}
    has_aux = any(k.startswith(("aux1.", "aux2.")) for k in state)
    if has_aux and getattr(model, "aux1", None) is None:
        state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
    if hasattr(model, "transform_input"):
        model.transform_input = transform_input

    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if mismatched or (strict and (missing or unexpected)):
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", mismatched),
        ):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise ValueError(
            f"these weights do not fit {type(model).__name__}: {'; '.join(parts)}. "
            "Build the model under the weights' torchvision name with its default arguments "
            "(num_classes=1000, in_channels=3, small_input=False)."
        )
    model.load_state_dict(state, strict=strict)
    return model
