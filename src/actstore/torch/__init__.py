"""actstore.torch: activations from a cache as torch tensors, for training SAEs and the like.

This is the only place outside extraction that imports torch (install the ``torch`` extra).
:class:`ActivationLoader` streams shuffled real-token activation rows; see docs/sae-training.md.
"""

from actstore.torch._loader import ActivationLoader, TrackedDataLoader

__all__ = ["ActivationLoader", "TrackedDataLoader"]
