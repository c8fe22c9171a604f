"""The ``hf`` backend: a transformers model with forward hooks on its decoder blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from actstore.errors import ExtractionError, InvalidArgumentError, ModelLoadError
from actstore.extractors._hookpoints import family_note, hook_sites
from actstore.extractors._hooks import HF_HOOKS

__all__ = ["HFBackend", "find_decoder_layers"]


class _StopForward(Exception):
    """Raised by the deepest hook: later blocks, the final norm and the unembedding never run."""


def _block_lists(model: Any) -> dict[str, torch.nn.ModuleList]:
    """Every ``ModuleList`` of decoder blocks in *model*, by dotted path.

    A list counts when all its items are of one class that the model names among its
    ``_no_split_modules`` (transformers' own list of its block classes), or, when no list holds
    such a class, whose class name ends in ``Layer`` or ``Block``. MoE expert lists and head
    lists are neither.
    """
    declared = set(getattr(model, "_no_split_modules", None) or ())
    uniform: dict[str, tuple[str, torch.nn.ModuleList]] = {}
    for path, m in model.named_modules():
        if not isinstance(m, torch.nn.ModuleList) or len(m) == 0:
            continue
        classes = {type(item).__name__ for item in m}
        if len(classes) == 1:
            uniform[path] = (classes.pop(), m)
    out = {p: m for p, (name, m) in uniform.items() if name in declared}
    if not out:  # none declared (or the declaration names other modules): go by class name
        out = {p: m for p, (name, m) in uniform.items() if name.endswith(("Layer", "Block"))}
    return out


def find_decoder_layers(model: Any, n_layers: int) -> torch.nn.ModuleList:
    """The ``ModuleList`` of decoder blocks (``model.layers``, ``model.decoder.layers``, ...).

    Found by what the list holds (see :func:`_block_lists`), not by attribute name, so every
    layout transformers uses (``model.layers``, ``model.decoder.layers`` (OPT), ``transformer.h``
    (GPT-2, Falcon, BLOOM, GPT-J), ``gpt_neox.layers``, ``model.language_model.layers``, ...)
    is found the same way.

    Parameters
    ----------
    model
        A loaded transformers model.
    n_layers
        The depth config.json declares.

    Returns
    -------
    torch.nn.ModuleList
        The *n_layers* decoder blocks in forward order.

    Raises
    ------
    ModelLoadError
        No list of decoder blocks, none of *n_layers* blocks, or several candidates.
    """
    lists = _block_lists(model)
    fit = {p: m for p, m in lists.items() if len(m) == n_layers}
    kind = type(model).__name__
    if len(fit) == 1:
        return next(iter(fit.values()))
    if len(fit) > 1:
        raise ModelLoadError(
            f"expected one list of {n_layers} decoder blocks in {kind}, got several "
            f"({', '.join(fit)}); this layout is not supported by --backend hf: use --backend tlens"
        )
    if lists:
        found = ", ".join(f"{p} ({len(m)} blocks)" for p, m in lists.items())
        raise ModelLoadError(
            f"expected {n_layers} decoder blocks in {kind} (config.json's depth), got {found}; "
            "check that config.json belongs to these weights"
        )
    raise ModelLoadError(
        f"expected a list of {n_layers} decoder blocks in {kind}, found none; this layout is "
        "not supported by --backend hf: use --backend tlens"
    )


def _first_tensor(output: Any) -> Any:
    """A block's hidden states: transformers 5.x blocks return a tensor or a tuple."""
    if isinstance(output, tuple | list) and output:
        return output[0]
    return output


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
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise ExtractionError(
            f"expected the model to fit in memory, got out of memory loading {path!r}; use a "
            "GPU with more memory, several GPUs (--device cuda), or --dtype bfloat16"
        ) from exc
    except Exception as exc:  # safetensors, json, torch: any failure means an unusable checkpoint
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"expected a loadable transformers checkpoint in {path!r}, got {first}; "
            "check the directory holds a complete save_pretrained checkpoint"
        ) from exc
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

    Attributes
    ----------
    widths : dict of str to int
        Width of each hook, measured by a two-token forward pass at load time.
    vocab_size : int
        Rows of the token embedding.
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
        embed = self.model.get_input_embeddings()
        self.input_device = embed.weight.device
        #: rows of the token embedding: token ids must stay below it
        self.vocab_size = int(embed.weight.shape[0])
        self._captured: dict[tuple[str, int], torch.Tensor] = {}
        self._needed = len(self.layers) * len(self.hooks)
        self._handles: list[Any] = []
        self._shape: tuple[int, int] = (0, 0)
        try:
            for layer in self.layers:
                self._register(layer)
        except BaseException:
            self.close()
            raise
        #: width of each hook, measured on what the blocks output (never the embedding width,
        #: which differs from the residual width in e.g. OPT-350m)
        try:
            self.widths = self._measure_widths()
        except BaseException:
            self.close()  # a passed-in model keeps no hooks of a backend that failed
            raise
        self.d_model = max(self.widths.values())

    def _register(self, layer: int) -> None:
        """Forward (pre-)hooks for every requested hook point of block *layer*."""
        block = self.blocks[layer]
        if "resid_pre" in self.hooks:
            self._handles.append(
                block.register_forward_pre_hook(self._in_hook("resid_pre", layer), with_kwargs=True)
            )
        for hook, module, kind in hook_sites(self.model, block, self.hooks):
            if kind == "in":
                fn = self._in_hook(hook, layer, copy=True)
                self._handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            else:
                self._handles.append(module.register_forward_hook(self._out_hook(hook, layer)))
        if "resid_post" in self.hooks:
            self._handles.append(block.register_forward_hook(self._out_hook("resid_post", layer)))

    def _measure_widths(self) -> dict[str, int]:
        """One forward pass over two tokens: the width every captured block gives."""
        from actstore.extractors._torchutil import is_oom

        ids = torch.zeros((1, 2), dtype=torch.long, device=self.input_device)
        try:
            got = self.capture(ids, torch.ones_like(ids))
        except Exception as exc:
            if not is_oom(exc):
                raise
            raise ExtractionError(
                "expected the model to run in memory, got out of memory on a two-token forward "
                "pass; use a GPU with more memory, several GPUs (--device cuda), or "
                "--dtype bfloat16"
            ) from exc
        widths: dict[str, int] = {}
        for h, ts in got.items():
            for layer, t in zip(self.layers, ts):
                if not isinstance(t, torch.Tensor) or t.ndim != 3 or tuple(t.shape[:2]) != (1, 2):
                    shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                    raise ModelLoadError(
                        f"expected decoder block {layer} of {type(self.model).__name__} to give "
                        f"hidden states (batch, token, width) for {h}, got {shape}; this layout "
                        "is not supported by --backend hf: use --backend tlens"
                    )
                w = int(t.shape[-1])
                if widths.setdefault(h, w) != w:
                    raise ModelLoadError(
                        f"expected every decoder block to give one width for {h}, got "
                        f"{widths[h]} and {w} (block {layer}); extract these layers in separate "
                        "runs with different --set-name"
                    )
        return widths

    @property
    def provenance(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "backend": "hf",
            "model_class": type(self.model).__name__,
            "attn_implementation": getattr(cfg, "_attn_implementation", None),
            "hook_semantics": {h: HF_HOOKS[h] for h in self.hooks},
            "hook_family_note": family_note(cfg),
            "device_map": getattr(self.model, "hf_device_map", None),
            "stops_after_layer": max(self.layers),
        }

    def _record(self, key: tuple[str, int], t: Any, *, copy: bool = False) -> None:
        if isinstance(t, torch.Tensor):
            t = t.detach()
            if t.ndim == 2 and t.shape[0] == self._shape[0] * self._shape[1]:
                t = t.reshape(*self._shape, -1)  # OPT's fc1/fc2 see (batch * token, width)
            if copy:  # a sub-layer's tensor may be changed in place later (Falcon's MLP output)
                t = t.clone()
        self._captured[key] = t
        if len(self._captured) == self._needed:
            raise _StopForward

    def _out_hook(self, hook: str, layer: int) -> Any:
        copy = hook != "resid_post"

        def fn(module: Any, args: Any, output: Any) -> None:
            self._record((hook, layer), _first_tensor(output), copy=copy)

        return fn

    def _in_hook(self, hook: str, layer: int, *, copy: bool = False) -> Any:
        def fn(module: Any, args: Any, kwargs: Any) -> None:
            t = args[0] if args else kwargs.get("hidden_states", kwargs.get("input"))
            self._record((hook, layer), t, copy=copy)

        return fn

    def capture(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, list[torch.Tensor]]:
        """One forward pass; returns ``hook -> [tensor (batch, token, d_model) per layer]``."""
        self._captured = {}
        self._shape = (int(input_ids.shape[0]), int(input_ids.shape[1]))
        base = getattr(self.model, "base_model", self.model)
        try:
            with torch.inference_mode():
                # the base model: no unembedding even if no hook stops the pass
                base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except _StopForward:
            pass
        got, self._captured = self._captured, {}
        missing = [f"{h} of block {layer}" for h in self.hooks for layer in self.layers
                   if (h, layer) not in got]  # fmt: skip
        if missing:
            raise ExtractionError(
                f"expected the forward pass of {type(self.model).__name__} to run every chosen "
                f"decoder block, got no {', '.join(missing)}; this layout is not supported by "
                "--backend hf: use --backend tlens"
            )
        return {h: [got[(h, layer)] for layer in self.layers] for h in self.hooks}

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
