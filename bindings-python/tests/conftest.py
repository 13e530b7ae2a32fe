"""Fixtures: a fresh Carewatch on SQLite and on PostgreSQL, and a provisioned site.

PostgreSQL is the real server named by CAREWATCH_TEST_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/test); each test gets a schema of its own.
A server that cannot be reached fails the tests: they are never skipped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, List, Sequence

import pytest

import carewatch

POSTGRES_URL = os.environ.get(
    "CAREWATCH_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"
)
REPO = Path(__file__).resolve().parents[2]


def fresh_schema_name() -> str:
    # The Rust tests' naming, so their sweep drops schemas a killed run left.
    return f"cw_test_{int(time.time())}_py{secrets.token_hex(5)}"


def drop_schema(name: str) -> None:
    psql = shutil.which("psql")
    if psql is not None:
        subprocess.run(
            [psql, POSTGRES_URL, "-q", "-c", f'DROP SCHEMA IF EXISTS "{name}" CASCADE'],
            check=False,
            capture_output=True,
            timeout=30,
        )


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    return tmp_path / "carewatch.db"


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    name = fresh_schema_name()
    yield name
    drop_schema(name)


def open_backend(
    backend: str, sqlite_db: Path, schema: str, **settings: object
) -> carewatch.Carewatch:
    if backend == "sqlite":
        return carewatch.Carewatch.open(sqlite_db, **settings)  # type: ignore[arg-type]
    return carewatch.Carewatch.open(
        POSTGRES_URL,
        schema=schema,
        master_key=carewatch.generate_master_key(),
        **settings,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cw(backend: str, sqlite_db: Path, postgres_schema: str) -> carewatch.Carewatch:
    return open_backend(backend, sqlite_db, postgres_schema)


@dataclass
class Site:
    """A reseller's customer installation, provisioned and ready to report."""

    cw: carewatch.Carewatch
    reseller: str
    token: str
    slc: str
    key: str
    sequence: int = 0
    servers: List[str] = field(default_factory=lambda: ["rs-1"])

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def heartbeat(self, server: str = "rs-1") -> carewatch.IngestAck:
        message = carewatch.seal_heartbeat(self.key, self.slc, server, self.next_sequence())
        return self.cw.ingest(message)

    def report(
        self, conditions: Sequence[carewatch.Condition], server: str = "rs-1"
    ) -> carewatch.IngestAck:
        message = carewatch.seal_status(
            self.key, self.slc, server, self.next_sequence(), conditions
        )
        return self.cw.ingest(message)


def provision(
    cw: carewatch.Carewatch,
    reseller: str = "acme-security",
    slc: str = "M01-C01-0001",
    consent: bool = True,
    subscribed: bool = True,
    create_reseller: bool = True,
    token: str = "",
) -> Site:
    if create_reseller:
        token = cw.create_reseller(reseller, reseller.upper())
    cw.register_installation(slc, reseller, "XProtect Corporate", "2016 R3")
    if consent:
        cw.set_consent(slc, True)
    if subscribed:
        cw.set_subscription(slc, datetime.now(timezone.utc) + timedelta(days=365))
    key = cw.issue_installation_key(slc)
    return Site(cw=cw, reseller=reseller, token=token, slc=slc, key=key)


@pytest.fixture
def site(cw: carewatch.Carewatch) -> Site:
    return provision(cw)
