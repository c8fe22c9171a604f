"""The ``tlens`` backend: TransformerLens 4.x ``TransformerBridge`` over a local checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from actstore.errors import InvalidArgumentError, ModelLoadError
from actstore.extractors._hooks import tlens_hook

__all__ = ["TLensBackend"]

#: hook -> the bridge's switch that turns it on
_SWITCHES = {
    "hook_mlp_in": "set_use_hook_mlp_in",
    "hook_attn_in": "set_use_attn_in",
    "hook_q_input": "set_use_split_qkv_input",
    "hook_k_input": "set_use_split_qkv_input",
    "hook_v_input": "set_use_split_qkv_input",
    "attn.hook_result": "set_use_attn_result",
}


class TLensBackend:
    """Capture any per-block TransformerLens hook of chosen blocks in one forward pass.

    Activations with head dims (e.g. ``attn.hook_z``: batch, token, head, d_head) are flattened to
    ``(batch, token, head * d_head)``. The bridge runs with ``stop_at_layer = deepest + 1``.
    """

    name = "tlens"

    def __init__(
        self,
        path: str,
        *,
        layers: Sequence[int],
        hooks: Sequence[str],
        torch_dtype: torch.dtype,
        device: torch.device,
        n_layers: int,
        tokenizer: Any = None,
    ) -> None:
        from transformer_lens.model_bridge import TransformerBridge

        self.layers = tuple(layers)
        resolved = [tlens_hook(h) for h in hooks]
        self.rel = tuple(r for r, _ in resolved)
        self.hooks = tuple(v for _, v in resolved)
        try:
            self.bridge = TransformerBridge.boot_transformers(
                path, dtype=torch_dtype, device=str(device), tokenizer=tokenizer
            )
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelLoadError(
                f"expected a checkpoint TransformerBridge can boot in {path!r}, got {first}; "
                "use --backend hf or check the directory"
            ) from exc
        self.bridge.eval()
        self.input_device = device
        # hooks TransformerLens computes only when asked (it refuses them otherwise)
        for rel in self.rel:
            switch = _SWITCHES.get(rel)
            if switch is not None and hasattr(self.bridge, switch):
                getattr(self.bridge, switch)(True)
        known = set(self.bridge.hook_dict) | set(getattr(self.bridge, "hook_aliases", {}) or {})
        for rel, orig in zip(self.rel, hooks):
            if f"blocks.0.{rel}" not in known:
                raise InvalidArgumentError(
                    f"expected a TransformerLens per-block hook name, got {orig!r}; examples: "
                    "resid_post, hook_resid_mid, attn.hook_z, mlp.hook_post"
                )
        probe = self.capture(
            torch.zeros((1, 2), dtype=torch.long, device=device),
            torch.ones((1, 2), dtype=torch.long, device=device),
        )
        self.widths = {h: int(ts[0].shape[-1]) for h, ts in probe.items()}

    @property
    def provenance(self) -> dict[str, Any]:
        cfg = getattr(self.bridge, "original_model", None)
        attn = getattr(getattr(cfg, "config", None), "_attn_implementation", None)
        return {
            "backend": "tlens",
            "model_class": type(self.bridge).__name__,
            "attn_implementation": attn,
            "hook_semantics": {
                v: f"TransformerLens blocks.L.{r}" for r, v in zip(self.rel, self.hooks)
            },
            "stops_after_layer": max(self.layers),
        }

    def capture(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, list[torch.Tensor]]:
        """One forward pass; returns ``hook -> [tensor (batch, token, width) per layer]``."""
        got: dict[tuple[str, int], torch.Tensor] = {}
        fwd_hooks = []
        for rel, var in zip(self.rel, self.hooks):
            for layer in self.layers:

                def fn(t: torch.Tensor, hook: Any, key: tuple[str, int] = (var, layer)) -> None:
                    got[key] = t.detach().reshape(t.shape[0], t.shape[1], -1).clone()

                fwd_hooks.append((f"blocks.{layer}.{rel}", fn))
        with torch.inference_mode():
            self.bridge.run_with_hooks(
                input_ids,
                attention_mask=attention_mask,
                fwd_hooks=fwd_hooks,
                stop_at_layer=max(self.layers) + 1,
                return_type=None,
            )
        return {v: [got[(v, layer)] for layer in self.layers] for v in self.hooks}

    def close(self) -> None:
        self.bridge.reset_hooks()
