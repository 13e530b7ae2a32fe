"""The availability rule from Python gives the Rust evaluator's answers,
case for case (core/testdata/evaluator_boundaries.txt, shared with Rust)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import List, Optional, Tuple

import pytest

import carewatch
from carewatch import Availability, AvailabilityState, Evaluation

from conftest import REPO

CASES = REPO / "core" / "testdata" / "evaluator_boundaries.txt"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def at(ms: str) -> Optional[datetime]:
    return None if ms == "-" else EPOCH + timedelta(milliseconds=int(ms))


def expected(text: str) -> Availability:
    state, *rest = text.split(":")
    if state == "late":
        return Availability(AvailabilityState.LATE, int(rest[0]))
    if state == "unavailable":
        return Availability(AvailabilityState.UNAVAILABLE, int(rest[1]), at(rest[0]))
    return Availability(AvailabilityState(state))


def read_cases() -> List[str]:
    lines = CASES.read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_the_shared_cases_are_there() -> None:
    assert len(read_cases()) >= 20


@pytest.mark.parametrize("case", read_cases())
def test_same_answer_as_rust(case: str) -> None:
    interval, threshold, jitter, last, now, downtime, want, next_change = case.split()
    windows: List[Tuple[datetime, datetime]] = []
    if downtime != "-":
        for window in downtime.split(","):
            start, end = window.split("..")
            windows.append((at(start), at(end)))  # type: ignore[arg-type]
    got = carewatch.evaluate(
        at(last),
        at(now),  # type: ignore[arg-type]
        interval=timedelta(milliseconds=int(interval)),
        unavailable_after=int(threshold),
        jitter_tolerance=timedelta(milliseconds=int(jitter)),
        downtime=windows,
    )
    assert got == Evaluation(expected(want), at(next_change))


def test_seconds_and_timedeltas_are_the_same() -> None:
    last = datetime(2026, 1, 1, tzinfo=timezone.utc)
    now = last + timedelta(seconds=125)
    assert carewatch.evaluate(last, now, interval=60, jitter_tolerance=2.0) == carewatch.evaluate(
        last, now, interval=timedelta(minutes=1), jitter_tolerance=timedelta(seconds=2)
    )


def test_any_timezone_is_the_same_instant() -> None:
    last = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    copenhagen = timezone(timedelta(hours=1))
    now = datetime(2026, 1, 1, 13, 3, 2, tzinfo=copenhagen)  # 12:03:02 UTC
    result = carewatch.evaluate(last, now)
    assert result.availability == Availability(AvailabilityState.UNAVAILABLE, 3, last + timedelta(minutes=3))
    assert result.availability.since is not None and result.availability.since.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"interval": timedelta(milliseconds=99)}, "heartbeat interval"),
        ({"interval": timedelta(days=2)}, "heartbeat interval"),
        ({"interval": -5}, "interval"),
        ({"unavailable_after": 0}, "unavailable_after"),
        ({"unavailable_after": 101}, "unavailable_after"),
        ({"jitter_tolerance": float("nan")}, "jitter_tolerance"),
    ],
)
def test_bad_settings_are_refused(settings: dict, field: str) -> None:  # type: ignore[type-arg]
    now = datetime.now(timezone.utc)
    with pytest.raises(carewatch.InvalidInput, match=field):
        carewatch.evaluate(now, now, **settings)


def test_naive_datetimes_and_inverted_windows_are_refused() -> None:
    now = datetime.now(timezone.utc)
    with pytest.raises(carewatch.InvalidInput, match="timezone"):
        carewatch.evaluate(datetime(2026, 1, 1), now)
    with pytest.raises(carewatch.InvalidInput, match="downtime window"):
        carewatch.evaluate(now, now, downtime=[(now, now - timedelta(seconds=1))])
