"""Carewatch for Python: which customer video-surveillance installations need attention.

Embeds Carewatch without a server: the availability rule
(:func:`evaluate`), sealing as a recording server does it
(:func:`seal_heartbeat`, :func:`seal_status`), and the whole service over
SQLite or PostgreSQL (:class:`Carewatch`)::

    import carewatch

    cw = carewatch.Carewatch.open("carewatch-data/carewatch.db")
    for row in cw.overview("acme-security").rows:
        print(row.slc, row.health.name, row.summary.worst)

Every refusal raises a subclass of :class:`CarewatchError`.
"""

from carewatch._carewatch import (
    Carewatch,
    Watch,
    __version__,
    condition_catalogue,
    evaluate,
    generate_installation_key,
    generate_master_key,
    open_message,
    seal_heartbeat,
    seal_message,
    seal_status,
)
from carewatch._errors import (
    AlreadyExists,
    CarewatchError,
    ConsentMissing,
    InvalidInput,
    Malformed,
    NotFound,
    Replayed,
    SealError,
    StorageError,
    StorageUnavailable,
    SubscriptionExpired,
    TooLarge,
    Unauthenticated,
    UnknownInstallation,
)
from carewatch._types import (
    Availability,
    AvailabilityState,
    Code,
    Condition,
    ConditionCode,
    ConditionRecord,
    Evaluation,
    Health,
    HealthSummary,
    HistoryEvent,
    HistoryKind,
    IngestAck,
    Installation,
    InstallationChange,
    InstallationUpdate,
    InstallationDetail,
    MessageKind,
    OverviewPage,
    OverviewRow,
    Product,
    RecordingServer,
    Reseller,
    SealedMessage,
    SweepReport,
    WatchEvent,
    ServerChange,
    WatchLagged,
)

__all__ = [
    "AlreadyExists",
    "Availability",
    "AvailabilityState",
    "Carewatch",
    "CarewatchError",
    "Code",
    "Condition",
    "ConditionCode",
    "ConditionRecord",
    "ConsentMissing",
    "Evaluation",
    "Health",
    "HealthSummary",
    "HistoryEvent",
    "HistoryKind",
    "IngestAck",
    "Installation",
    "InstallationChange",
    "InstallationUpdate",
    "InstallationDetail",
    "InvalidInput",
    "Malformed",
    "MessageKind",
    "NotFound",
    "OverviewPage",
    "OverviewRow",
    "Product",
    "RecordingServer",
    "Replayed",
    "Reseller",
    "SealError",
    "SealedMessage",
    "StorageError",
    "StorageUnavailable",
    "SubscriptionExpired",
    "SweepReport",
    "TooLarge",
    "Unauthenticated",
    "UnknownInstallation",
    "Watch",
    "WatchEvent",
    "ServerChange",
    "WatchLagged",
    "__version__",
    "condition_catalogue",
    "evaluate",
    "generate_installation_key",
    "generate_master_key",
    "open_message",
    "seal_heartbeat",
    "seal_message",
    "seal_status",
]
