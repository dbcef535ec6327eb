"""The root of refold's error family and the class of the models' own errors.

They live here so that `models` imports nothing of refold outside it; `refold.core.errors`
re-exports both and maps every class of the family to its exit code.

>>> issubclass(ModelError, ValueError), issubclass(ModelError, RefoldError)
(True, True)
"""

from __future__ import annotations


class RefoldError(Exception):
    """The base of every error refold raises on purpose."""


class ModelError(RefoldError, ValueError):
    """`models`: bad input to the math (unknown event type, shape mismatch, non-finite factors)."""
