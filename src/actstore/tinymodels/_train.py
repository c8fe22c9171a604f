"""The demo's tiny Qwen2, trained here on CPU on text from the prompt generators, and its twin.

The trained model learns the arithmetic of the prompt sets (the answer after "equals" becomes
predictable), so probes on its residual stream find real structure; its random-initialised twin
(same config, same init seed, no training) is the control.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from actstore.errors import InvalidArgumentError, ModelLoadError
from actstore.tinymodels._loop import answer_eval_set, train_loop
from actstore.tinymodels._random import MARKER, init_weights, make_config, save_model
from actstore.tinymodels._tokenizer import EOS_TOKEN, build_tokenizer

__all__ = [
    "DEFAULT_DATA",
    "RECIPE_VERSION",
    "TRAINING_LOG",
    "build_random_twin",
    "train_tiny_model",
    "training_texts",
]

#: Bumped whenever the training code changes what a given set of arguments produces.
RECIPE_VERSION = 1
#: Loss curve and evaluation numbers, written into the model directory.
TRAINING_LOG = "training_log.json"
#: (generator, number of prompts, options) of the default training text (``actstore.prompts``).
DEFAULT_DATA: tuple[tuple[str, int, Mapping[str, Any]], ...] = (
    ("multiplication", 6000, {}),
    ("squaring", 3000, {}),
    ("kinetic_energy", 300, {"cot": "worked"}),
)


def training_texts(
    data: Sequence[tuple[str, int, Mapping[str, Any]]] = DEFAULT_DATA, *, seed: int = 0
) -> list[str]:
    """Generate the training text with :func:`actstore.prompts.generate`, one set per entry.

    Each entry ``(generator, n, options)`` is generated with its own seed (``seed + 1000 * i``),
    so the sets do not share their random draws.
    """
    from actstore.prompts import generate

    texts: list[str] = []
    for i, (name, n, options) in enumerate(data):
        texts.extend(
            p.text for p in generate(name, n, seed=seed + 1000 * i, **dict(options)).prompts
        )
    return texts


def train_tiny_model(
    out_dir: str | Path,
    *,
    texts: Iterable[str] | None = None,
    data: Sequence[tuple[str, int, Mapping[str, Any]]] = DEFAULT_DATA,
    data_seed: int = 0,
    seed: int = 0,
    steps: int = 1600,
    batch_size: int = 32,
    lr: float = 5e-3,
    warmup: int = 30,
    weight_decay: float = 0.01,
    n_layers: int = 4,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int | None = 2,
    d_mlp: int | None = None,
    vocab_size: int = 512,
    max_position: int = 512,
    init_std: float = 0.02,
    eval_fraction: float = 0.05,
    eval_every: int = 100,
    threads: int = 1,
) -> Path:
    """Train a tiny Qwen2 causal LM with plain torch on CPU and save it as a checkpoint directory.

    The tokenizer is trained on the same text first (:func:`build_tokenizer`, Qwen2 pipeline).
    Weights start from :func:`init_weights` with ``seed`` (so :func:`build_random_twin` rebuilds
    the untrained start exactly); batches are drawn with ``seed`` too, from length-sorted buckets
    so that the long kinetic-energy texts do not pad every batch. AdamW, linear warm-up, cosine
    decay, gradient clipping at 1. The same arguments and thread count give identical weights.

    Writes ``config.json``, ``model.safetensors``, tokenizer files, ``training_log.json`` (loss
    every 10 steps, held-out loss / answer-token loss / answer exact-match accuracy every
    ``eval_every`` steps, seconds) and ``tinymodel.json`` (all arguments; written last).

    Parameters
    ----------
    out_dir : str or Path
        Destination directory.
    texts : iterable of str, optional
        Training text; default: :func:`training_texts` of ``data`` with ``data_seed``.
    data, data_seed
        Prompt generators used when ``texts`` is None.
    seed : int
        Seed of the weight init and of the batch order.
    steps, batch_size, lr, warmup, weight_decay
        Optimisation: number of updates, prompts per batch, peak learning rate, warm-up steps.
    n_layers, d_model, n_heads, n_kv_heads, d_mlp, vocab_size, max_position, init_std
        Model shape (see :func:`build_random_model`); ``init_std`` 0.02 as Qwen2's own init.
    eval_fraction : float
        Share of the texts held out for evaluation (never trained on).
    eval_every : int
        Evaluate every this many steps (and at the start and the end).
    threads : int
        ``torch.set_num_threads`` during training (restored afterwards). One thread by default:
        on a shared 2-core machine two threads ran up to 10x slower (OpenMP threads waiting for
        a busy core), and a fixed thread count keeps the float sums, hence the weights, the same
        on every machine.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InvalidArgumentError
        If fewer than 20 non-empty texts are given, ``eval_fraction`` is not in (0, 1), a text is
        longer than ``max_position`` tokens, or the model sizes are refused
        (see :func:`build_random_model`).
    """
    params = _train_params(locals())  # first statement: the arguments only

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    text_list = list(training_texts(data, seed=data_seed) if texts is None else texts)
    if len(text_list) < 20 or not all(isinstance(t, str) and t for t in text_list):
        raise InvalidArgumentError(
            f"expected at least 20 non-empty training texts, got {len(text_list)}; pass more text"
        )
    if not 0 < eval_fraction < 1:
        raise InvalidArgumentError(f"expected 0 < eval_fraction < 1, got {eval_fraction!r}")
    out = Path(out_dir)
    build_tokenizer(
        out, corpus=text_list, vocab_size=vocab_size, arch="qwen2", model_max_length=max_position
    )
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    eos = tok.token_to_id(EOS_TOKEN)
    encoded = [[*e.ids, eos] for e in tok.encode_batch(text_list)]
    too_long = max(len(e) for e in encoded)
    if too_long > max_position:
        raise InvalidArgumentError(
            f"expected texts of at most max_position={max_position} tokens, got {too_long}; "
            "raise max_position"
        )

    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(text_list), generator=gen).tolist()
    n_eval = max(1, round(eval_fraction * len(text_list)))
    eval_idx, train_idx = order[:n_eval], order[n_eval:]
    eval_set = answer_eval_set([text_list[i] for i in eval_idx], tok, eos)

    cfg = make_config(
        arch="qwen2",
        vocab_size=tok.get_vocab_size(),
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_mlp=d_mlp,
        max_position=max_position,
        bos_token_id=None,
        eos_token_id=eos,
    )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        init_weights(model, seed=seed, std=init_std)
        log = train_loop(
            model,
            [encoded[i] for i in train_idx],
            eval_set,
            gen=gen,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            warmup=warmup,
            weight_decay=weight_decay,
            eval_every=eval_every,
            pad_id=eos,
        )
    finally:
        torch.set_num_threads(previous_threads)
    model.eval()
    save_model(model, out)
    log.update(
        n_train_texts=len(train_idx),
        n_eval_texts=n_eval,
        threads=threads,
        torch_version=torch.__version__,
        texts_sha256=_texts_hash(text_list),
    )
    (out / TRAINING_LOG).write_text(json.dumps(log, indent=1) + "\n")
    record = {"kind": "trained", "arch": "qwen2", **params, "recipe_version": RECIPE_VERSION}
    record["vocab_size"] = tok.get_vocab_size()
    record["texts_sha256"] = log["texts_sha256"]
    (out / MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out


def build_random_twin(out_dir: str | Path, *, like: str | Path) -> Path:
    """Write the untrained twin of a :func:`train_tiny_model` checkpoint.

    Same config, same tokenizer, same init seed: exactly the weights training started from.
    The twin's ``tinymodel.json`` has ``kind="random_twin"`` and the trained model's path.

    Parameters
    ----------
    out_dir : str or Path
        Destination directory (created if needed).
    like : str or Path
        The trained model's directory, as written by :func:`train_tiny_model`.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ModelLoadError
        If ``like`` holds no ``tinymodel.json``.
    InvalidArgumentError
        If ``like`` was not written by :func:`train_tiny_model` (e.g. it is a random model).
    """
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    src = Path(like)
    record = _read_marker(src)
    if record.get("kind") != "trained":
        raise InvalidArgumentError(
            f"expected a directory written by train_tiny_model, got kind={record.get('kind')!r} "
            f"in {src}; pass the trained model's directory"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(src / name, out / name)
    cfg = AutoConfig.from_pretrained(src)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    init_weights(model, seed=record["seed"], std=record["init_std"])
    save_model(model.eval(), out)
    twin = {**record, "kind": "random_twin", "twin_of": str(src.resolve())}
    (out / MARKER).write_text(json.dumps(twin, indent=2, sort_keys=True) + "\n")
    return out


# --------------------------------------------------------------------------------------------


def _train_params(args: Mapping[str, Any]) -> dict[str, Any]:
    skip = {"out_dir", "texts"}
    params = {k: v for k, v in args.items() if k not in skip}
    # Given texts replace the generators: record None rather than unused generator settings.
    given = args["texts"] is not None
    params["data"] = None if given else [[name, n, dict(opts)] for name, n, opts in args["data"]]
    if given:
        params["data_seed"] = None
    return params


def _texts_hash(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


def _read_marker(path: Path) -> dict[str, Any]:
    marker = path / MARKER
    if not marker.is_file():
        raise ModelLoadError(
            f"expected a tiny model directory with {MARKER}, got {path}; build it with "
            "actstore.tinymodels first"
        )
    return json.loads(marker.read_text())
