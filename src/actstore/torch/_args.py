"""Argument checks of `ActivationLoader`: one-line errors instead of torch or numpy tracebacks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from actstore._validate import is_int as _is_int
from actstore.errors import InvalidArgumentError


def check_layers(layers: Any, layer: Any) -> list[int] | None:
    """The requested real layer indices, or ``None`` for every stored layer.

    Raises
    ------
    InvalidArgumentError
        Both given, ``layer`` not an integer, ``layers`` not a non-empty sequence of distinct
        integers.
    """
    if layers is not None and layer is not None:
        raise InvalidArgumentError(
            f"expected layers= or layer=, got both ({layers!r}, {layer!r}); pass one"
        )
    if layer is not None:
        if not _is_int(layer):
            raise InvalidArgumentError(
                f"expected layer= as one integer layer index such as 15, got {layer!r}"
            )
        return [int(layer)]
    if layers is None:
        return None
    if isinstance(layers, str | bytes) or not isinstance(layers, Sequence | range | np.ndarray):
        raise InvalidArgumentError(
            f"expected layers= as a list of integer layer indices such as [7, 15], got "
            f"{layers!r}; use layer= for one layer"
        )
    items = list(layers)
    if not items or not all(_is_int(x) for x in items):
        raise InvalidArgumentError(
            f"expected layers= as a non-empty list of integer layer indices such as [7, 15], "
            f"got {layers!r}; leave it out for every stored layer"
        )
    if len(set(items)) != len(items):
        raise InvalidArgumentError(f"expected distinct layers, got {items!r}; name each layer once")
    return [int(x) for x in items]


def check_seed(seed: Any) -> int:
    """*seed* as a non-negative integer (numpy's generators take no negative seed)."""
    if not _is_int(seed) or seed < 0:
        raise InvalidArgumentError(f"expected seed to be an integer >= 0, got {seed!r}")
    return int(seed)


def check_device(device: Any) -> torch.device:
    """*device* as a ``torch.device`` this torch build can use.

    Raises
    ------
    InvalidArgumentError
        An unknown device string, or CUDA on a build or machine without it.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgumentError(
            f"expected a torch device such as 'cpu' or 'cuda:0', got {device!r}"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            f"expected a device this machine has, got {device!r} but torch finds no CUDA GPU; "
            "use device='cpu'"
        )
    return dev
