"""Carewatch's exceptions: one base class, one subclass per kind of refusal.

Every exception carries the core's message; ``code`` is the stable,
machine-readable kind (the same the gRPC front end sends), and
``retryable`` says whether the same call may succeed later (the storage
being unavailable, locked, full or read-only, or a node shutting down).
"""

from __future__ import annotations

from typing import ClassVar, Dict, Iterator, Type


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


class CannotDecrypt(CarewatchError):
    """A sealed message did not open: wrong or retired key, or altered bytes."""

    code = "cannot_decrypt"


SealError = CannotDecrypt
"""The former name of :class:`CannotDecrypt` (the same class)."""


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


class PermissionDenied(CarewatchError):
    """The caller is known, but its role does not allow the action."""

    code = "permission_denied"


class AlreadyExists(CarewatchError):
    """Creating something that already exists."""

    code = "already_exists"


class StorageUnavailable(CarewatchError):
    """The database cannot take the call now (unreachable); the same call may succeed later.

    Its subclasses say why, each needing a different fix: :class:`StorageLocked`,
    :class:`StorageFull`, :class:`StorageReadOnly`.
    """

    code = "storage_unavailable"
    retryable = True


class StorageLocked(StorageUnavailable):
    """The database is locked by another process or connection."""

    code = "storage_locked"


class StorageFull(StorageUnavailable):
    """The disk (or the database's size limit) is full."""

    code = "storage_full"


class StorageReadOnly(StorageUnavailable):
    """The database or its file system is read-only (e.g. a standby after a failover)."""

    code = "storage_read_only"


class StorageError(CarewatchError):
    """The database failed in a way that retrying will not fix."""

    code = "storage"


class StorageCorrupt(StorageError):
    """The database is damaged or not a database: restore it from a backup."""

    code = "storage_corrupt"


class ResumeTooOld(CarewatchError):
    """``watch(after=…)`` asked to resume after an event the change feed no longer
    keeps: re-read the overview, then watch from now."""

    code = "resume_too_old"


class LimitReached(CarewatchError):
    """The reseller holds as many of something at once as it may (e.g. live
    views on one node, ``watch``): close one first."""

    code = "limit_reached"


class ShuttingDown(CarewatchError):
    """This Carewatch is shutting down; retry on another node or after the restart."""

    code = "shutting_down"
    retryable = True


def _every_subclass(cls: Type[CarewatchError]) -> Iterator[Type[CarewatchError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _every_subclass(sub)


BY_CODE: Dict[str, Type[CarewatchError]] = {
    cls.code: cls for cls in _every_subclass(CarewatchError)
}
"""The exception class of each error code; the compiled module raises through it.
A test checks it against ``carewatch._carewatch.ERROR_CODES``, the core's list."""
