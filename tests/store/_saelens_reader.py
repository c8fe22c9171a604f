"""Read an exported folder with SAELens's own cached-activation reader; save what it returns.

Run as ``python _saelens_reader.py DIR HOOK_COLUMN CONTEXT_SIZE D_MODEL N_ROWS OUT_DIR`` by an
interpreter where ``sae_lens`` imports (see tests/store/test_export.py).
"""

import sys

import numpy as np
import torch
from sae_lens.training.activations_store import ActivationsStore

path, column, ctx, d, rows, out = sys.argv[1:7]
ctx, d, rows = int(ctx), int(d), int(rows)
store = ActivationsStore(
    model=None,
    dataset=None,
    streaming=False,
    hook_name=column,
    hook_head_index=None,
    context_size=ctx,
    d_in=d,
    n_batches_in_buffer=2,
    total_training_tokens=rows * ctx,
    store_batch_size_prompts=rows,
    train_batch_size_tokens=ctx,
    prepend_bos=False,
    normalize_activations="none",
    device=torch.device("cpu"),
    dtype="float32",
    cached_activations_path=path,
)
acts, token_ids = store.get_raw_llm_batch()
np.save(f"{out}/acts.npy", acts.numpy())
np.save(f"{out}/token_ids.npy", token_ids.numpy())
