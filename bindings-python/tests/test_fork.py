"""A process forked after Carewatch was used (multiprocessing's default on
Linux, gunicorn and Celery workers) opens its own and works; an object
opened before the fork says so in the child instead of waiting forever."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import carewatch


def child(parent: carewatch.Carewatch, tmp_path: Path) -> int:
    """The child's checks, as an exit status: 0 when all hold."""
    try:
        own = carewatch.Carewatch.open(tmp_path / "child.db")
        own.create_reseller("beta", "Beta")
        if len(own.resellers()) != 1:
            return 3
        try:
            parent.resellers()
        except RuntimeError as refused:
            return 0 if "another process" in str(refused) else 4
        return 5
    except BaseException:  # noqa: BLE001 - any failure is the child's status
        return 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_opens_its_own_and_refuses_the_parent_s(tmp_path: Path) -> None:
    parent = carewatch.Carewatch.open(tmp_path / "parent.db")
    parent.create_reseller("acme-security", "ACME")
    pid = os.fork()
    if pid == 0:
        os._exit(child(parent, tmp_path))
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.05)
    assert os.WIFEXITED(status), status
    assert os.WEXITSTATUS(status) == 0, f"the child's check {os.WEXITSTATUS(status)} failed"
    assert [r.id for r in parent.resellers()] == ["acme-security"], "the parent is unaffected"
