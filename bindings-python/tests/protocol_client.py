"""A recording-server sealer written from PROTOCOL.md alone.

It uses the `cryptography` package's AES-GCM and none of Carewatch's code, so
that the document, not the implementation, is what gets tested: if this
module and the Rust code agree, a vendor following the document will too.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HEARTBEAT = 1
STATUS_REPORT = 2
KINDS = {"heartbeat": HEARTBEAT, "status_report": STATUS_REPORT}

ENVELOPE_VERSION = 1
STATUS_FORMAT_VERSION = 1
AAD_LABEL = b"carewatch-envelope-v1"
NONCE_LEN = 12

_SLC = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*")
_SERVER = re.compile(r"[A-Za-z0-9\-_.:{}]{1,128}")
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")

Condition = Tuple[str, str, str]  # code, subject, detail


@dataclass(frozen=True)
class InstallationKey:
    key_id: int
    secret: bytes

    @classmethod
    def from_text(cls, text: str) -> "InstallationKey":
        """`cwk1:<key id, decimal>:<64 hex digits>`."""
        prefix, key_id, hex_digits = text.strip().split(":")
        if prefix != "cwk1" or len(hex_digits) != 64:
            raise ValueError("expected cwk1:<key id>:<64 hex digits>")
        number = int(key_id, 10)
        if not 0 <= number < 2**32:
            raise ValueError("the key id is a 32-bit unsigned number")
        return cls(number, bytes.fromhex(hex_digits))


def normalise_slc(typed: str) -> str:
    """The SLC's normal form: trimmed and upper-cased. It goes into the associated data."""
    slc = typed.strip()
    if not 4 <= len(slc) <= 64 or not _SLC.fullmatch(slc):
        raise ValueError(f"not an SLC: {typed!r}")
    return slc.upper()


def check_server_id(server: str) -> str:
    if not _SERVER.fullmatch(server):
        raise ValueError(f"not a recording-server id: {server!r}")
    return server


def associated_data(key_id: int, slc: str, server: str, kind: int, sequence: int) -> bytes:
    """PROTOCOL.md, "Associated data". `slc` must already be in its normal form."""
    slc_bytes, server_bytes = slc.encode("ascii"), server.encode("ascii")
    return b"".join(
        [
            AAD_LABEL,
            struct.pack(">BIH", ENVELOPE_VERSION, key_id, len(slc_bytes)),
            slc_bytes,
            struct.pack(">H", len(server_bytes)),
            server_bytes,
            struct.pack(">BQ", kind, sequence),
        ]
    )


def encode_status(conditions: Sequence[Condition]) -> bytes:
    """PROTOCOL.md, "Status payload"."""
    if len(conditions) > 1024:
        raise ValueError("at most 1024 conditions")
    out = [struct.pack(">BH", STATUS_FORMAT_VERSION, len(conditions))]
    for code, subject, detail in conditions:
        if not _CODE.fullmatch(code) or code == "SERVER_UNAVAILABLE":
            raise ValueError(f"not a code a recording server may send: {code!r}")
        subject_bytes, detail_bytes = subject.encode("utf-8"), detail.encode("utf-8")
        if len(subject_bytes) > 256 or len(detail_bytes) > 1024:
            raise ValueError("subject at most 256 bytes, detail at most 1024 bytes")
        out += [
            struct.pack(">B", len(code)),
            code.encode("ascii"),
            struct.pack(">H", len(subject_bytes)),
            subject_bytes,
            struct.pack(">H", len(detail_bytes)),
            detail_bytes,
        ]
    return b"".join(out)


class NonceSource:
    """The prefix-and-counter scheme: 8 random bytes, then a 32-bit counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8)
        self._counter = 0

    def next(self) -> bytes:
        if self._counter == 2**32:
            self._prefix, self._counter = os.urandom(8), 0
        nonce = self._prefix + struct.pack(">I", self._counter)
        self._counter += 1
        return nonce


def seal(
    key: InstallationKey,
    slc: str,
    server: str,
    kind: int,
    sequence: int,
    plaintext: bytes,
    nonce: Optional[bytes] = None,
) -> bytes:
    """The envelope: version, key id, nonce, ciphertext and tag.

    `slc` may be as typed; it is normalised for the associated data.
    """
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    if len(nonce) != NONCE_LEN:
        raise ValueError("the nonce is 12 bytes")
    aad = associated_data(key.key_id, normalise_slc(slc), check_server_id(server), kind, sequence)
    header = struct.pack(">BI", ENVELOPE_VERSION, key.key_id) + nonce
    return header + AESGCM(key.secret).encrypt(nonce, plaintext, aad)


def open_sealed(
    key: InstallationKey, slc: str, server: str, kind: int, sequence: int, sealed: bytes
) -> bytes:
    """Authenticates and decrypts; raises on any mismatch."""
    version, key_id = struct.unpack(">BI", sealed[:5])
    if version != ENVELOPE_VERSION or key_id != key.key_id:
        raise ValueError("another envelope version or key")
    aad = associated_data(key_id, normalise_slc(slc), server, kind, sequence)
    return AESGCM(key.secret).decrypt(sealed[5:17], sealed[17:], aad)


@dataclass
class Vector:
    """One test vector of `core/testdata/protocol_vectors.txt`."""

    name: str
    fields: Dict[str, str] = field(default_factory=dict)
    conditions: List[Condition] = field(default_factory=list)

    def bytes(self, name: str) -> bytes:
        return bytes.fromhex(self.fields[name])


def read_vectors(path: Path) -> List[Vector]:
    """`[name]` starts a vector; `field = value` lines; a line that starts with
    white space continues the previous value; `#` starts a comment line."""
    vectors: List[Vector] = []
    last = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            vectors.append(Vector(line.strip().strip("[]")))
        elif line[0].isspace():
            vectors[-1].fields[last] += line.strip()
        else:
            name, _, value = line.partition("=")
            last, value = name.strip(), value.strip()
            if last == "condition":
                code, subject, detail = (part.strip() for part in value.split("|"))
                vectors[-1].conditions.append((code, subject, detail))
            else:
                vectors[-1].fields[last] = value
    return vectors
