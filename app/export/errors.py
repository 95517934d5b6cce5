"""The export error type (its own module so every export module can import it)."""


class ExportError(ValueError):
    """An export request cannot be met. The message says what is wrong and how to fix it."""
