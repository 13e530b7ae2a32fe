"""Type stubs of the compiled module ``carewatch._carewatch``."""

import os
from datetime import datetime, timedelta
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union, final

from carewatch._types import (
    AuditEntry,
    HistoryEvent,
    Condition,
    ConditionCode,
    Evaluation,
    IngestAck,
    Installation,
    InstallationDetail,
    Labels,
    MessageKind,
    OverviewPage,
    ResealReport,
    Reseller,
    SealedMessage,
    SweepReport,
    UptimeReport,
    WatchEvent,
)

__all__ = [
    "ERROR_CODES",
    "__version__",
    "Carewatch",
    "Watch",
    "condition_catalogue",
    "evaluate",
    "generate_installation_key",
    "generate_master_key",
    "open_message",
    "seal_heartbeat",
    "seal_message",
    "seal_status",
]

__version__: str
ERROR_CODES: Tuple[str, ...]
"""Every error code the core can raise; each has a class in ``carewatch._errors.BY_CODE``."""

_Seconds = Union[timedelta, float]

@final
class Carewatch:
    @staticmethod
    def open(
        target: Union[str, "os.PathLike[str]"],
        *,
        master_key: Optional[str] = None,
        schema: Optional[str] = None,
        heartbeat_interval: Optional[_Seconds] = None,
        unavailable_after: int = 3,
        jitter_tolerance: Optional[_Seconds] = None,
        node_id: Optional[str] = None,
        previous_master_keys: Optional[Sequence[str]] = None,
    ) -> Carewatch: ...
    @property
    def heartbeat_interval(self) -> timedelta: ...
    def now(self) -> datetime: ...
    def create_reseller(self, reseller: str, name: str) -> str: ...
    def rotate_reseller_token(self, reseller: str) -> str: ...
    def issue_operator_token(self, name: str) -> str: ...
    def authenticate_reseller(self, token: str) -> str: ...
    def resellers(self) -> List[Reseller]: ...
    def reseal_secrets(self, expected_current_key: Optional[str] = None) -> ResealReport: ...
    def audit_log(
        self, team: Optional[str] = None, before: Optional[int] = None, limit: int = 100
    ) -> List[AuditEntry]: ...
    def register_installation(
        self, slc: str, reseller: str, product: str, version: str
    ) -> Installation: ...
    def full_history(self, slc: str, limit: int = 100) -> List[HistoryEvent]: ...
    def transfer_installation(
        self, slc: str, to: str, share_history: bool = False
    ) -> Installation: ...
    def set_subscription(self, slc: str, expires_at: Optional[datetime]) -> Installation: ...
    def set_consent(self, slc: str, accepted: bool) -> Installation: ...
    def set_product(self, slc: str, product: str, version: str) -> Installation: ...
    def issue_installation_key(self, slc: str) -> str: ...
    def retire_installation_key(self, slc: str, key_id: int) -> None: ...
    def ingest(self, message: SealedMessage) -> IngestAck: ...
    def overview(
        self,
        reseller: str,
        include_healthy: bool = False,
        *,
        page_size: int = 50,
        after: Optional[str] = None,
        search: Optional[str] = None,
        health: Optional[str] = None,
        sort: str = "health",
    ) -> OverviewPage: ...
    def set_labels(
        self,
        reseller: str,
        slc: str,
        *,
        customer: str = "",
        site: str = "",
        notes: str = "",
        tags: Sequence[str] = ...,
    ) -> Labels: ...
    def decommission_server(self, reseller: str, slc: str, server: str) -> bool: ...
    def uptime_report(
        self,
        reseller: str,
        *,
        month: Optional[str] = None,
        last_days: Optional[int] = None,
        slc: Optional[str] = None,
    ) -> UptimeReport: ...
    def installation(self, reseller: str, slc: str) -> InstallationDetail: ...
    def watch(
        self,
        reseller: str,
        slc: Optional[str] = None,
        *,
        after: Optional[int] = None,
        all_changes: bool = False,
    ) -> Watch: ...
    def sweep(self) -> SweepReport: ...
    def tick(self) -> SweepReport: ...
    def prune_changes(self, before: datetime) -> int: ...

@final
class Watch:
    def next_event(self, timeout: Optional[_Seconds] = None) -> Optional[WatchEvent]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Watch": ...
    def __exit__(self, *args: object) -> bool: ...
    def __iter__(self) -> Iterator[WatchEvent]: ...
    def __next__(self) -> WatchEvent: ...

def evaluate(
    last_seen: Optional[datetime],
    now: datetime,
    *,
    interval: Optional[_Seconds] = None,
    unavailable_after: int = 3,
    jitter_tolerance: Optional[_Seconds] = None,
    downtime: Optional[Sequence[Tuple[datetime, datetime]]] = None,
) -> Evaluation: ...
def seal_heartbeat(key: str, slc: str, server: str, sequence: int) -> SealedMessage: ...
def seal_status(
    key: str, slc: str, server: str, sequence: int, conditions: Iterable[Condition]
) -> SealedMessage: ...
def seal_message(
    key: str,
    slc: str,
    server: str,
    kind: Union[MessageKind, str],
    sequence: int,
    plaintext: bytes,
) -> SealedMessage: ...
def open_message(key: str, message: SealedMessage) -> Optional[List[Condition]]: ...
def generate_master_key() -> str: ...
def generate_installation_key(key_id: int = 1) -> str: ...
def condition_catalogue() -> List[Tuple[ConditionCode, str, str]]: ...
