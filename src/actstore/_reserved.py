"""Names the store writes into a prompt set itself, which labels may not take.

A leaf module below both :mod:`actstore.prompts` (which refuses such labels when a prompt file is
read) and :mod:`actstore.store` (which refuses them when metadata is written), so the check is
defined once without prompts importing the store.
"""

from __future__ import annotations

__all__ = ["DONE_ARRAY", "RESERVED_NAMES", "RESERVED_PREFIXES", "reserved_label_problem"]

#: Bookkeeping array: one uint8 per block, chunked one per block, 1 once the block is written.
DONE_ARRAY = "_blocks_done"
#: Variable names inside a prompt-set group that labels, hooks and derived variables may not take.
RESERVED_NAMES = frozenset(
    {
        "prompt",
        "layer",
        "token",
        "d_model",
        "text",
        "n_tokens",
        "token_id",
        "token_str",
        "span",
        "span_mask",
        "source_prompt",
        "is_generated",
        "block",
        DONE_ARRAY,
    }
)


#: Prefixes of the names actstore writes into a prompt set besides :data:`RESERVED_NAMES`: derived
#: predictions (``pred_<probe>``) and activation hooks (``resid_post``, TransformerLens ``attn_z``,
#: ``mlp_post``, ``ln1_normalized``, ...). A label may not start with one of them.
RESERVED_PREFIXES = ("pred_", "resid_", "attn_", "mlp_", "ln1_", "ln2_", "ln_final", "hook_")


def reserved_label_problem(name: str) -> str | None:
    """Why *name* cannot be a label (a name the store writes itself), or ``None`` when it can."""
    if name in RESERVED_NAMES:
        return f"the reserved name {name!r} (the store's own {name!r} variable)"
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            what = "derived predictions" if prefix == "pred_" else "activations"
            return f"{name!r}, which starts with {prefix!r} (reserved for {what})"
    return None
