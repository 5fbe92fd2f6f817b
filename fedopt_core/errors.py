"""The exceptions fedopt raises for input it refuses, in one place.

Every refusal of a value a person or a file gave is a :class:`FedoptInputError`: it names the
``field`` at fault and carries a one-line ``message`` fit for a page, the CLI or a log.  Pages and
the CLI catch this one class; the subclasses say which part of fedopt refused the value.
"""

from __future__ import annotations

__all__ = [
    "AccountInputError",
    "CatalogueInputError",
    "FedoptInputError",
    "ModelFormatError",
    "PlanningError",
    "UnknownAccountError",
    "ValidationError",
]


class FedoptInputError(ValueError):
    """A value fedopt refuses; ``field`` names it and ``message`` says why (``str()`` is both)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ValidationError(FedoptInputError):
    """A run field (from the form, a CSV row, the CLI, ``track()``) has a value fedopt refuses."""


class PlanningError(FedoptInputError):
    """Bad input to the planners (ranking limits, shard plans, spot advice); ``field`` names the input or column."""


class AccountInputError(FedoptInputError):
    """Input for an account or a usage session is not acceptable; nothing is written then."""


class UnknownAccountError(AccountInputError):
    """No account has this username."""

    def __init__(self, username: str) -> None:
        super().__init__("username", f"no account named {username!r}")


class CatalogueInputError(FedoptInputError):
    """A platform or technique given by a user is not acceptable."""


class ModelFormatError(ValueError):
    """The bytes are not a fedopt predictor file (or were altered): refused, nothing executed."""
