"""Built-in prompt generators; importing this package registers them.

``multiplication``, ``squaring`` and ``arithmetic`` (both, shuffled) rebuild the reference study's
probe training prompts; ``kinetic_energy`` rebuilds its implicit-velocity test problems.
"""

from actstore.prompts.generators._arithmetic import (
    MULTIPLICATION_TEMPLATES,
    SQUARING_TEMPLATES,
)
from actstore.prompts.generators._kinetic import (
    COT_MODES,
    KE_FORMATS,
    V_RANGE,
    kinetic_energy_prompt,
)

__all__ = [
    "COT_MODES",
    "KE_FORMATS",
    "MULTIPLICATION_TEMPLATES",
    "SQUARING_TEMPLATES",
    "V_RANGE",
    "kinetic_energy_prompt",
]
