"""actstore.extractors."""

__all__: list[str] = []
