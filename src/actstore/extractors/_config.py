"""Reading a local checkpoint's ``config.json`` without loading any weights."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actstore.errors import ModelLoadError

__all__ = ["ModelConfig", "check_tokenizer_dir", "read_model_config"]

_WEIGHT_PATTERNS = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.safetensors.index.json",
    "*.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")


def _first(cfg: dict[str, Any], *names: str) -> Any:
    for name in names:
        if cfg.get(name) is not None:
            return cfg[name]
    return None


def _read(default: Any = None) -> Any:
    """A field filled by :func:`read_model_config` (never set from a config file)."""
    return field(default=default, metadata={"omit_default": True, "read": True})


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A model: where it is and, once :func:`read_model_config` has read it, its shape.

    An experiment config's ``[model]`` table sets ``path`` only (``--model`` overrides it);
    :func:`read_model_config` fills the rest from ``PATH/config.json`` without loading weights.

    Attributes
    ----------
    path : str or None
        The checkpoint directory.
    raw : mapping or None
        ``config.json`` as parsed.
    model_type : str or None
    n_layers : int or None
        Number of decoder blocks.
    d_model : int or None
        Width of the residual stream.
    max_context : int or None
        Longest sequence the model accepts (``max_position_embeddings`` / ``n_positions``).
    config_dtype : str or None
        The dtype the checkpoint declares (``torch_dtype`` / ``dtype``).
    """

    path: str | None = None
    raw: Mapping[str, Any] | None = _read()
    model_type: str | None = _read()
    n_layers: int | None = _read()
    d_model: int | None = _read()
    max_context: int | None = _read()
    config_dtype: str | None = _read()


def read_model_config(path: str | Path, *, need_weights: bool = True) -> ModelConfig:
    """Read and check ``PATH/config.json`` of a local checkpoint directory.

    Parameters
    ----------
    path
        The model directory (``config.json``, weights, tokenizer files).
    need_weights
        Also require weight files (``False`` for a dry run, which loads none).

    Returns
    -------
    ModelConfig
        Architecture, ``n_layers``, ``d_model`` and the raw config.

    Raises
    ------
    ModelLoadError
        A path that does not exist, is a file, has no readable ``config.json``, no layer count
        or width, or (with *need_weights*) no weight files; the message names the fix.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise ModelLoadError(
            f"expected a local model directory, got {str(root)!r} which does not exist; "
            "pass the directory holding config.json and the weights"
        )
    if not root.is_dir():
        raise ModelLoadError(
            f"expected a local model directory, got the file {str(root)!r}; "
            "pass the directory holding config.json and the weights"
        )
    cfg_path = root / "config.json"
    if not cfg_path.is_file():
        raise ModelLoadError(
            f"expected a model directory with config.json, got {str(root)!r} without one; "
            "pass a transformers checkpoint directory (save_pretrained output)"
        )
    try:
        raw = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"expected valid JSON in {cfg_path}, got an unreadable file ({exc}); "
            "restore config.json from the checkpoint"
        ) from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"expected a JSON object in {cfg_path}; restore config.json")
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw
    n_layers = _first(text, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    d_model = _first(text, "hidden_size", "n_embd", "d_model")
    # transformers' own reading (its per-family attribute names) wins where it parses the file
    n_layers, d_model = _transformers_view(root, n_layers, d_model)
    if not isinstance(n_layers, int) or not isinstance(d_model, int):
        raise ModelLoadError(
            f"expected a decoder config with num_hidden_layers and hidden_size in {cfg_path}, "
            f"got keys {sorted(raw)[:12]}; pass a causal language model checkpoint"
        )
    if need_weights and not any(any(root.glob(p)) for p in _WEIGHT_PATTERNS):
        raise ModelLoadError(
            f"expected weight files (*.safetensors or *.bin) in {str(root)!r}, found none; "
            "download or save the full checkpoint, or use --dry-run to plan without weights"
        )
    dtype = _first(raw, "torch_dtype", "dtype") or _first(text, "torch_dtype", "dtype")
    return ModelConfig(
        path=str(root),
        raw=raw,
        model_type=str(raw.get("model_type", "")),
        n_layers=n_layers,
        d_model=d_model,
        max_context=_first(text, "max_position_embeddings", "n_positions", "n_ctx"),
        config_dtype=str(dtype) if dtype is not None else None,
    )


def _transformers_view(root: Path, n_layers: Any, d_model: Any) -> tuple[Any, Any]:
    """Depth and residual width as transformers builds the model from ``root/config.json``.

    Each family names them differently (``num_hidden_layers``, ``n_layer``, ``n_layers``;
    ``hidden_size``, ``n_embd``, ``d_model``) and transformers maps them through the config
    class's ``attribute_map``. OPT's ``word_embed_proj_dim`` (the embedding width) is not the
    residual width and is never read. Falls back to the raw keys when transformers is not
    installed or does not know the ``model_type``.
    """
    try:
        from transformers import AutoConfig
    except ImportError:
        return n_layers, d_model
    try:
        config = AutoConfig.from_pretrained(str(root), local_files_only=True)
        text = config.get_text_config()
        got = (getattr(text, "num_hidden_layers", None), getattr(text, "hidden_size", None))
    except Exception:  # an unknown model_type or remote code: the raw keys are all there is
        return n_layers, d_model
    return (
        got[0] if isinstance(got[0], int) else n_layers,
        got[1] if isinstance(got[1], int) else d_model,
    )


def check_tokenizer_dir(path: str | Path) -> None:
    """Raise :class:`ModelLoadError` when no tokenizer files sit next to the model."""
    root = Path(path)
    if not any((root / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"expected tokenizer files ({', '.join(_TOKENIZER_FILES)}) in {str(root)!r}, found "
            "none; copy the tokenizer files of the checkpoint into the model directory"
        )
