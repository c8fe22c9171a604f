"""Cheap fingerprints of a checkpoint's weights and tokenizer.

The weights fingerprint must be cheap for a 64 GB checkpoint, so it does not hash every byte. It
covers: ``config.json`` (whole), every weight file's name and size, the safetensors index (whole),
and for each weight file its first and last MiB (for safetensors the first MiB holds the header:
every tensor's name, dtype, shape and byte offsets). A re-saved, re-sharded, retrained or
differently-typed checkpoint changes it; an in-place edit of bytes in the middle of a weight file
does not.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["TOKENIZER_FILES", "tokenizer_fingerprint", "weights_fingerprint"]

_SAMPLE = 1 << 20
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
)


def _hash_file_sample(h: hashlib._Hash, path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as f:
        h.update(f.read(_SAMPLE))
        if size > 2 * _SAMPLE:
            f.seek(size - _SAMPLE)
            h.update(f.read(_SAMPLE))
        elif size > _SAMPLE:
            h.update(f.read())


def weights_fingerprint(path: str | Path) -> str:
    """``sha256:<hex>`` over config.json, weight file names/sizes, index and sampled bytes.

    Reads the first and last MiB of each weight file, not the whole file, so it takes
    milliseconds on a 60 GB checkpoint; two checkpoints that differ only inside their weight
    files, in the same sizes, get the same fingerprint.

    Parameters
    ----------
    path
        The model directory.

    Returns
    -------
    str
        ``"sha256:"`` and 64 hex digits.

    Raises
    ------
    FileNotFoundError
        No ``config.json`` in *path* (checked earlier by :func:`read_model_config`).
    """
    root = Path(path)
    h = hashlib.sha256()
    cfg = json.loads((root / "config.json").read_text())
    h.update(json.dumps(cfg, sort_keys=True).encode())
    for f in sorted(root.iterdir()):
        if f.name.endswith(".index.json"):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        elif f.suffix in _WEIGHT_SUFFIXES and f.is_file():
            h.update(f"{f.name}:{f.stat().st_size}".encode())
            _hash_file_sample(h, f)
    return "sha256:" + h.hexdigest()


def tokenizer_fingerprint(path: str | Path) -> str:
    """``sha256:<hex>`` over the tokenizer files present in the directory (whole files).

    Parameters
    ----------
    path
        The model (or tokenizer) directory.

    Returns
    -------
    str
        ``"sha256:"`` and 64 hex digits (of nothing, when no tokenizer file is present).
    """
    root = Path(path)
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        f = root / name
        if f.is_file():
            h.update(name.encode())
            h.update(f.read_bytes())
    return "sha256:" + h.hexdigest()
