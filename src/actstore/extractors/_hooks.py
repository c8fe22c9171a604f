"""Hook names per backend, resolved without importing torch (the dry run needs them)."""

from __future__ import annotations

from collections.abc import Sequence

from actstore._validate import split_items
from actstore.errors import InvalidArgumentError

__all__ = ["BACKENDS", "HF_HOOKS", "resolve_hooks", "tlens_hook"]

BACKENDS = ("hf", "tlens")

HF_HOOKS = {
    "resid_post": "output of decoder block l (its residual stream), before the final norm; "
    "for the last block too (HF hidden_states[-1] has the final norm applied and is not used)",
    "resid_pre": "input of decoder block l (the residual stream entering it)",
    "resid_mid": "residual stream of block l between attention and MLP (resid_pre + attn_out); "
    "sequential blocks only",
    "attn_out": "attention sublayer output of block l as added to the residual stream",
    "mlp_in": "MLP input of block l, after its norm (d_model wide, before the up-projection)",
    "mlp_out": "MLP sublayer output of block l as added to the residual stream (MoE: the sparse "
    "block's output)",
}
"""Hook points of the ``hf`` backend: name -> what is captured at decoder block ``l``."""

_SHORT = {
    "resid_post": "hook_resid_post",
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "attn_out": "hook_attn_out",
    "mlp_in": "mlp.hook_in",  # the MLP module's input, after ln2 (TL's hook_mlp_in is before it)
    "mlp_out": "hook_mlp_out",
}


def tlens_hook(name: str) -> tuple[str, str]:
    """``(relative TransformerLens hook name, store variable name)`` for a hook request.

    ``resid_post`` -> ``("hook_resid_post", "resid_post")``; ``attn.hook_z`` ->
    ``("attn.hook_z", "attn_z")``; a ``blocks.L.`` prefix is accepted and dropped (the layers
    come from ``layers``).
    """
    rel = name.strip()
    if rel.startswith("blocks."):
        parts = rel.split(".", 2)
        if len(parts) < 3 or not parts[1].isdigit():
            raise InvalidArgumentError(
                f"expected a hook like blocks.L.hook_resid_post or hook_resid_post, got {name!r}"
            )
        rel = parts[2]
    rel = _SHORT.get(rel, rel)
    var = rel.replace("hook_", "").replace(".", "_").strip("_")
    if not var:
        raise InvalidArgumentError(f"expected a hook name, got {name!r}; e.g. resid_post")
    return rel, var


def resolve_hooks(
    hooks: str | Sequence[str], backend: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(backend hook names, store variable names)`` for a hook request."""
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"expected backend one of {BACKENDS}, got {backend!r}")
    if isinstance(hooks, str):
        names = split_items(hooks, "hooks", "resid_post,resid_pre")
    else:
        names = list(hooks)
        if any(not isinstance(h, str) or not h.strip() for h in names):
            raise InvalidArgumentError(
                f"expected hook names, got an empty or non-text one in {hooks!r}; pass e.g. "
                "['resid_post', 'resid_pre']"
            )
    if not names:
        raise InvalidArgumentError("expected at least one hook, got none; e.g. --hook resid_post")
    if backend == "hf":
        for h in names:
            if h not in HF_HOOKS:
                raise InvalidArgumentError(
                    f"expected hooks among {sorted(HF_HOOKS)} for --backend hf, got {h!r}; "
                    "use --backend tlens for other TransformerLens hook points"
                )
        out = tuple(dict.fromkeys(names))
        return out, out
    pairs = list(dict.fromkeys(tlens_hook(h) for h in names))
    return tuple(r for r, _ in pairs), tuple(v for _, v in pairs)
