"""The whole flow through the facade, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import carewatch
from carewatch import Condition, ConditionCode, Health, HistoryKind

from conftest import Site, provision

DISK_FULL = Condition(ConditionCode.STORAGE_FULL, "D:\\Recordings", "100% used")


def test_register_ingest_overview(site: Site) -> None:
    cw = site.cw
    ack = site.heartbeat()
    assert not ack.duplicate
    assert ack.heartbeat_interval == timedelta(seconds=60)
    assert ack.received_at.tzinfo is not None
    # One heartbeat: healthy, so the default overview (problems only) is empty.
    page = cw.overview(site.token)
    assert page.rows == ()
    assert page.totals[Health.HEALTHY] == 1

    site.report([DISK_FULL])
    page = cw.overview(site.token)
    [row] = page.rows
    assert row.slc == site.slc
    assert row.health is Health.CRITICAL
    assert row.summary.worst is ConditionCode.STORAGE_FULL
    assert row.summary.servers == 1
    assert row.product == carewatch.Product("XProtect Corporate", "2016 R3")
    assert page.totals[Health.CRITICAL] == 1 and page.next_page is None

    detail = cw.installation(site.token, site.slc)
    assert detail.health is Health.CRITICAL
    assert [c.code for c in detail.active_conditions] == [ConditionCode.STORAGE_FULL]
    assert detail.active_conditions[0].subject == "D:\\Recordings"
    assert [s.id for s in detail.servers] == ["rs-1"]
    assert detail.servers[0].availability.state is carewatch.AvailabilityState.AVAILABLE
    assert {e.kind for e in detail.history} == {
        HistoryKind.FIRST_SEEN,
        HistoryKind.CONDITION_OPENED,
    }

    # All clear again: resolved, healthy, out of the default overview.
    site.report([])
    assert cw.overview(site.reseller).rows == ()
    assert cw.overview(site.reseller, include_healthy=True).rows[0].health is Health.HEALTHY
    resolved = [e for e in cw.installation(site.reseller, site.slc).history
                if e.kind is HistoryKind.CONDITION_RESOLVED]
    assert resolved and resolved[0].code is ConditionCode.STORAGE_FULL
    assert resolved[0].duration is not None and resolved[0].duration >= timedelta(0)


def test_results_are_frozen_comparable_and_readable(site: Site) -> None:
    site.report([DISK_FULL])
    first = site.cw.overview(site.token)
    assert first == site.cw.overview(site.token)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.rows[0].slc = "other"  # type: ignore[misc]
    text = repr(first.rows[0])
    assert "M01-C01-0001" in text and "Health.CRITICAL" in text
    # Condition codes compare with their text too.
    assert first.rows[0].summary.worst == "STORAGE_FULL"


def test_a_retry_is_acknowledged_once(site: Site) -> None:
    message = carewatch.seal_status(site.key, site.slc, "rs-1", 7, [DISK_FULL])
    assert not site.cw.ingest(message).duplicate
    assert site.cw.ingest(message).duplicate
    detail = site.cw.installation(site.reseller, site.slc)
    assert len([e for e in detail.history if e.kind is HistoryKind.CONDITION_OPENED]) == 1


def test_unknown_condition_codes_are_kept(site: Site) -> None:
    site.report([Condition("GPU_OVERHEATING", "GPU0", "95 C")])
    [condition] = site.cw.installation(site.reseller, site.slc).active_conditions
    assert condition.code == "GPU_OVERHEATING"
    assert not isinstance(condition.code, ConditionCode)


def test_pages_follow_the_cursor(cw: carewatch.Carewatch) -> None:
    token = cw.create_reseller("acme-security", "ACME")
    for n in range(5):
        provision(cw, slc=f"M01-C01-000{n}", create_reseller=False, token=token)
    seen = []
    after = None
    while True:
        page = cw.overview(token, include_healthy=True, page_size=2, after=after)
        seen += [row.slc for row in page.rows]
        if page.next_page is None:
            break
        after = page.next_page
    assert seen == [f"M01-C01-000{n}" for n in range(5)]
    assert page.totals[Health.PENDING] == 5


def test_operator_actions(cw: carewatch.Carewatch) -> None:
    cw.create_reseller("acme-security", "ACME Security")
    [reseller] = cw.resellers()
    assert reseller.id == "acme-security" and reseller.name == "ACME Security"
    assert reseller.created_at.tzinfo is not None
    installation = cw.register_installation("m01-c01-0001", "acme-security", "XProtect", "1")
    assert installation.slc == "M01-C01-0001"  # normalised
    assert (installation.consent, installation.subscription_expires_at) == (False, None)
    until = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    assert cw.set_subscription("M01-C01-0001", until).subscription_expires_at == until
    assert cw.set_consent("M01-C01-0001", True).consent
    assert cw.set_product("M01-C01-0001", "XProtect", "2").product.version == "2"
    new_token = cw.rotate_reseller_token("acme-security")
    assert cw.authenticate_reseller(new_token) == "acme-security"
    operator = cw.issue_operator_token("admin")
    with pytest.raises(carewatch.Unauthenticated):
        cw.authenticate_reseller(operator)


def test_retired_keys_are_refused(site: Site) -> None:
    second = site.cw.issue_installation_key(site.slc)
    assert second.startswith("cwk1:2:")
    site.cw.retire_installation_key(site.slc, 1)
    with pytest.raises(carewatch.CannotDecrypt):
        site.heartbeat()
    site.key = second
    assert not site.heartbeat().duplicate


def test_sweep_marks_silent_servers(backend: str, sqlite_db: Path, postgres_schema: str) -> None:
    from conftest import open_backend
    import time

    cw = open_backend(
        backend, sqlite_db, postgres_schema,
        heartbeat_interval=0.1, jitter_tolerance=0.0, unavailable_after=1,
    )
    site = provision(cw)
    site.heartbeat()
    time.sleep(0.25)
    report = cw.sweep()
    assert report.evaluated >= 1 and report.installations_changed == 1
    [row] = cw.overview(site.token).rows
    assert row.health is Health.OFFLINE
    assert row.summary.worst is ConditionCode.SERVER_UNAVAILABLE
    assert cw.tick().installations_changed == 0


def test_sqlite_keeps_data_and_master_key_across_opens(sqlite_db: Path) -> None:
    cw = carewatch.Carewatch.open(str(sqlite_db))
    site = provision(cw)
    key_file = sqlite_db.parent / "master.key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    del cw
    reopened = carewatch.Carewatch.open(sqlite_db)
    assert "SQLite" in repr(reopened)
    site.cw = reopened
    # The installation key, stored sealed under master.key, still opens messages.
    assert not site.heartbeat().duplicate
    assert reopened.overview(site.token, include_healthy=True).rows[0].slc == site.slc


def test_a_master_key_rotates_with_the_earlier_one_kept_until_resealed(sqlite_db: Path) -> None:
    old, new = carewatch.generate_master_key(), carewatch.generate_master_key()
    site = provision(carewatch.Carewatch.open(sqlite_db, master_key=old))
    site.heartbeat()
    # The new key alone opens none of the stored keys: refused at open.
    with pytest.raises(carewatch.InvalidInput, match="opens none"):
        carewatch.Carewatch.open(sqlite_db, master_key=new)
    rotating = carewatch.Carewatch.open(sqlite_db, master_key=new, previous_master_keys=[old])
    site.cw = rotating
    assert not site.heartbeat().duplicate
    old_fingerprint = carewatch.Carewatch.open(sqlite_db, master_key=old).reseal_secrets().current_key
    with pytest.raises(carewatch.InvalidInput, match="not " + old_fingerprint):
        rotating.reseal_secrets(expected_current_key=old_fingerprint)
    report = rotating.reseal_secrets()
    assert (report.keys_resealed, report.keys_current, report.unopenable) == (1, 0, 0)
    assert report.previous_keys == 1 and report.complete and report.current_key != old_fingerprint
    assert rotating.reseal_secrets(expected_current_key=report.current_key).keys_current == 1
    site.cw = carewatch.Carewatch.open(sqlite_db, master_key=new)
    assert not site.heartbeat().duplicate


def test_a_rotation_never_makes_up_the_current_key(tmp_path: Path) -> None:
    # The key file beside a new database is made on first use, but not while
    # earlier keys are given: a new random key would receive every secret.
    database = tmp_path / "carewatch.db"
    with pytest.raises(carewatch.InvalidInput, match="must be in place"):
        carewatch.Carewatch.open(database, previous_master_keys=[carewatch.generate_master_key()])
    assert not (tmp_path / "master.key").exists()
    assert not database.exists(), "a refused open leaves no empty database behind"
    carewatch.Carewatch.open(database)
    assert (tmp_path / "master.key").exists()


def test_postgres_needs_the_master_key(postgres_schema: str) -> None:
    from conftest import POSTGRES_URL

    with pytest.raises(carewatch.InvalidInput, match="master_key"):
        carewatch.Carewatch.open(POSTGRES_URL, schema=postgres_schema)


def test_two_nodes_share_one_postgres_database(postgres_schema: str) -> None:
    from conftest import POSTGRES_URL

    master = carewatch.generate_master_key()
    node_a = carewatch.Carewatch.open(POSTGRES_URL, schema=postgres_schema, master_key=master, node_id="a")
    node_b = carewatch.Carewatch.open(POSTGRES_URL, schema=postgres_schema, master_key=master, node_id="b")
    site = provision(node_a)
    site.cw = node_b
    site.report([DISK_FULL])
    assert node_a.overview(site.token).rows[0].health is Health.CRITICAL


def test_labels_name_search_and_stay_with_their_reseller(site: Site) -> None:
    cw = site.cw
    site.heartbeat()
    stored = cw.set_labels(
        site.token, site.slc, customer=" Müller GmbH ", site="Hafen", tags=["VIP", "nord"]
    )
    assert stored == carewatch.Labels("Müller GmbH", "Hafen", "", ("nord", "vip"))
    [row] = cw.overview(site.token, include_healthy=True, search="MÜLLER").rows
    assert row.labels == stored
    assert cw.installation(site.token, site.slc).labels == stored
    assert cw.overview(site.token, include_healthy=True, search="weber").rows == ()
    with pytest.raises(carewatch.InvalidInput):
        cw.set_labels(site.token, site.slc, tags=["two words"])
    cw.create_reseller("other", "Other Security")
    with pytest.raises(carewatch.NotFound):
        cw.set_labels("other", site.slc, customer="Intruder")
    assert cw.installation(site.token, site.slc).labels == stored, "nothing changed"


def test_the_overview_sorts_by_customer_and_site(cw: carewatch.Carewatch) -> None:
    token = cw.create_reseller("acme-security", "ACME")
    named = [("Zoo Berlin", "Alpha"), ("Ärzte am Markt", "Zentrale"), ("", ""), ("bäcker", "Mitte")]
    for n, (customer, site_name) in enumerate(named, start=1):
        provision(cw, slc=f"M01-C01-000{n}", create_reseller=False, token=token)
        cw.set_labels(token, f"M01-C01-000{n}", customer=customer, site=site_name)

    def listed(sort: str, health: str | None = None, search: str | None = None) -> list[str]:
        seen: list[str] = []
        after = None
        while True:
            page = cw.overview(
                token,
                include_healthy=True,
                page_size=1,
                after=after,
                sort=sort,
                health=health,
                search=search,
            )
            seen += [row.slc for row in page.rows]
            if page.next_page is None:
                return seen
            after = page.next_page

    assert listed(sort="customer") == ["M01-C01-0002", "M01-C01-0004", "M01-C01-0001", "M01-C01-0003"]
    assert listed(sort="site") == ["M01-C01-0001", "M01-C01-0004", "M01-C01-0002", "M01-C01-0003"]
    # "ä" finds Ärzte and bäcker (any case), listed by site: Mitte, Zentrale.
    assert listed(sort="site", health="pending", search="ä") == ["M01-C01-0004", "M01-C01-0002"]
    assert listed(sort="site", health="healthy") == []
    worst_first = cw.overview(token, include_healthy=True, page_size=1)
    with pytest.raises(carewatch.InvalidInput, match="sorted by health"):
        cw.overview(token, include_healthy=True, sort="site", after=worst_first.next_page)
    with pytest.raises(carewatch.InvalidInput):
        cw.overview(token, sort="price")
    with pytest.raises(carewatch.InvalidInput):
        cw.overview(token, health="purple")


def test_a_decommissioned_server_stops_counting(site: Site) -> None:
    cw = site.cw
    site.heartbeat()
    assert cw.decommission_server(site.token, site.slc, "rs-1") is True
    detail = cw.installation(site.token, site.slc)
    [server] = detail.servers
    assert server.availability.state is carewatch.AvailabilityState.DECOMMISSIONED
    assert detail.summary.servers == 0
    assert HistoryKind.DECOMMISSIONED in {e.kind for e in detail.history}
    assert cw.decommission_server(site.token, site.slc, "rs-1") is False
    with pytest.raises(carewatch.NotFound):
        cw.decommission_server(site.token, site.slc, "rs-9")


def test_a_transfer_moves_it_and_the_audit_log_says_who(site: Site) -> None:
    cw = site.cw
    site.heartbeat()
    other = cw.create_reseller("other", "Other Security")
    moved = cw.transfer_installation(site.slc, "other")
    assert moved.reseller == "other"
    with pytest.raises(carewatch.NotFound):
        cw.installation(site.token, site.slc)
    detail = cw.installation(other, site.slc)
    assert detail.history == (), "the old reseller's history stays hidden"
    whole = cw.full_history(site.slc)
    assert [e.kind for e in whole] == [HistoryKind.FIRST_SEEN], "the operator's view"
    with pytest.raises(carewatch.NotFound):
        cw.full_history("M01-C01-0099")
    with pytest.raises(carewatch.InvalidInput):
        cw.transfer_installation(site.slc, "other")
    with pytest.raises(carewatch.NotFound):
        cw.transfer_installation(site.slc, "nobody")

    log = cw.audit_log()
    assert isinstance(log[0], carewatch.AuditEntry)
    assert (log[0].action, log[0].target, log[0].actor_kind, log[0].actor_name) == (
        "installation.transferred",
        site.slc,
        "operator",
        "local",
    )
    assert log[0].actor_reseller is None and "to other" in log[0].detail
    assert [e.id for e in log] == sorted((e.id for e in log), reverse=True)
    older = cw.audit_log(before=log[0].id, limit=1)
    assert [e.id for e in older] == [log[1].id]
    assert cw.audit_log(team="other") == [], "only the operator acted"
    with pytest.raises(carewatch.InvalidInput):
        cw.audit_log(team="Not An Id!")


def test_an_expired_installation_says_so(site: Site) -> None:
    cw = site.cw
    site.heartbeat()
    cw.set_subscription(site.slc, datetime(2000, 1, 1, tzinfo=timezone.utc))
    [row] = cw.overview(site.token, include_healthy=True).rows
    assert row.refused == "subscription_expired"
    cw.set_consent(site.slc, False)
    [row] = cw.overview(site.token, include_healthy=True).rows
    assert row.refused == "consent_withdrawn"


def test_uptime_report_is_typed_and_dataframe_friendly(site: Site) -> None:
    cw = site.cw
    site.heartbeat()
    time.sleep(0.05)  # some observed time: the month is reported up to now
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    report = cw.uptime_report(site.token, month=month)
    assert isinstance(report, carewatch.UptimeReport)
    assert report.reseller == site.reseller
    assert report.period_start == datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
    assert report.period_start < report.period_end <= datetime.now(timezone.utc)
    [installation] = report.installations
    assert installation.slc == site.slc
    assert installation.uptime.availability_percent == 100.0
    assert installation.uptime.outages == 0 and installation.uptime.mttr is None
    assert installation.uptime.down == timedelta(0)
    [server] = installation.servers
    assert server.server == "rs-1" and server.uptime.availability_percent == 100.0
    u = installation.uptime
    assert (
        u.unmonitored + u.excluded_own_downtime + u.excluded_maintenance + u.observed
        == report.period_end - report.period_start
    )

    rows = report.rows()
    header = report.csv.split("\r\n")[0].split(",")
    assert [list(r) for r in rows] == [header, header], "the CSV's columns, in order"
    assert [(r["kind"], r["server"]) for r in rows] == [
        ("installation", None),
        ("server", "rs-1"),
    ]
    assert rows[0]["availability_percent"] == 100.0 and rows[0]["mttr_s"] is None
    assert isinstance(rows[0]["observed_s"], float)
    assert json.loads(report.json)["version"] == 1
    assert json.loads(report.json)["installations"][0]["slc"] == site.slc

    one = cw.uptime_report(site.reseller, last_days=30, slc=site.slc)
    assert [i.slc for i in one.installations] == [site.slc]
    assert one.installations[0].uptime.unmonitored > timedelta(days=29)

    with pytest.raises(carewatch.InvalidInput):
        cw.uptime_report(site.token)
    with pytest.raises(carewatch.InvalidInput):
        cw.uptime_report(site.token, month=month, last_days=30)
    with pytest.raises(carewatch.InvalidInput):
        cw.uptime_report(site.token, month="2026-13")
    cw.create_reseller("other", "Other Security")
    assert cw.uptime_report("other", month=month).installations == ()
    with pytest.raises(carewatch.NotFound):
        cw.uptime_report("other", month=month, slc=site.slc)
