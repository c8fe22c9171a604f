"""Small torch helpers (this module imports torch: only the extraction path loads it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actstore.errors import InvalidArgumentError

__all__ = ["TORCH_DTYPES", "is_oom", "resolve_device", "resolve_dtype", "to_numpy"]

TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InvalidArgumentError(
            f"expected device auto, cpu, cuda or cuda:N, got {device!r}; pick one of these"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            "expected a visible CUDA device for --device cuda, got none; use --device cpu or auto"
        )
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """``auto`` -> bfloat16 on GPU, float32 on CPU (bfloat16 matmuls are slow on most CPUs)."""
    if dtype == "auto":
        return "bfloat16" if device.type == "cuda" else "float32"
    if dtype not in TORCH_DTYPES:
        raise InvalidArgumentError(
            f"expected dtype auto, bfloat16, float16 or float32, got {dtype!r}; pick one of these"
        )
    return dtype


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """CPU tensor -> numpy without copying; bfloat16 becomes ``ml_dtypes.bfloat16`` bit-exactly."""
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def library_versions() -> dict[str, Any]:
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        from importlib.metadata import version

        out["transformer_lens"] = version("transformer-lens")
    except Exception:  # not installed: fine for the hf backend
        pass
    return out


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error of torch (any device) or of the host."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
