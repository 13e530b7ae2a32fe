"""Calls into Rust release the GIL: other Python threads run meanwhile."""

from __future__ import annotations

import threading
import time
from typing import List

import carewatch
from carewatch import Condition, ConditionCode, Health

from conftest import Site


def test_another_thread_runs_while_a_watch_waits(site: Site) -> None:
    site.heartbeat()
    watch = site.cw.watch(site.token)

    def report_a_problem() -> None:
        time.sleep(0.2)
        site.report([Condition(ConditionCode.STORAGE_FULL, "D:", "full")])

    reporter = threading.Thread(target=report_a_problem)
    reporter.start()
    # Blocks in Rust; the reporter can only ingest if this thread let go of the GIL.
    event = watch.next_event(timeout=30)
    reporter.join()
    assert isinstance(event, carewatch.InstallationChange)
    assert (event.slc, event.previous, event.summary.health) == (site.slc, Health.HEALTHY, Health.CRITICAL)


def test_a_counter_thread_ticks_during_a_blocking_call(site: Site) -> None:
    watch = site.cw.watch(site.reseller, site.slc)
    ticks: List[float] = []
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.05)  # let it start ticking
    started = time.monotonic()
    assert watch.next_event(timeout=0.5) is None  # nothing happens: waits it out
    ended = time.monotonic()
    stop.set()
    counter.join()
    during = [t for t in ticks if started < t < ended]
    # Holding the GIL for the whole call would leave none.
    assert len(during) >= 10, f"{len(during)} ticks during a {ended - started:.2f} s call"

