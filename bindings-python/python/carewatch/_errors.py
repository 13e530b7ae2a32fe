"""Carewatch's exceptions: one base class, one subclass per kind of refusal.

Every exception carries the core's message; ``code`` is the stable,
machine-readable kind (the same the gRPC front end sends), and
``retryable`` says whether the same call may succeed later.
"""

from __future__ import annotations

from typing import ClassVar, Dict, Type


class CarewatchError(Exception):
    """Base class of every Carewatch error."""

    code: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False


class InvalidInput(CarewatchError, ValueError):
    """A value failed validation (an SLC, an id, a page size …)."""

    code = "invalid_input"


class UnknownInstallation(CarewatchError):
    """A message named an SLC that no reseller has registered."""

    code = "unknown_installation"


class ConsentMissing(CarewatchError):
    """The installation's owner has not accepted the Carewatch service."""

    code = "consent_missing"


class SubscriptionExpired(CarewatchError):
    """The installation has no active Care Plus subscription."""

    code = "subscription_expired"


class SealError(CarewatchError):
    """A sealed message did not open: wrong or retired key, or altered bytes."""

    code = "cannot_decrypt"


class Replayed(CarewatchError):
    """The sequence number was already used for another message, or is older."""

    code = "replayed"


class Malformed(CarewatchError):
    """The message opened but does not follow the format."""

    code = "malformed"


class TooLarge(CarewatchError):
    """The message is larger than Carewatch accepts."""

    code = "too_large"


class NotFound(CarewatchError, LookupError):
    """The thing asked for does not exist, or belongs to another reseller."""

    code = "not_found"


class Unauthenticated(CarewatchError):
    """The token is missing, malformed or not valid."""

    code = "unauthenticated"


class AlreadyExists(CarewatchError):
    """Creating something that already exists."""

    code = "already_exists"


class StorageUnavailable(CarewatchError):
    """The database cannot be reached now; the same call may succeed later."""

    code = "storage_unavailable"
    retryable = True


class StorageError(CarewatchError):
    """The database failed in a way that retrying will not fix."""

    code = "storage"


BY_CODE: Dict[str, Type[CarewatchError]] = {
    cls.code: cls for cls in CarewatchError.__subclasses__()
}
"""The exception class of each error code; the compiled module raises through it."""
