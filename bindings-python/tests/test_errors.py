"""One exception class per error code of the core, raised by a real refusal
where a test can cause it; a refusal changes nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Dict, List, Type

import pytest

import carewatch
from carewatch import CarewatchError, Condition, ConditionCode, Health
from carewatch._carewatch import ERROR_CODES
from carewatch._errors import BY_CODE

from conftest import POSTGRES_URL, Site, drop_schema, fresh_schema_name, provision


def unknown_installation(cw: carewatch.Carewatch) -> object:
    key = carewatch.generate_installation_key()
    return cw.ingest(carewatch.seal_heartbeat(key, "M09-C09-9999", "rs-1", 1))


def consent_missing(cw: carewatch.Carewatch) -> object:
    return provision(cw, consent=False).heartbeat()


def subscription_expired(cw: carewatch.Carewatch) -> object:
    return provision(cw, subscribed=False).heartbeat()


def cannot_decrypt(cw: carewatch.Carewatch) -> object:
    site = provision(cw)
    message = carewatch.seal_heartbeat(site.key, site.slc, "rs-1", 1)
    tampered = bytearray(message.sealed)
    tampered[-1] ^= 0x01
    return cw.ingest(dataclasses.replace(message, sealed=bytes(tampered)))


def replayed(cw: carewatch.Carewatch) -> object:
    site = provision(cw)
    cw.ingest(carewatch.seal_heartbeat(site.key, site.slc, "rs-1", 5))
    return cw.ingest(carewatch.seal_heartbeat(site.key, site.slc, "rs-1", 4))


def malformed(cw: carewatch.Carewatch) -> object:
    site = provision(cw)
    message = carewatch.seal_message(
        site.key, site.slc, "rs-1", carewatch.MessageKind.HEARTBEAT, 1, b"not empty"
    )
    return cw.ingest(message)


def too_large(cw: carewatch.Carewatch) -> object:
    site = provision(cw)
    # Larger than the largest valid sealed report (core's MAX_SEALED_MESSAGE_BYTES).
    message = carewatch.seal_message(
        site.key, site.slc, "rs-1", "status_report", 1, bytes(1_400_000)
    )
    return cw.ingest(message)


def not_found(cw: carewatch.Carewatch) -> object:
    site = provision(cw)
    cw.create_reseller("other-reseller", "Other")
    return cw.installation("other-reseller", site.slc)


def unauthenticated(cw: carewatch.Carewatch) -> object:
    provision(cw)
    return cw.overview("cwr.acme-security." + "0" * 64)


def already_exists(cw: carewatch.Carewatch) -> object:
    cw.create_reseller("acme-security", "ACME")
    return cw.create_reseller("acme-security", "ACME again")


def invalid_input(cw: carewatch.Carewatch) -> object:
    cw.create_reseller("acme-security", "ACME")
    return cw.register_installation("not an slc!", "acme-security", "XProtect", "1")


def resume_too_old(cw: carewatch.Carewatch) -> object:
    site = provision(cw)
    site.heartbeat()
    cw.prune_changes(datetime.now(timezone.utc) + timedelta(seconds=1))
    return cw.watch(site.reseller, after=1)


def limit_reached(cw: carewatch.Carewatch) -> object:
    site = provision(cw)
    # A reseller's live views on one node are bounded (2,000).
    held = [cw.watch(site.reseller) for _ in range(2000)]
    try:
        return cw.watch(site.reseller)
    finally:
        del held


# Refusals of the service: each runs on SQLite and on PostgreSQL.
REFUSALS: Dict[Type[CarewatchError], Callable[[carewatch.Carewatch], object]] = {
    carewatch.InvalidInput: invalid_input,
    carewatch.UnknownInstallation: unknown_installation,
    carewatch.ConsentMissing: consent_missing,
    carewatch.SubscriptionExpired: subscription_expired,
    carewatch.CannotDecrypt: cannot_decrypt,
    carewatch.Replayed: replayed,
    carewatch.Malformed: malformed,
    carewatch.TooLarge: too_large,
    carewatch.NotFound: not_found,
    carewatch.Unauthenticated: unauthenticated,
    carewatch.AlreadyExists: already_exists,
    carewatch.ResumeTooOld: resume_too_old,
    carewatch.LimitReached: limit_reached,
}


def storage_unavailable(_: Path) -> object:
    # Nothing listens on port 1: the connection is refused.
    return carewatch.Carewatch.open(
        "postgres://postgres@127.0.0.1:1/test", master_key=carewatch.generate_master_key()
    )


def in_subprocess(script: str, database: Path) -> "subprocess.Popen[str]":
    # Another process: Python's sqlite3 is another copy of SQLite, and two
    # copies in one process do not see each other's (POSIX, per-process) locks.
    return subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n" + script, str(database)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


def storage_locked(tmp: Path) -> object:
    cw = carewatch.Carewatch.open(tmp / "carewatch.db")
    holder = in_subprocess(
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n",
        tmp / "carewatch.db",
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        return cw.create_reseller("acme-security", "ACME")  # after SQLite's 5 s busy timeout
    finally:
        holder.communicate(timeout=30)


def storage_read_only(_: Path) -> object:
    # What a standby (or a primary that failed over) answers to a write.
    schema = fresh_schema_name()
    read_only = POSTGRES_URL + ("&" if "?" in POSTGRES_URL else "?")
    read_only += "options[default_transaction_read_only]=on"
    try:
        return carewatch.Carewatch.open(
            read_only, schema=schema, master_key=carewatch.generate_master_key()
        )
    finally:
        drop_schema(schema)


def storage_corrupt(tmp: Path) -> object:
    not_a_database = tmp / "garbage.db"
    not_a_database.write_bytes(b"this is not a SQLite database, just text" * 100)
    return carewatch.Carewatch.open(not_a_database)


def storage_error(tmp: Path) -> object:
    cw = carewatch.Carewatch.open(tmp / "carewatch.db")
    dropping = in_subprocess(
        "db = sqlite3.connect(sys.argv[1])\n"
        "db.execute('DROP TABLE resellers')\n"
        "db.commit()\n",
        tmp / "carewatch.db",
    )
    dropping.communicate(timeout=30)
    assert dropping.returncode == 0
    return cw.resellers()


# Storage failures: each makes its own database, so each runs once.
STORAGE_REFUSALS: Dict[Type[CarewatchError], Callable[[Path], object]] = {
    carewatch.StorageUnavailable: storage_unavailable,
    carewatch.StorageLocked: storage_locked,
    carewatch.StorageReadOnly: storage_read_only,
    carewatch.StorageCorrupt: storage_corrupt,
    carewatch.StorageError: storage_error,
}

# No test can cause these from Python: they are checked by the table only.
NOT_CAUSED_HERE = {
    carewatch.StorageFull,  # needs a full disk
    carewatch.ShuttingDown,  # needs a node that stops receiving
    carewatch.PermissionDenied,  # needs the team roles, which Python does not expose
}

MESSAGES = {
    carewatch.InvalidInput: "invalid slc",
    carewatch.UnknownInstallation: "unknown installation M09-C09-9999",
    carewatch.ConsentMissing: "consent missing",
    carewatch.SubscriptionExpired: "no active Care Plus subscription",
    carewatch.CannotDecrypt: "cannot be decrypted",
    carewatch.Replayed: "replayed or stale",
    carewatch.Malformed: "a heartbeat is empty",
    carewatch.TooLarge: "too large",
    carewatch.NotFound: "installation M01-C01-0001 not found",
    carewatch.Unauthenticated: "not authenticated",
    carewatch.AlreadyExists: "already exists",
    carewatch.ResumeTooOld: "cannot resume after event 1",
    carewatch.LimitReached: "too many live views",
    carewatch.StorageUnavailable: "storage unavailable",
    carewatch.StorageLocked: "storage locked",
    carewatch.StorageReadOnly: "read-only",
    carewatch.StorageCorrupt: "not a database",
    carewatch.StorageError: "no such table",
}

RETRYABLE = {
    carewatch.StorageUnavailable,
    carewatch.StorageLocked,
    carewatch.StorageFull,
    carewatch.StorageReadOnly,
    carewatch.ShuttingDown,
}
"""The kinds core's ``Error::is_retryable`` accepts."""


def test_every_error_code_of_the_core_has_its_class() -> None:
    # A new kind of error in core fails here until _errors.py maps it.
    assert set(BY_CODE) == set(ERROR_CODES)
    assert len(ERROR_CODES) == len(set(ERROR_CODES))
    for code, cls in BY_CODE.items():
        assert cls.code == code
        assert issubclass(cls, CarewatchError)
        assert getattr(carewatch, cls.__name__) is cls, f"carewatch.{cls.__name__} is not exported"
        assert cls.__name__ in carewatch.__all__


def test_every_class_has_its_own_code() -> None:
    classes: List[Type[CarewatchError]] = []
    pending = list(CarewatchError.__subclasses__())
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    assert sorted(cls.code for cls in classes) == sorted(ERROR_CODES)


def test_every_class_is_raised_by_a_refusal_or_listed_as_not() -> None:
    raised = set(REFUSALS) | set(STORAGE_REFUSALS)
    assert raised.isdisjoint(NOT_CAUSED_HERE)
    assert raised | NOT_CAUSED_HERE == set(BY_CODE.values())
    assert set(MESSAGES) == raised


def test_the_hierarchy_groups_the_storage_kinds() -> None:
    for cls in (carewatch.StorageLocked, carewatch.StorageFull, carewatch.StorageReadOnly):
        assert issubclass(cls, carewatch.StorageUnavailable)
    assert issubclass(carewatch.StorageCorrupt, carewatch.StorageError)
    assert not issubclass(carewatch.StorageCorrupt, carewatch.StorageUnavailable)
    assert issubclass(carewatch.InvalidInput, ValueError)
    assert issubclass(carewatch.NotFound, LookupError)


def test_retryable_matches_the_core() -> None:
    assert {cls for cls in BY_CODE.values() if cls.retryable} == RETRYABLE


def test_seal_error_is_the_old_name_of_cannot_decrypt() -> None:
    assert carewatch.SealError is carewatch.CannotDecrypt
    assert carewatch.CannotDecrypt.__name__ == "CannotDecrypt"
    assert BY_CODE["cannot_decrypt"] is carewatch.SealError


def check(raised: pytest.ExceptionInfo[CarewatchError], expected: Type[CarewatchError]) -> None:
    error = raised.value
    assert type(error) is expected
    assert isinstance(error, CarewatchError)
    assert MESSAGES[expected] in str(error)
    assert error.code == expected.code and error.code != CarewatchError.code
    assert error.retryable == (expected in RETRYABLE)


@pytest.mark.parametrize("expected", list(REFUSALS), ids=lambda c: c.__name__)
def test_refusal_raises_its_class(expected: Type[CarewatchError], cw: carewatch.Carewatch) -> None:
    with pytest.raises(expected) as raised:
        REFUSALS[expected](cw)
    check(raised, expected)


@pytest.mark.parametrize("expected", list(STORAGE_REFUSALS), ids=lambda c: c.__name__)
def test_storage_failure_raises_its_class(expected: Type[CarewatchError], tmp_path: Path) -> None:
    with pytest.raises(expected) as raised:
        STORAGE_REFUSALS[expected](tmp_path)
    check(raised, expected)


def test_input_errors_are_also_value_errors(cw: carewatch.Carewatch) -> None:
    with pytest.raises(ValueError):
        cw.create_reseller("Upper Case", "x")


def test_a_refused_message_changes_nothing(site: Site) -> None:
    site.report([Condition(ConditionCode.STORAGE_FULL, "D:", "full")])
    before = site.cw.installation(site.reseller, site.slc)
    with pytest.raises(carewatch.Replayed):
        site.cw.ingest(carewatch.seal_status(site.key, site.slc, "rs-1", 1, []))
    with pytest.raises(carewatch.Malformed):
        site.cw.ingest(carewatch.seal_message(site.key, site.slc, "rs-1", "status_report", 99, b"\x01"))
    with pytest.raises(carewatch.CannotDecrypt):
        site.cw.ingest(
            carewatch.seal_status(carewatch.generate_installation_key(), site.slc, "rs-1", 100, [])
        )
    assert site.cw.installation(site.reseller, site.slc) == before
    assert site.cw.overview(site.token).rows[0].health is Health.CRITICAL


def test_python_type_errors_stay_type_errors(cw: carewatch.Carewatch) -> None:
    cw.create_reseller("acme-security", "ACME")
    cw.register_installation("M01-C01-0001", "acme-security", "XProtect", "1")
    with pytest.raises(TypeError):
        cw.set_subscription("M01-C01-0001", "tomorrow")  # type: ignore[arg-type]
    with pytest.raises(carewatch.InvalidInput, match="timezone"):
        cw.set_subscription("M01-C01-0001", datetime(2030, 1, 1))
    assert cw.installation("acme-security", "M01-C01-0001").installation.subscription_expires_at is None


def test_a_time_outside_datetime_s_years_in_utc_is_refused(cw: carewatch.Carewatch) -> None:
    # 9999-12-31 23:00 at UTC-5 is year 10000 in UTC: it was stored, and
    # every later read of the installation raised OverflowError.
    cw.create_reseller("acme-security", "ACME")
    cw.register_installation("M01-C01-0001", "acme-security", "XProtect", "1")
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(carewatch.InvalidInput, match="years 1 to 9999"):
        cw.set_subscription("M01-C01-0001", late)
    early = datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    with pytest.raises(carewatch.InvalidInput, match="years 1 to 9999"):
        cw.set_subscription("M01-C01-0001", early)
    detail = cw.installation("acme-security", "M01-C01-0001")
    assert detail.installation.subscription_expires_at is None
    edge = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)
    assert cw.set_subscription("M01-C01-0001", edge).subscription_expires_at == edge


def test_a_url_that_is_not_postgres_is_refused_without_its_password(tmp_path: Path) -> None:
    # It was opened as a SQLite file name: a retryable storage error whose
    # message carried the password.
    key = carewatch.generate_master_key()
    for url in ["postgresql+psycopg://app:s3cret@db/cw", "mysql://app:s3cret@db/cw"]:
        with pytest.raises(carewatch.InvalidInput) as raised:
            carewatch.Carewatch.open(url, master_key=key)
        assert "s3cret" not in str(raised.value)
        assert not raised.value.retryable


def test_a_negative_count_or_id_is_invalid_input_naming_it(site: Site, tmp_path: Path) -> None:
    # They raised Python's bare OverflowError, with no code.
    cw = site.cw
    refusals: List[Callable[[], object]] = [
        lambda: cw.overview(site.reseller, page_size=-1),
        lambda: cw.watch(site.reseller, after=-1),
        lambda: cw.audit_log(limit=-1),
        lambda: cw.audit_log(before=-1),
        lambda: cw.full_history(site.slc, limit=-1),
        lambda: cw.retire_installation_key(site.slc, -1),
        lambda: cw.uptime_report(site.reseller, last_days=-1),
        lambda: carewatch.seal_heartbeat(site.key, site.slc, "rs-1", -1),
        lambda: carewatch.seal_heartbeat(site.key, site.slc, "rs-1", 2**64),
        lambda: carewatch.generate_installation_key(-1),
        lambda: carewatch.Carewatch.open(tmp_path / "other.db", unavailable_after=-1),
    ]
    for refused in refusals:
        with pytest.raises(carewatch.InvalidInput, match="out of range") as raised:
            refused()
        assert raised.value.code == "invalid_input"
    assert carewatch.seal_heartbeat(site.key, site.slc, "rs-1", 2**64 - 1)


def test_a_message_opened_with_another_key_says_so(site: Site) -> None:
    other = carewatch.generate_installation_key(2)
    sealed = carewatch.seal_heartbeat(other, site.slc, "rs-1", 1)
    with pytest.raises(carewatch.CannotDecrypt, match=r"sealed with key #2, not with the key given \(#1\)"):
        carewatch.open_message(site.key, sealed)
