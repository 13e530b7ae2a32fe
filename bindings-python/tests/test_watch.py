"""Watching the change feed: in order, resumable by event id, one reseller's only."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List

import pytest

import carewatch
from carewatch import (
    Condition,
    ConditionCode,
    Health,
    HistoryKind,
    InstallationChange,
    InstallationUpdate,
    ServerChange,
    WatchEvent,
)

from conftest import POSTGRES_URL, Site, provision

DISK_FULL = Condition(ConditionCode.STORAGE_FULL, "D:", "100% used")
CAMERA_DOWN = Condition(ConditionCode.CAMERA_UNREACHABLE, "cam-7", "no answer")


def drain(watch: carewatch.Watch, quiet: float = 0.3) -> List[WatchEvent]:
    """Every event until none comes for ``quiet`` seconds."""
    events: List[WatchEvent] = []
    while (event := watch.next_event(timeout=quiet)) is not None:
        events.append(event)
    return events


def test_resuming_after_an_event_gets_exactly_the_missed_changes_in_order(site: Site) -> None:
    site.heartbeat()
    live = site.cw.watch(site.token, all_changes=True)
    watch = site.cw.watch(site.token)
    site.report([DISK_FULL])
    first = watch.next_event(timeout=10)
    assert isinstance(first, InstallationChange) and first.summary.health is Health.CRITICAL
    del watch  # the watcher goes away; changes go on
    site.report([])
    site.report([CAMERA_DOWN])
    site.cw.set_subscription(site.slc, datetime(2031, 1, 1, tzinfo=timezone.utc))

    everything = drain(live)
    missed = [e for e in everything if e.event_id > first.event_id]
    # Nothing else writes to this feed: the ids follow each other.
    assert [e.event_id for e in everything] == list(
        range(everything[0].event_id, everything[-1].event_id + 1)
    )

    resumed = site.cw.watch(site.token, after=first.event_id, all_changes=True)
    assert drain(resumed) == missed
    overview_only = site.cw.watch(site.token, after=first.event_id)
    received = drain(overview_only)
    lines = [e for e in received if isinstance(e, InstallationChange)]
    assert received == lines == [e for e in missed if isinstance(e, InstallationChange)]
    assert [(e.previous, e.summary.health) for e in lines] == [
        (Health.CRITICAL, Health.HEALTHY),
        (Health.HEALTHY, Health.ATTENTION),
    ]
    # Then it follows live changes.
    site.report([])
    event = overview_only.next_event(timeout=10)
    assert isinstance(event, InstallationChange) and event.summary.health is Health.HEALTHY
    assert event.event_id > missed[-1].event_id


def test_all_changes_shows_the_servers_event_before_the_health_change(site: Site) -> None:
    site.heartbeat()
    watch = site.cw.watch(site.reseller, site.slc, all_changes=True)
    site.report([DISK_FULL])
    opened, health = list(itertools.islice(watch, 2))
    assert isinstance(opened, ServerChange)
    assert opened.slc == site.slc
    assert opened.event.kind is HistoryKind.CONDITION_OPENED
    assert (opened.event.server, opened.event.code, opened.event.subject) == (
        "rs-1", ConditionCode.STORAGE_FULL, "D:",
    )
    assert isinstance(health, InstallationChange)
    assert (health.previous, health.summary.health) == (Health.HEALTHY, Health.CRITICAL)
    assert opened.event_id < health.event_id
    assert opened.event.at == health.at

    site.report([])
    resolved, healthy = list(itertools.islice(watch, 2))
    assert isinstance(resolved, ServerChange)
    assert resolved.event.kind is HistoryKind.CONDITION_RESOLVED
    assert resolved.event.duration is not None and resolved.event.duration >= timedelta(0)
    assert isinstance(healthy, InstallationChange) and healthy.summary.health is Health.HEALTHY


def test_all_changes_shows_the_operators_changes(site: Site) -> None:
    watch = site.cw.watch(site.token, all_changes=True)
    until = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    site.cw.set_consent(site.slc, False)
    site.cw.set_subscription(site.slc, until)
    site.cw.set_subscription(site.slc, None)
    site.cw.set_product(site.slc, "XProtect Expert", "2024")  # not a change resellers follow
    updates = drain(watch)
    assert [(u.kind, u.accepted, u.expires_at) for u in updates if isinstance(u, InstallationUpdate)] == [
        ("consent", False, None),
        ("subscription", None, until),
        ("subscription", None, None),
    ]
    assert all(isinstance(u, InstallationUpdate) and u.slc == site.slc for u in updates)
    # A new registration is the reseller's too.
    provision(site.cw, slc="M01-C01-0002", create_reseller=False, token=site.token)
    registered = watch.next_event(timeout=10)
    assert isinstance(registered, InstallationUpdate)
    assert (registered.slc, registered.kind) == ("M01-C01-0002", "registered")


def test_by_default_only_overview_lines_come(site: Site) -> None:
    watch = site.cw.watch(site.token)
    site.cw.set_consent(site.slc, False)
    site.cw.set_consent(site.slc, True)
    site.heartbeat()  # first seen: a server event, then Pending -> Healthy
    assert [type(e) for e in drain(watch)] == [InstallationChange]


def test_another_resellers_changes_never_come(site: Site) -> None:
    other = provision(site.cw, reseller="other-reseller", slc="M02-C02-0002")
    watch = site.cw.watch(site.token, all_changes=True)
    other.heartbeat()
    other.report([DISK_FULL])
    site.cw.set_consent(other.slc, False)
    site.report([CAMERA_DOWN])  # the only change of this reseller
    seen = drain(watch)
    assert seen and {e.slc for e in seen} == {site.slc}
    # Nor when reading the feed from its start, where both resellers' events are.
    whole = drain(site.cw.watch(site.token, after=0, all_changes=True))
    assert {e.slc for e in whole} == {site.slc}
    assert [e.event_id for e in seen] == [e.event_id for e in whole[-len(seen):]]
    theirs = drain(site.cw.watch(other.reseller, after=0, all_changes=True))
    assert theirs and {e.slc for e in theirs} == {other.slc}
    assert not {e.event_id for e in whole} & {e.event_id for e in theirs}


def test_watch_filters_by_installation(site: Site) -> None:
    other = provision(site.cw, slc="M01-C01-0002", create_reseller=False, token=site.token)
    watch = site.cw.watch(site.token, other.slc)
    site.report([DISK_FULL])
    other.report([CAMERA_DOWN])
    event = watch.next_event(timeout=10)
    assert isinstance(event, InstallationChange) and event.slc == other.slc
    assert watch.next_event(timeout=0.2) is None


def test_watching_another_resellers_installation_is_not_found(site: Site) -> None:
    site.cw.create_reseller("other-reseller", "Other")
    with pytest.raises(carewatch.NotFound):
        site.cw.watch("other-reseller", site.slc)


def test_a_resume_point_older_than_the_feed_keeps_is_refused(site: Site) -> None:
    site.heartbeat()
    watch = site.cw.watch(site.token, all_changes=True)
    site.report([DISK_FULL])
    seen = drain(watch)
    oldest, newest = seen[0].event_id, seen[-1].event_id
    assert site.cw.prune_changes(datetime.now(timezone.utc) - timedelta(days=1)) == 0
    assert site.cw.prune_changes(datetime.now(timezone.utc) + timedelta(seconds=1)) == newest
    with pytest.raises(carewatch.ResumeTooOld, match=f"cannot resume after event {oldest}") as raised:
        site.cw.watch(site.token, after=oldest)
    assert raised.value.code == "resume_too_old" and not raised.value.retryable
    # An id the feed never gave is as unusable as a pruned one.
    with pytest.raises(carewatch.ResumeTooOld):
        site.cw.watch(site.token, after=newest + 100)
    # Resuming after the newest event misses nothing: it works.
    resumed = site.cw.watch(site.token, after=newest)
    site.report([])
    event = resumed.next_event(timeout=10)
    assert isinstance(event, InstallationChange) and event.event_id > newest


def test_a_watcher_pruned_past_while_catching_up_raises_once_and_ends(site: Site) -> None:
    site.heartbeat()
    site.report([DISK_FULL])
    # Accepted: nothing is pruned yet; it reads the log on its first wait.
    watch = site.cw.watch(site.token, after=1)
    site.cw.prune_changes(datetime.now(timezone.utc) + timedelta(seconds=1))
    with pytest.raises(carewatch.ResumeTooOld):
        watch.next_event(timeout=10)
    assert watch.next_event(timeout=0.1) is None
    assert list(watch) == []


def test_bad_arguments_are_refused(site: Site) -> None:
    with pytest.raises(carewatch.InvalidInput, match="out of range"):
        site.cw.watch(site.token, after=-1)
    with pytest.raises(carewatch.InvalidInput, match="timezone"):
        site.cw.prune_changes(datetime(2030, 1, 1))
    with pytest.raises(TypeError):
        site.cw.prune_changes("yesterday")  # type: ignore[arg-type]


def test_watch_lagged_is_still_importable() -> None:
    # Never produced any more (a slow watcher catches up from the feed).
    assert carewatch.WatchLagged(skipped=3).skipped == 3


def test_a_watcher_on_one_node_sees_another_nodes_changes(postgres_schema: str) -> None:
    master = carewatch.generate_master_key()
    node_a = carewatch.Carewatch.open(POSTGRES_URL, schema=postgres_schema, master_key=master, node_id="a")
    node_b = carewatch.Carewatch.open(POSTGRES_URL, schema=postgres_schema, master_key=master, node_id="b")
    site = provision(node_a)
    watch = node_a.watch(site.token)
    site.cw = node_b
    started = time.monotonic()
    site.report([DISK_FULL])
    event = watch.next_event(timeout=10)
    elapsed = time.monotonic() - started
    assert isinstance(event, InstallationChange) and event.summary.health is Health.CRITICAL
    # LISTEN/NOTIFY wakes node A, its 500 ms poll is the backstop (the
    # bound is loose for a busy machine; the Rust end-to-end test holds 1 s).
    assert elapsed < 2, f"{elapsed:.2f} s"


def test_two_services_on_one_sqlite_file_share_the_feed(sqlite_db: Path) -> None:
    first = carewatch.Carewatch.open(sqlite_db)
    site = provision(first)
    watch = first.watch(site.token)
    site.cw = carewatch.Carewatch.open(sqlite_db)
    site.report([DISK_FULL])
    event = watch.next_event(timeout=10)
    assert isinstance(event, InstallationChange) and event.summary.health is Health.CRITICAL


def test_a_closed_watch_ends_and_frees_its_place_among_the_live_views(site: Site) -> None:
    # A reseller has at most 2,000 live views open on a node.
    held = [site.cw.watch(site.token) for _ in range(2000)]
    with pytest.raises(carewatch.LimitReached):
        site.cw.watch(site.token)
    held[0].close()
    held[0].close()  # again: nothing
    assert held[0].next_event(timeout=0.1) is None
    assert list(held[0]) == []
    with site.cw.watch(site.token) as watch:
        assert isinstance(watch, carewatch.Watch)
    # Left the block: closed, so one more fits again.
    site.cw.watch(site.token).close()
    assert watch.next_event(timeout=0.1) is None
