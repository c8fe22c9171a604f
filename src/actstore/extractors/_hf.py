"""The ``hf`` backend: a transformers model with forward hooks on its decoder blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from actstore.errors import ExtractionError, InvalidArgumentError, ModelLoadError
from actstore.extractors._hooks import HF_HOOKS

__all__ = ["HFBackend", "find_decoder_layers"]


class _StopForward(Exception):
    """Raised by the deepest hook: later blocks, the final norm and the unembedding never run."""


def find_decoder_layers(model: Any, n_layers: int) -> torch.nn.ModuleList:
    """The ``ModuleList`` of decoder blocks (``model.layers``, ``transformer.h``, ...)."""
    base = getattr(model, "base_model", model)
    for attr in ("layers", "h", "blocks", "block"):
        m = getattr(base, attr, None)
        if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers:
            return m
    for _, m in model.named_modules():
        if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers:
            return m
    raise ModelLoadError(
        f"expected a list of {n_layers} decoder blocks in {type(model).__name__}, found none; "
        "use --backend tlens for this architecture"
    )


def _load_model(path: str, torch_dtype: torch.dtype, device: torch.device) -> Any:
    from transformers import AutoModel, AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype, "local_files_only": True}
    if device.type == "cuda":
        # Several GPUs: spread the blocks (accelerate); one: load straight onto it.
        multi = device.index is None and torch.cuda.device_count() > 1
        kwargs["device_map"] = "auto" if multi else str(device)
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except ValueError as exc:
            if "Unrecognized configuration class" not in str(exc):
                raise
            model = AutoModel.from_pretrained(path, **kwargs)
    except (torch.OutOfMemoryError, MemoryError):
        raise ExtractionError(
            f"expected the model to fit in memory, got out of memory loading {path!r}; use a "
            "GPU with more memory, several GPUs (--device cuda), or --dtype bfloat16"
        ) from None
    except Exception as exc:  # safetensors, json, torch: any failure means an unusable checkpoint
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"expected a loadable transformers checkpoint in {path!r}, got {first}; "
            "check the directory holds a complete save_pretrained checkpoint"
        ) from None
    if device.type != "cuda":
        model.to(device)
    model.eval()
    return model


class HFBackend:
    """Capture hook points of chosen decoder blocks in one forward pass.

    Parameters
    ----------
    path
        Local checkpoint directory.
    layers
        Sorted block indices to capture.
    hooks
        Names from :data:`HF_HOOKS`.
    torch_dtype, device
        Weights are loaded in this dtype onto this device (``device_map="auto"`` for ``cuda`` with
        several GPUs).
    n_layers
        The model's depth (from config.json).
    """

    name = "hf"

    def __init__(
        self,
        path: str,
        *,
        layers: Sequence[int],
        hooks: Sequence[str],
        torch_dtype: torch.dtype,
        device: torch.device,
        n_layers: int,
        model: Any = None,
    ) -> None:
        for h in hooks:
            if h not in HF_HOOKS:
                raise InvalidArgumentError(
                    f"expected hooks among {sorted(HF_HOOKS)} for --backend hf, got {h!r}; use "
                    "--backend tlens for other TransformerLens hook points"
                )
        self.layers = tuple(layers)
        self.hooks = tuple(hooks)
        self.model = model if model is not None else _load_model(path, torch_dtype, device)
        self.blocks = find_decoder_layers(self.model, n_layers)
        self.input_device = self.model.get_input_embeddings().weight.device
        self.d_model = int(self.model.get_input_embeddings().weight.shape[1])
        self.widths = dict.fromkeys(self.hooks, self.d_model)
        self._captured: dict[tuple[str, int], torch.Tensor] = {}
        self._needed = len(self.layers) * len(self.hooks)
        self._handles: list[Any] = []
        for layer in self.layers:
            block = self.blocks[layer]
            if "resid_post" in self.hooks:
                self._handles.append(block.register_forward_hook(self._post_hook(layer)))
            if "resid_pre" in self.hooks:
                self._handles.append(
                    block.register_forward_pre_hook(self._pre_hook(layer), with_kwargs=True)
                )

    @property
    def provenance(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "backend": "hf",
            "model_class": type(self.model).__name__,
            "attn_implementation": getattr(cfg, "_attn_implementation", None),
            "hook_semantics": {h: HF_HOOKS[h] for h in self.hooks},
            "device_map": getattr(self.model, "hf_device_map", None),
            "stops_after_layer": max(self.layers),
        }

    def _record(self, key: tuple[str, int], t: torch.Tensor) -> None:
        self._captured[key] = t.detach()
        if len(self._captured) == self._needed:
            raise _StopForward

    def _post_hook(self, layer: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            # transformers 5.x decoder layers return a tensor or a tuple (hidden_states, ...)
            t = output[0] if isinstance(output, tuple) else output
            self._record(("resid_post", layer), t)

        return hook

    def _pre_hook(self, layer: int) -> Any:
        def hook(module: Any, args: Any, kwargs: Any) -> None:
            t = args[0] if args else kwargs["hidden_states"]
            self._record(("resid_pre", layer), t)

        return hook

    def capture(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, list[torch.Tensor]]:
        """One forward pass; returns ``hook -> [tensor (batch, token, d_model) per layer]``."""
        self._captured = {}
        base = getattr(self.model, "base_model", self.model)
        try:
            with torch.inference_mode():
                # the base model: no unembedding even if no hook stops the pass
                base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except _StopForward:
            pass
        got, self._captured = self._captured, {}
        return {h: [got[(h, layer)] for layer in self.layers] for h in self.hooks}

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
