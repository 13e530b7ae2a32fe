"""The values Carewatch returns: enums and frozen dataclasses.

They are plain Python objects (readable ``repr``, equality, ``dataclasses``
helpers); the compiled ``_carewatch`` module builds them. Times are
timezone-aware ``datetime`` objects in UTC, durations ``timedelta``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union


class Health(enum.IntEnum):
    """How an installation is doing, best to worst: ``Health.CRITICAL > Health.ATTENTION``."""

    HEALTHY = 0
    """Every recording server available, nothing wrong."""
    PENDING = 1
    """Registered, but no recording server has reported yet."""
    ATTENTION = 2
    """Something needs looking at: a late server or a warning."""
    CRITICAL = 3
    """Recording is at risk: a critical condition or an unavailable server."""
    OFFLINE = 4
    """Every recording server is unavailable at once: the site is unreachable."""


class AvailabilityState(str, enum.Enum):
    """A recording server's availability, from its heartbeats."""

    PENDING = "pending"
    AVAILABLE = "available"
    LATE = "late"
    UNAVAILABLE = "unavailable"
    DECOMMISSIONED = "decommissioned"
    """Retired (removed at the site): counts for nothing until it reports."""


class ConditionCode(str, enum.Enum):
    """The condition codes this version knows.

    The catalogue is open-ended: a code from a newer recording server arrives
    as a plain ``str``, so fields typed ``ConditionCode | str`` compare equal
    to the code's text either way (``code == "STORAGE_FULL"``).
    """

    CAMERA_UNREACHABLE = "CAMERA_UNREACHABLE"
    STORAGE_FULL = "STORAGE_FULL"
    MEDIA_DB_WRITE_FAILED = "MEDIA_DB_WRITE_FAILED"
    LICENSE_OVERUSE = "LICENSE_OVERUSE"
    SERVER_UNAVAILABLE = "SERVER_UNAVAILABLE"
    ARCHIVE_DELETE_FAILED = "ARCHIVE_DELETE_FAILED"
    FILE_DELETE_FAILED = "FILE_DELETE_FAILED"
    ARCHIVE_FATAL_ERROR = "ARCHIVE_FATAL_ERROR"
    ARCHIVE_OPERATION_FAILED = "ARCHIVE_OPERATION_FAILED"
    ARCHIVE_MOVE_FAILED = "ARCHIVE_MOVE_FAILED"


class MessageKind(str, enum.Enum):
    """What a recording server's message is."""

    HEARTBEAT = "heartbeat"
    STATUS_REPORT = "status_report"


class HistoryKind(str, enum.Enum):
    """What happened, in an installation's history."""

    FIRST_SEEN = "first_seen"
    CONDITION_OPENED = "condition_opened"
    CONDITION_RESOLVED = "condition_resolved"
    BECAME_UNAVAILABLE = "became_unavailable"
    RECOVERED = "recovered"
    DECOMMISSIONED = "decommissioned"
    RECOMMISSIONED = "recommissioned"
    PARKED = "parked"
    RESUMED = "resumed"


Code = Union[ConditionCode, str]
"""A condition code: a known one, or the text of one this version does not know."""


@dataclass(frozen=True)
class Product:
    """What an installation runs, e.g. ``Product("XProtect Corporate", "2016 R3")``."""

    name: str
    version: str


@dataclass(frozen=True)
class Reseller:
    """A reseller: sees only the installations it registered."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ResealReport:
    """What ``Carewatch.reseal_secrets`` did: secrets moved to the current
    master key (``current_key`` is its fingerprint), those already under it,
    and those left as they were."""

    current_key: str
    previous_keys: int
    keys_resealed: int
    keys_current: int
    channels_resealed: int
    channels_current: int
    changed_meanwhile: int
    unopenable: int
    unopenable_named: Tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Whether every secret is now under the current key."""
        return self.changed_meanwhile == 0 and self.unopenable == 0


@dataclass(frozen=True)
class AuditEntry:
    """One action in the audit log: who did what, when."""

    id: int
    """Grows with every entry; pass the last one seen as ``before`` for the next page."""
    at: datetime
    actor_kind: str
    """``operator`` or ``user``."""
    actor_name: str
    """The operator's name or the user's login."""
    actor_reseller: Optional[str]
    """The user's reseller; ``None`` for the operator."""
    action: str
    """e.g. ``installation.transferred``."""
    target: str
    """What it was done to: an SLC, a reseller, a login, a channel id …"""
    detail: str


@dataclass(frozen=True)
class Installation:
    """A customer installation, identified by its SLC."""

    slc: str
    reseller: str
    product: Product
    subscription_expires_at: Optional[datetime]
    """When Care Plus ends; ``None``: no subscription."""
    consent: bool
    """Whether the owner accepted the Carewatch service."""
    registered_at: datetime


@dataclass(frozen=True)
class Availability:
    """A recording server's availability at one instant."""

    state: AvailabilityState
    missed: int = 0
    """Heartbeats missed in a row (while Carewatch was receiving, once unavailable)."""
    since: Optional[datetime] = None
    """When it became unavailable (the threshold-th heartbeat was due), or
    was decommissioned."""


@dataclass(frozen=True)
class Evaluation:
    """The result of :func:`carewatch.evaluate`."""

    availability: Availability
    next_change_at: Optional[datetime]
    """When, without a new message, the availability changes next."""


@dataclass(frozen=True)
class Condition:
    """A condition as a recording server reports it in a status report."""

    code: Code
    subject: str
    """What it is about: a camera, a drive …"""
    detail: str = ""


@dataclass(frozen=True)
class SealedMessage:
    """A message sealed as a recording server sends it; pass it to ``Carewatch.ingest``."""

    slc: str
    server: str
    kind: MessageKind
    sequence: int
    sealed: bytes = field(repr=False)


@dataclass(frozen=True)
class IngestAck:
    """The acknowledgement of an ingested message."""

    received_at: datetime
    heartbeat_interval: timedelta
    """The interval the recording server must keep."""
    duplicate: bool
    """Whether this was a retry of a message already applied."""


@dataclass(frozen=True)
class HealthSummary:
    """An installation's overview line: its health, worst condition and counts."""

    health: Health
    worst: Optional[Code]
    servers: int
    unavailable: int
    late: int
    active_conditions: int


@dataclass(frozen=True)
class Labels:
    """What the reseller calls an installation ("" and () when not set)."""

    customer: str = ""
    site: str = ""
    notes: str = ""
    tags: Tuple[str, ...] = ()
    """Lower case, sorted, each once."""


@dataclass(frozen=True)
class OverviewRow:
    """One installation in a reseller's overview."""

    slc: str
    product: Product
    summary: HealthSummary
    last_seen_at: Optional[datetime]
    labels: Labels = Labels()
    refused: Optional[str] = None
    """Why its messages are refused, if they are: ``"consent_withdrawn"`` or
    ``"subscription_expired"`` (its servers are not judged meanwhile)."""

    @property
    def health(self) -> Health:
        """The installation's health."""
        return self.summary.health


@dataclass(frozen=True)
class OverviewPage:
    """A page of a reseller's installations, worst first."""

    rows: Tuple[OverviewRow, ...]
    next_page: Optional[str]
    """Pass as ``after=`` to get the next page; ``None`` on the last one."""
    totals: Mapping[Health, int]
    """Installations per health, over all of the reseller's installations."""


@dataclass(frozen=True)
class RecordingServer:
    """One recording server of an installation."""

    id: str
    first_seen_at: datetime
    last_seen_at: datetime
    interval: timedelta
    availability: Availability
    next_check_at: Optional[datetime]


@dataclass(frozen=True)
class ConditionRecord:
    """A condition as Carewatch keeps it: when it opened and (if) it was resolved."""

    server: str
    code: Code
    subject: str
    detail: str
    opened_at: datetime
    resolved_at: Optional[datetime]


@dataclass(frozen=True)
class HistoryEvent:
    """One entry of an installation's history; fields that do not apply are ``None``."""

    at: datetime
    server: str
    kind: HistoryKind
    code: Optional[Code] = None
    subject: Optional[str] = None
    missed: Optional[int] = None
    duration: Optional[timedelta] = None
    """How long the condition was open, or the server unavailable."""


@dataclass(frozen=True)
class InstallationDetail:
    """Everything about one installation."""

    installation: Installation
    summary: HealthSummary
    servers: Tuple[RecordingServer, ...]
    active_conditions: Tuple[ConditionRecord, ...]
    history: Tuple[HistoryEvent, ...]
    """Most recent first."""
    labels: Labels = Labels()

    @property
    def health(self) -> Health:
        """The installation's health."""
        return self.summary.health


@dataclass(frozen=True)
class SweepReport:
    """What one availability sweep did."""

    evaluated: int
    installations_changed: int


@dataclass(frozen=True)
class InstallationChange:
    """A watched installation's overview line changed."""

    slc: str
    previous: Health
    summary: HealthSummary
    at: datetime
    event_id: int = 0
    """Its position in the change feed: ``watch(..., after=event_id)`` resumes after it."""


@dataclass(frozen=True)
class ServerChange:
    """Something happened to one of a watched installation's recording servers."""

    slc: str
    event: HistoryEvent
    event_id: int = 0


@dataclass(frozen=True)
class InstallationUpdate:
    """A watched installation was registered, or its consent or subscription changed."""

    slc: str
    at: datetime
    kind: str
    """``registered``, ``consent``, ``subscription``, ``labels`` or ``removed``
    (transferred to another reseller: the last event of it)."""
    accepted: Optional[bool] = None
    """For ``consent``: whether the service is accepted now."""
    expires_at: Optional[datetime] = None
    """For ``subscription``: when Care Plus ends now (``None``: removed)."""
    event_id: int = 0


@dataclass(frozen=True)
class Uptime:
    """An installation's or a recording server's figures over a report's
    period, with Carewatch's own downtime and the reseller's maintenance
    windows excluded. ``unmonitored + excluded_own_downtime +
    excluded_maintenance + observed`` is the period."""

    availability_percent: Optional[float]
    """``(observed - down) / observed`` in percent, rounded down to 3
    decimals (100.0 only without any down time); ``None`` when nothing was
    observed."""
    observed: timedelta
    """The time availability is judged on."""
    down: timedelta
    """Outage time within the observed time."""
    outages: int
    """Outages with observed time in the period."""
    outage_time: timedelta
    """Their length within the period, excluded stretches included."""
    mttr: Optional[timedelta]
    """Mean time to recovery of the outages that ended with a recovery in
    the period; ``None`` if none did."""
    ongoing: bool
    """Whether an outage was still going on at the period's end."""
    excluded_own_downtime: timedelta
    """Carewatch's own downtime."""
    excluded_maintenance: timedelta
    """The reseller's maintenance windows (where not own downtime)."""
    unmonitored: timedelta
    """Before first heard from, while decommissioned, or while Carewatch
    refused the installation's messages (Care Plus ended, consent
    withdrawn)."""


@dataclass(frozen=True)
class ServerUptime:
    """A recording server's figures."""

    server: str
    uptime: Uptime


@dataclass(frozen=True)
class InstallationUptime:
    """An installation's figures (down while every counted server is: the
    Offline rule) and its servers', decommissioned ones included."""

    slc: str
    customer: str
    """From its labels; ``""`` when not set."""
    site: str
    uptime: Uptime
    servers: Tuple[ServerUptime, ...]
    """By id."""


def _seconds(d: Optional[timedelta]) -> Optional[float]:
    return None if d is None else d.total_seconds()


def _row(
    kind: str,
    installation: InstallationUptime,
    server: Optional[str],
    uptime: Uptime,
    start: datetime,
    end: datetime,
) -> Dict[str, Any]:
    return {
        "kind": kind,
        "slc": installation.slc,
        "customer": installation.customer,
        "site": installation.site,
        "server": server,
        "period_start": start,
        "period_end": end,
        "availability_percent": uptime.availability_percent,
        "observed_s": uptime.observed.total_seconds(),
        "down_s": uptime.down.total_seconds(),
        "outages": uptime.outages,
        "outage_time_s": uptime.outage_time.total_seconds(),
        "mttr_s": _seconds(uptime.mttr),
        "ongoing": uptime.ongoing,
        "excluded_own_downtime_s": uptime.excluded_own_downtime.total_seconds(),
        "excluded_maintenance_s": uptime.excluded_maintenance.total_seconds(),
        "unmonitored_s": uptime.unmonitored.total_seconds(),
    }


@dataclass(frozen=True)
class UptimeReport:
    """A reseller's uptime report over ``[period_start, period_end)`` (a
    month not over yet ends now): typed, and as the CSV and JSON texts the
    server makes. ``pandas.DataFrame(report.rows())`` gives a table."""

    reseller: str
    period_start: datetime
    period_end: datetime
    installations: Tuple[InstallationUptime, ...]
    """By SLC."""
    csv: str = field(default="", repr=False)
    """RFC 4180 with CRLF line ends: a header, then each installation's
    line and its servers' lines."""
    json: str = field(default="", repr=False)
    """One object, ``"version": 1``."""

    def rows(self) -> List[Dict[str, Any]]:
        """One dict per line of the CSV, with its column names as keys: each
        installation (``kind`` ``"installation"``, ``server`` ``None``),
        then its servers (``"server"``). Seconds are floats, the period's
        ends ``datetime``, missing figures ``None``."""
        out: List[Dict[str, Any]] = []
        for i in self.installations:
            out.append(_row("installation", i, None, i.uptime, self.period_start, self.period_end))
            for s in i.servers:
                out.append(_row("server", i, s.server, s.uptime, self.period_start, self.period_end))
        return out


@dataclass(frozen=True)
class WatchLagged:
    """No longer produced: a watcher that falls behind is caught up from the
    durable change feed. Kept so code that handles it still imports."""

    skipped: int


WatchEvent = Union[InstallationChange, ServerChange, InstallationUpdate]
