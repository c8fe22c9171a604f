"""``Backend``: what the forward loop asks of a model backend (``hf`` and ``tlens`` both)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    """A loaded model that captures hook points of chosen decoder blocks in one forward pass.

    :class:`~actstore.extractors._hf.HFBackend` (transformers forward hooks) and
    :class:`~actstore.extractors._tlens.TLensBackend` (TransformerLens ``TransformerBridge``)
    implement it; the extraction loop uses nothing else. Another backend (nnsight, a vLLM hook)
    implementing it can be driven by the same loop.

    Attributes
    ----------
    name : str
        The ``--backend`` value (``"hf"``, ``"tlens"``).
    layers : tuple of int
        Block indices captured, sorted.
    hooks : tuple of str
        Store variable names captured, in order.
    widths : dict of str to int
        Width of each hook, measured when the model was loaded.
    input_device : torch.device
        Where input ids and the attention mask must be.
    provenance : dict
        JSON-ready facts recorded with the prompt set (model class, attention implementation,
        hook semantics, ...).
    """

    name: str
    layers: tuple[int, ...]
    hooks: tuple[str, ...]
    widths: dict[str, int]
    input_device: Any

    @property
    def provenance(self) -> dict[str, Any]: ...

    def capture(self, input_ids: Any, attention_mask: Any) -> dict[str, list[Any]]:
        """One forward pass over ``input_ids`` ``(batch, token)`` with its attention mask.

        Returns
        -------
        dict of str to list of torch.Tensor
            ``hook -> [tensor (batch, token, width) per layer of `layers`]``.
        """
        ...

    def close(self) -> None:
        """Remove every hook this backend registered (the model stays usable)."""
        ...
