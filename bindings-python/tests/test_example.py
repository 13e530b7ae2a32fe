"""examples/unhealthy_report.py, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import carewatch
from carewatch import Condition, ConditionCode

from conftest import REPO, provision

EXAMPLE = REPO / "bindings-python" / "examples" / "unhealthy_report.py"


def test_prints_only_the_installations_needing_attention(sqlite_db: Path) -> None:
    cw = carewatch.Carewatch.open(sqlite_db)
    sick = provision(cw, slc="M01-C01-0001")
    sick.report([Condition(ConditionCode.STORAGE_FULL, "D:\\Recordings", "100% used")])
    well = provision(cw, slc="M01-C01-0002", create_reseller=False, token=sick.token)
    well.report([])
    provision(cw, slc="M01-C01-0003", create_reseller=False, token=sick.token)  # never reported
    cw.create_reseller("other-reseller", "Other")
    del cw

    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(sqlite_db), sick.token],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "M01-C01-0001" in out and "STORAGE_FULL" in out and "Critical" in out
    assert "M01-C01-0003" in out and "Pending" in out
    assert "M01-C01-0002" not in out
    assert "2 of 3 installations need attention" in out


def test_refusals_are_reported_not_dumped(sqlite_db: Path) -> None:
    carewatch.Carewatch.open(sqlite_db).create_reseller("acme-security", "ACME")
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(sqlite_db), "cwr.acme-security." + "0" * 64],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "not authenticated" in result.stderr and "Traceback" not in result.stderr


def test_the_readme_s_python_example_runs_as_written(tmp_path: Path) -> None:
    # A newcomer copies it into a fresh directory: it must run there.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Using it from Python"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("```", start)]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "M01-C01-123-45 CRITICAL" in result.stdout, result.stdout
    assert (tmp_path / "carewatch-data" / "carewatch.db").exists()
