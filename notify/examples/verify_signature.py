"""Verify a Carewatch webhook: its signature, and that it is not a replay.

Carewatch signs each webhook request with the channel's signing secret (shown
once when the channel is created):

    Carewatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>

A receiver recomputes the HMAC over the raw body bytes as received, compares
in constant time, and refuses timestamps more than 5 minutes away from its
own clock. Deduplicate deliveries by the Idempotency-Key header: a retry of
the same notification carries the same key (and a fresh signature).

Only the standard library is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """True if `header` signs `body` under `secret` and is at most 5 minutes old."""
    fields = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
        signature = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False  # too old (a replay) or from a clock far off
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), signature)


if __name__ == "__main__":
    # python3 verify_signature.py '<Carewatch-Signature header>' < body
    # with the secret in CAREWATCH_WEBHOOK_SECRET; exit status 0 if valid.
    import os
    import sys

    ok = verify(os.environ["CAREWATCH_WEBHOOK_SECRET"], sys.argv[1], sys.stdin.buffer.read())
    print("valid" if ok else "invalid")
    sys.exit(0 if ok else 1)
