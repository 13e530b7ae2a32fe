"""The type stubs match the compiled module, and everything type-checks strictly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=PACKAGE, capture_output=True, text=True, timeout=600, check=False,
    )


def test_stubs_match_the_compiled_module() -> None:
    # Names, parameters, defaults and kinds of every function and method.
    result = run("mypy.stubtest", "carewatch._carewatch")
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_example_and_tests_pass_mypy_strict(tmp_path: Path) -> None:
    result = run(
        "mypy", "--strict", "--cache-dir", str(tmp_path), "python/carewatch", "examples", "tests"
    )
    assert result.returncode == 0, result.stdout + result.stderr
