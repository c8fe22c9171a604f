"""``ExtractConfig``: every extraction parameter, its choices and its default, declared once.

The command line (``actstore extract``: choices and defaults read from here), an experiment's
``[extract]`` table, ``actstore repair --from-extraction`` and Python callers of
:func:`~actstore.extractors.extract` all build this one frozen dataclass. Each field carries its
constraint (:class:`Param`, in the field's metadata), and :meth:`ExtractConfig.__post_init__`
checks and normalises every value, so a bad one is refused with one line naming the flag before
anything is loaded. Light: imports neither torch nor the store.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actstore._validate import split_items
from actstore.errors import InvalidArgumentError
from actstore.extractors._hooks import BACKENDS
from actstore.extractors._layers import parse_layer_rule, parse_layers

__all__ = [
    "DEFAULT_MAX_BATCH_TOKENS",
    "TOML_KEYS",
    "ExtractConfig",
    "Param",
    "parse_shard",
]

DEFAULT_MAX_BATCH_TOKENS = 8192
DTYPES = ("auto", "bfloat16", "float16", "float32")
BOS_MODES = ("auto", "prepend", "none")
PROGRESS = ("auto", "bar", "log", "none")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class Param:
    """The constraint of one :class:`ExtractConfig` field (scikit-learn's parameter constraints).

    Attributes
    ----------
    flag : str
        The command-line option, named in messages (``--max-batch-tokens``).
    choices : tuple or None
        The allowed values (argparse ``choices=`` is read from here).
    expected, fix : str
        A refusal reads ``expected FLAG EXPECTED, got VALUE; FIX``.
    check : callable or None
        ``value -> bool`` for constraints other than ``choices``.
    parse : callable or None
        ``value -> normalised value``; raises :class:`InvalidArgumentError` with its own message.
    toml : bool
        Whether an experiment's ``[extract]`` table may set it.
    """

    flag: str
    choices: tuple[Any, ...] | None = None
    expected: str = ""
    fix: str = ""
    check: Callable[[Any], bool] | None = None
    parse: Callable[[Any], Any] | None = None
    toml: bool = True


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"I/N"`` or ``(I, N)`` -> ``(I, N)`` with ``0 <= I < N``; ``None`` stays ``None``.

    Raises
    ------
    InvalidArgumentError
        Not two integers, or ``I`` outside ``[0, N)``.
    """
    if shard is None:
        return None
    try:
        if isinstance(shard, str):
            i_text, n_text = shard.split("/")
            i, n = int(i_text), int(n_text)
        else:
            i, n = (int(x) for x in shard)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(
            f"expected --shard I/N with integers (e.g. 0/4), got {shard!r}; use e.g. "
            "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
        ) from exc
    if n < 1 or not 0 <= i < n:
        raise InvalidArgumentError(
            f"expected --shard I/N with 0 <= I < N, got {i}/{n}; workers are numbered from 0"
        )
    return (i, n)


def _parse_hooks(hooks: Any) -> tuple[str, ...]:
    names = split_items(hooks, "hooks", "resid_post,resid_pre") if isinstance(hooks, str) else hooks
    if not isinstance(names, Sequence) or not all(isinstance(h, str) for h in names):
        raise InvalidArgumentError(
            f"expected hooks as 'resid_post,resid_pre' or a list of names, got {hooks!r}; "
            "e.g. --hook resid_post"
        )
    if any(not h.strip() for h in names):
        raise InvalidArgumentError(
            f"expected hook names, got an empty one in {hooks!r}; remove it (e.g. "
            "['resid_post', 'resid_pre'])"
        )
    # a hook named twice is captured once (as a repeated layer is): the plan counts it once
    out = tuple(dict.fromkeys(h.strip() for h in names))
    if not out:
        raise InvalidArgumentError("expected at least one hook, got none; e.g. --hook resid_post")
    return out


def _parse_positions(positions: Any) -> tuple[str, ...] | None:
    if positions is None:
        return None
    from actstore.store.core import parse_position_list

    return tuple(parse_position_list(positions))


def _parse_codec(codec: Any) -> str | None:
    if codec is None:
        return None
    from actstore.store.format import parse_codec

    return parse_codec(codec)


def _parse_progress(progress: Any) -> Any:
    if progress is None:
        return "auto"
    return "none" if progress is False else progress


def _parse_generate(generate: Any) -> Any:
    if generate is None:
        return None
    from actstore.extractors._genconfig import parse_generate

    return parse_generate(generate)


def _p(default: Any, param: Param, *, omit: bool = True) -> Any:
    """A field whose constraint is ``param``; ``omit``: left out of hashes while at its default
    (fields added after the experiment configs existed keep those configs' hashes)."""
    return field(default=default, metadata={"param": param, "omit_default": omit})


@dataclass(frozen=True, kw_only=True)
class ExtractConfig:
    """Every parameter of one extraction, checked and normalised when it is built.

    Build it with keywords (``ExtractConfig(model=..., prompts=..., out=..., layers="0,-1")``);
    :func:`~actstore.extractors.extract` takes one (``extract(config)``) or the same keywords.
    Each field's choices and default are declared here once and read by the command line.

    Attributes
    ----------
    model : str
        Local checkpoint directory (config.json, weights, tokenizer files).
    prompts : PromptSet, str or path
        A :class:`~actstore.prompts.PromptSet`, a generator name or a .jsonl/.csv file.
    out : str
        Cache path or fsspec URL.
    set_name : str or None
        Prompt-set group name (default: the prompt set's name).
    layers : str or tuple of int
        The layer grammar (docs/reference/extract.md): ``"all"``, ``"spaced:K"``, ``"7,15,-1"``
        or indices; stored as ``"all"``, ``"spaced:K"`` or the tuple of indices as given.
    other_depths : str or None
        ``"all"`` or ``"spaced:K"``, used when an explicit ``layers`` list does not fit the depth.
    hooks : tuple of str
        ``hf``: ``resid_pre``, ``attn_out``, ``resid_mid``, ``mlp_in``, ``mlp_out``,
        ``resid_post``; ``tlens``: any per-block TransformerLens hook. ``"a,b"`` is split; a
        name given twice is captured once.
    backend : {"hf", "tlens"}
    dtype : {"auto", "bfloat16", "float16", "float32"}
        ``auto``: bfloat16 on GPU, float32 on CPU.
    device : str
        ``auto``, ``cpu``, ``cuda`` (all GPUs) or ``cuda:N``.
    max_batch_tokens : int
        Bound on padded tokens (batch size x longest prompt) per forward pass, >= 1.
    batch_window : int or None
        Blocks per batching window: the prompts of a window's blocks are length-sorted and
        batched together (None: chosen from the lengths, the batch budget and a 1 GiB host
        memory budget). Recorded when the set is created; a resume uses the recorded one.
    bos : {"auto", "prepend", "none"}
    block_size : int or None
        Prompts per store shard (None: the store's choice, ~128 MiB shards).
    codec : str or None
        ``"zstd:LEVEL"`` or ``"none"`` (None: ``zstd:1`` for a new set, the stored one on resume).
    positions : tuple of str or None
        ``last`` / ``before:SPAN`` positions also stored small for probe fitting.
    generate : GenerateConfig or None
        The model continues each prompt first (an int N or a mapping is converted).
    shard : (int, int) or None
        ``(I, N)`` (``"I/N"`` is converted): this worker writes the blocks of the batching
        windows ``w % N == I`` (window ``w``: blocks ``[w * W, (w + 1) * W)``).
    n_prompts, seed : int or None, int
        Passed to the prompt generator when ``prompts`` is a generator name.
    dry_run : bool
        Plan only: reads config.json and the tokenizer, loads no weights, writes nothing.
    progress : {"auto", "bar", "log", "none"}
        ``None`` and ``False`` are accepted for ``"auto"`` and ``"none"``.
    command : str or None
        The command line recorded in the provenance (default: ``sys.argv``).
    storage_options : mapping or None
        fsspec options for a URL ``out`` (never stored).

    Raises
    ------
    InvalidArgumentError
        On building, for any value outside its field's constraint (one line naming the flag).
    """

    model: str | None = _p(None, Param("--model", toml=False))
    prompts: Any = _p(None, Param("--prompts", toml=False))  # noqa: RUF009
    out: str | None = _p(None, Param("--out", toml=False))
    set_name: str | None = _p(None, Param("--set-name", toml=False))
    layers: tuple[int, ...] | str = _p("all", Param("--layers", parse=parse_layers), omit=False)
    other_depths: str | None = _p(
        None, Param("--other-depths", parse=lambda v: None if v is None else parse_layer_rule(v)),
        omit=False,
    )  # fmt: skip
    hooks: tuple[str, ...] = _p(("resid_post",), Param("--hook", parse=_parse_hooks), omit=False)
    backend: str = _p("hf", Param("--backend", BACKENDS, fix="pick one of these"), omit=False)
    dtype: str = _p(
        "auto",
        Param("--dtype", DTYPES, expected="auto, bfloat16, float16 or float32", fix="pick one"),
        omit=False,
    )
    device: str = _p(
        "auto",
        Param(
            "--device",
            expected="auto, cpu, cuda or cuda:N",
            check=lambda v: isinstance(v, str) and _DEVICE.fullmatch(v) is not None,
            fix="pick one of these",
        ),
        omit=False,
    )
    max_batch_tokens: int = _p(
        DEFAULT_MAX_BATCH_TOKENS,
        Param("--max-batch-tokens", expected=">= 1", check=_int_at_least(1), fix="e.g. 8192"),
        omit=False,
    )
    batch_window: int | None = _p(
        None,
        Param(
            "--batch-window",
            expected=">= 1 (blocks per batching window)",
            check=lambda v: v is None or _int_at_least(1)(v),
            fix="leave it out for the automatic choice",
        ),
    )
    bos: str = _p("auto", Param("--bos", BOS_MODES, fix="pick one of these"))
    block_size: int | None = _p(
        None,
        Param(
            "--block-size",
            expected=">= 1 (prompts per shard)",
            check=lambda v: v is None or _int_at_least(1)(v),
            fix="leave it out for the store's choice",
        ),
    )
    codec: str | None = _p(None, Param("--codec", parse=_parse_codec))
    positions: tuple[str, ...] | str | None = _p(None, Param("--positions", parse=_parse_positions))
    generate: Any = _p(None, Param("--generate", parse=_parse_generate, toml=False))  # noqa: RUF009
    shard: tuple[int, int] | None = _p(None, Param("--shard", parse=parse_shard, toml=False))
    n_prompts: int | None = _p(
        None,
        Param(
            "--n",
            expected=">= 1 (prompts)",
            check=lambda v: v is None or _int_at_least(1)(v),
            fix="leave it out for the generator's default",
            toml=False,
        ),
    )
    seed: int = _p(
        0,
        Param(
            "--seed", expected="an integer >= 0", check=_int_at_least(0), fix="e.g. 0", toml=False
        ),
    )
    dry_run: bool = _p(False, Param("--dry-run", (False, True), toml=False))
    progress: str = _p(
        "auto", Param("--progress", PROGRESS, parse=_parse_progress, fix="pick one", toml=False)
    )
    command: str | None = _p(None, Param("command", toml=False))
    storage_options: Mapping[str, Any] | None = _p(None, Param("--storage-options", toml=False))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            param: Param = f.metadata["param"]
            value = getattr(self, f.name)
            if param.parse is not None:
                value = param.parse(value)
                object.__setattr__(self, f.name, value)
            ok = (param.choices is None or value in param.choices) and (
                param.check is None or param.check(value)
            )
            if not ok:
                expected = param.expected or "one of " + ", ".join(map(str, param.choices or ()))
                raise InvalidArgumentError(
                    f"expected {param.flag} {expected}, got {value!r}; {param.fix}".rstrip("; ")
                )
        for name in ("model", "out"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, str(value))  # a PathLike

    # -- the table, read by the command line and the experiment config --------------------------
    @classmethod
    def param(cls, name: str) -> Param:
        """The constraint of field *name*."""
        return {f.name: f for f in dataclasses.fields(cls)}[name].metadata["param"]

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field *name*."""
        return {f.name: f for f in dataclasses.fields(cls)}[name].default

    @classmethod
    def build(cls, config: ExtractConfig | None = None, /, **changes: Any) -> ExtractConfig:
        """``config`` (or the defaults) with *changes*: the one way keywords become a config.

        Raises
        ------
        InvalidArgumentError
            An unknown keyword (naming the known ones), or a value outside its constraint.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidArgumentError(
                f"expected extraction settings among {', '.join(sorted(known))}, got "
                f"{unknown[0]!r}; see ExtractConfig"
            )
        if config is None:
            return cls(**changes)
        if not isinstance(config, cls):
            raise InvalidArgumentError(
                f"expected an ExtractConfig, got {type(config).__name__}; build one with "
                "ExtractConfig(model=..., prompts=..., out=...) or pass keywords"
            )
        return dataclasses.replace(config, **changes) if changes else config

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored in a cache's provenance (``extract_config``): JSON values only.

        ``prompts`` is kept when it is a name or path (a PromptSet is recorded by its name). What
        only concerns one run is left out, so every ``--shard`` worker, a resumed run and a copied
        cache record the same settings: ``out``, ``shard``, ``dry_run``, ``progress``,
        ``command`` (recorded whole beside it) and ``storage_options`` (credentials).
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _RUN_ONLY:
                continue
            if f.name == "prompts" and isinstance(value, os.PathLike):
                value = os.fspath(value)
            elif f.name == "prompts" and value is not None and not isinstance(value, str):
                value = getattr(value, "name", str(value))  # a PromptSet: its name
            elif f.name == "generate" and value is not None:
                value = dataclasses.asdict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_stored(cls, spec: Any, **changes: Any) -> ExtractConfig:
        """The settings a stored prompt set was extracted with (for ``repair --from-extraction``).

        Parameters
        ----------
        spec
            A :class:`~actstore.store.PromptSetSpec` (``cache.spec(name)``): its layers, hooks,
            dtype, block size, fingerprint (backend, bos) and provenance (batch size).
        **changes
            Settings to set on top (``model``, ``prompts``, ``out``, ``device``, ...).
        """
        fp, prov = dict(spec.fingerprint), dict(spec.provenance)
        bos = fp.get("bos", {})
        stored = {
            "layers": tuple(spec.layers),
            "hooks": tuple(spec.hooks),
            "backend": str(fp.get("backend", "hf")),
            "dtype": spec.dtype,
            "bos": str(bos.get("mode", "auto")) if isinstance(bos, dict) else "auto",
            "block_size": spec.block_size,
            "max_batch_tokens": int(prov.get("max_batch_tokens", DEFAULT_MAX_BATCH_TOKENS)),
        }
        return cls.build(**{**stored, **{k: v for k, v in changes.items() if v is not None}})


#: settings of one run, not of the stored content (left out of :meth:`ExtractConfig.to_dict`)
_RUN_ONLY = frozenset({"out", "shard", "dry_run", "progress", "command", "storage_options"})

#: the keys an experiment config's ``[extract]`` table may set
TOML_KEYS = tuple(f.name for f in dataclasses.fields(ExtractConfig) if f.metadata["param"].toml)
