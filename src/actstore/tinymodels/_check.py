"""How much linear structure a model's residual stream holds: ridge probes per layer.

A quality check of the demo model against its random twin (needs scikit-learn). The project's
own probes live in ``actstore.analysis``; this module is an independent, in-memory reference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["answer_positions", "probe_r2", "residuals"]

_TRAILING_NUMBER = re.compile(r"(\d+)\s*$")


def answer_positions(model_dir: str | Path, texts: Sequence[str]) -> dict[str, list[int]]:
    """Token indices per text: ``last`` token and the token ``before`` the trailing answer."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    out: dict[str, list[int]] = {"last": [], "before": []}
    for text in texts:
        enc = tok.encode(text)
        m = _TRAILING_NUMBER.search(text)
        start = m.start(1) if m else len(text)
        first_answer = next(i for i, (a, b) in enumerate(enc.offsets) if b > a and a >= start)
        out["last"].append(len(enc.ids) - 1)
        out["before"].append(first_answer - 1)
    return out


def residuals(
    model_dir: str | Path, texts: Sequence[str], positions: Sequence[int], *, batch_size: int = 64
) -> np.ndarray:
    """Residual stream after every decoder block (before the final norm) at one token per text.

    Returns
    -------
    numpy.ndarray
        float32, shape (prompt, layer, d_model).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tok = AutoTokenizer.from_pretrained(model_dir)
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
    blocks = model.model.layers
    captured: list[Any] = [None] * len(blocks)

    def hook(i: int) -> Any:
        def fn(_module: Any, _inputs: Any, output: Any) -> None:
            captured[i] = output[0] if isinstance(output, tuple) else output

        return fn

    handles = [b.register_forward_hook(hook(i)) for i, b in enumerate(blocks)]
    rows = []
    try:
        with torch.no_grad():
            for s in range(0, len(texts), batch_size):
                enc = tok(list(texts[s : s + batch_size]), return_tensors="pt", padding=True)
                model.model(**enc)  # no unembedding needed
                pos = torch.tensor(positions[s : s + batch_size])
                idx = torch.arange(len(pos))
                if tok.padding_side == "left":
                    pos = pos + (enc["attention_mask"].shape[1] - enc["attention_mask"].sum(1))
                rows.append(torch.stack([h[idx, pos] for h in captured], dim=1).numpy())
    finally:
        for h in handles:
            h.remove()
    return np.concatenate(rows).astype(np.float32)


def probe_r2(
    x: np.ndarray,
    y: np.ndarray,
    *,
    alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
    cv: int = 5,
    seed: int = 0,
    shuffle_labels: bool = False,
) -> np.ndarray:
    """Cross-validated R² of a ridge probe per layer (alpha chosen inside each training fold).

    Parameters
    ----------
    x : numpy.ndarray
        Activations (prompt, layer, d_model).
    y : numpy.ndarray
        Target (prompt,).
    shuffle_labels : bool
        Permute ``y`` first (the chance-level control).

    Returns
    -------
    numpy.ndarray
        R² per layer, shape (layer,).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y, dtype=np.float64)
    if shuffle_labels:
        y = np.random.default_rng(seed).permutation(y)
    folds = KFold(cv, shuffle=True, random_state=seed)
    out = []
    for layer in range(x.shape[1]):
        est = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas))
        pred = cross_val_predict(est, x[:, layer].astype(np.float64), y, cv=folds)
        out.append(r2_score(y, pred))
    return np.array(out)
