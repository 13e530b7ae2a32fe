"""Print a reseller's installations that need attention, worst first.

    python unhealthy_report.py carewatch-data/carewatch.db acme-security
    python unhealthy_report.py carewatch-data/carewatch.db "$RESELLER_TOKEN"

The database is a SQLite file (its master.key beside it, as `carewatch
serve` keeps them) or a postgres:// URL with CAREWATCH_MASTER_KEY set. The
reseller is an id, or a reseller token (checked).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from typing import Iterator, Optional

import carewatch


def ago(at: Optional[datetime], now: datetime) -> str:
    if at is None:
        return "never"
    seconds = int((now - at).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def needing_attention(cw: carewatch.Carewatch, reseller: str) -> Iterator[carewatch.OverviewRow]:
    after = None
    while True:
        page = cw.overview(reseller, page_size=500, after=after)
        yield from page.rows
        if page.next_page is None:
            return
        after = page.next_page


LABELS = {
    carewatch.Health.PENDING: "Pending",
    carewatch.Health.ATTENTION: "Attention",
    carewatch.Health.CRITICAL: "Critical",
    carewatch.Health.OFFLINE: "Offline",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", help="SQLite file or postgres:// URL")
    parser.add_argument("reseller", help="reseller id or reseller token")
    args = parser.parse_args()
    try:
        cw = carewatch.Carewatch.open(
            args.database, master_key=os.environ.get("CAREWATCH_MASTER_KEY")
        )
        # Bring availability up to date in case no `carewatch serve` is running.
        cw.sweep()
        now = datetime.now(timezone.utc)
        print(f"{'SLC':<20} {'health':<10} {'worst condition':<26} {'servers':>7}  last heard")
        for row in needing_attention(cw, args.reseller):
            s = row.summary
            worst = "-" if s.worst is None else str(getattr(s.worst, "value", s.worst))
            servers = f"{s.servers - s.unavailable}/{s.servers}"
            print(f"{row.slc:<20} {LABELS[row.health]:<10} {worst:<26} {servers:>7}  {ago(row.last_seen_at, now)}")
        totals = cw.overview(args.reseller, page_size=1).totals
    except carewatch.CarewatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    total = sum(totals.values())
    print(f"\n{total - totals[carewatch.Health.HEALTHY]} of {total} installations need attention")
    return 0


if __name__ == "__main__":
    sys.exit(main())
