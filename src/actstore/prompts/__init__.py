"""actstore.prompts."""

__all__: list[str] = []
