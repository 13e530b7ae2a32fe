"""Every exception class, raised by a real refusal; a refusal changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Type

import pytest

import carewatch
from carewatch import CarewatchError, Condition, ConditionCode, Health

from conftest import Site, provision

Refusal = Callable[[carewatch.Carewatch, Path], object]


def unknown_installation(cw: carewatch.Carewatch, _: Path) -> object:
    key = carewatch.generate_installation_key()
    return cw.ingest(carewatch.seal_heartbeat(key, "M09-C09-9999", "rs-1", 1))


def consent_missing(cw: carewatch.Carewatch, _: Path) -> object:
    return provision(cw, consent=False).heartbeat()


def subscription_expired(cw: carewatch.Carewatch, _: Path) -> object:
    return provision(cw, subscribed=False).heartbeat()


def seal_error(cw: carewatch.Carewatch, _: Path) -> object:
    site = provision(cw)
    message = carewatch.seal_heartbeat(site.key, site.slc, "rs-1", 1)
    tampered = bytearray(message.sealed)
    tampered[-1] ^= 0x01
    import dataclasses

    return cw.ingest(dataclasses.replace(message, sealed=bytes(tampered)))


def replayed(cw: carewatch.Carewatch, _: Path) -> object:
    site = provision(cw)
    cw.ingest(carewatch.seal_heartbeat(site.key, site.slc, "rs-1", 5))
    return cw.ingest(carewatch.seal_heartbeat(site.key, site.slc, "rs-1", 4))


def malformed(cw: carewatch.Carewatch, _: Path) -> object:
    site = provision(cw)
    message = carewatch.seal_message(
        site.key, site.slc, "rs-1", carewatch.MessageKind.HEARTBEAT, 1, b"not empty"
    )
    return cw.ingest(message)


def too_large(cw: carewatch.Carewatch, _: Path) -> object:
    site = provision(cw)
    message = carewatch.seal_message(
        site.key, site.slc, "rs-1", "status_report", 1, bytes(65 * 1024)
    )
    return cw.ingest(message)


def not_found(cw: carewatch.Carewatch, _: Path) -> object:
    site = provision(cw)
    cw.create_reseller("other-reseller", "Other")
    return cw.installation("other-reseller", site.slc)


def unauthenticated(cw: carewatch.Carewatch, _: Path) -> object:
    provision(cw)
    return cw.overview("cwr.acme-security." + "0" * 64)


def already_exists(cw: carewatch.Carewatch, _: Path) -> object:
    cw.create_reseller("acme-security", "ACME")
    return cw.create_reseller("acme-security", "ACME again")


def invalid_input(cw: carewatch.Carewatch, _: Path) -> object:
    cw.create_reseller("acme-security", "ACME")
    return cw.register_installation("not an slc!", "acme-security", "XProtect", "1")


def storage_unavailable(_: carewatch.Carewatch, __: Path) -> object:
    # Nothing listens on port 1: the connection is refused.
    return carewatch.Carewatch.open(
        "postgres://postgres@127.0.0.1:1/test", master_key=carewatch.generate_master_key()
    )


def storage_error(_: carewatch.Carewatch, tmp: Path) -> object:
    not_a_database = tmp / "garbage.db"
    not_a_database.write_bytes(b"this is not a SQLite database, just text" * 100)
    return carewatch.Carewatch.open(not_a_database)


REFUSALS: Dict[Type[CarewatchError], Refusal] = {
    carewatch.InvalidInput: invalid_input,
    carewatch.UnknownInstallation: unknown_installation,
    carewatch.ConsentMissing: consent_missing,
    carewatch.SubscriptionExpired: subscription_expired,
    carewatch.SealError: seal_error,
    carewatch.Replayed: replayed,
    carewatch.Malformed: malformed,
    carewatch.TooLarge: too_large,
    carewatch.NotFound: not_found,
    carewatch.Unauthenticated: unauthenticated,
    carewatch.AlreadyExists: already_exists,
    carewatch.StorageUnavailable: storage_unavailable,
    carewatch.StorageError: storage_error,
}

MESSAGES = {
    carewatch.InvalidInput: "invalid slc",
    carewatch.UnknownInstallation: "unknown installation M09-C09-9999",
    carewatch.ConsentMissing: "consent missing",
    carewatch.SubscriptionExpired: "no active Care Plus subscription",
    carewatch.SealError: "cannot be decrypted",
    carewatch.Replayed: "replayed or stale",
    carewatch.Malformed: "a heartbeat is empty",
    carewatch.TooLarge: "too large",
    carewatch.NotFound: "installation M01-C01-0001 not found",
    carewatch.Unauthenticated: "not authenticated",
    carewatch.AlreadyExists: "already exists",
    carewatch.StorageUnavailable: "storage unavailable",
    carewatch.StorageError: "not a database",
}


def test_every_exception_class_is_covered() -> None:
    assert set(REFUSALS) == set(CarewatchError.__subclasses__())


@pytest.mark.parametrize("expected", list(REFUSALS), ids=lambda c: c.__name__)
def test_refusal_raises_its_class(
    expected: Type[CarewatchError], cw: carewatch.Carewatch, tmp_path: Path
) -> None:
    with pytest.raises(expected) as raised:
        REFUSALS[expected](cw, tmp_path)
    error = raised.value
    assert type(error) is expected
    assert isinstance(error, CarewatchError)
    assert MESSAGES[expected] in str(error)
    assert error.code == expected.code and error.code != CarewatchError.code
    assert error.retryable == (expected is carewatch.StorageUnavailable)


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
    with pytest.raises(carewatch.SealError):
        site.cw.ingest(
            carewatch.seal_status(carewatch.generate_installation_key(), site.slc, "rs-1", 100, [])
        )
    assert site.cw.installation(site.reseller, site.slc) == before
    assert site.cw.overview(site.token).rows[0].health is Health.CRITICAL


def test_python_type_errors_stay_type_errors(cw: carewatch.Carewatch) -> None:
    from datetime import datetime

    cw.create_reseller("acme-security", "ACME")
    cw.register_installation("M01-C01-0001", "acme-security", "XProtect", "1")
    with pytest.raises(TypeError):
        cw.set_subscription("M01-C01-0001", "tomorrow")  # type: ignore[arg-type]
    with pytest.raises(carewatch.InvalidInput, match="timezone"):
        cw.set_subscription("M01-C01-0001", datetime(2030, 1, 1))
    assert cw.installation("acme-security", "M01-C01-0001").installation.subscription_expires_at is None
