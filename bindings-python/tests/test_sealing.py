"""Sealing as a recording server does it: round trips and tamper refusal."""

from __future__ import annotations

import dataclasses
import os

import pytest

import carewatch
from carewatch import Condition, ConditionCode, MessageKind

KEY = carewatch.generate_installation_key(3)
SLC, SERVER = "M01-C01-0001", "{7A1B-RS}"
NONCE = slice(5, 17)  # envelope v1: version, key id, then the nonce
CONDITIONS = [
    Condition(ConditionCode.STORAGE_FULL, "D:\\Recordings", "100% used"),
    Condition(ConditionCode.CAMERA_UNREACHABLE, "Lobby camera"),
    Condition("NEWER_CODE_7", "subject ü", " ".join(["detail"] * 100)),
]


def test_heartbeat_round_trip() -> None:
    message = carewatch.seal_heartbeat(KEY, SLC, SERVER, 42)
    assert (message.slc, message.server, message.kind, message.sequence) == (SLC, SERVER, MessageKind.HEARTBEAT, 42)
    assert carewatch.open_message(KEY, message) is None
    assert "sealed" not in repr(message)  # bytes are not dumped into logs


def test_status_round_trip() -> None:
    message = carewatch.seal_status(KEY, SLC, SERVER, 43, CONDITIONS)
    assert message.kind is MessageKind.STATUS_REPORT
    assert carewatch.open_message(KEY, message) == CONDITIONS
    assert carewatch.open_message(KEY, carewatch.seal_status(KEY, SLC, SERVER, 44, [])) == []


def test_each_seal_is_fresh() -> None:
    first = carewatch.seal_heartbeat(KEY, SLC, SERVER, 1)
    second = carewatch.seal_heartbeat(KEY, SLC, SERVER, 1)
    assert first.sealed != second.sealed  # a new nonce every time


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads running
def test_a_forked_child_does_not_repeat_its_parents_nonces() -> None:
    carewatch.seal_heartbeat(KEY, SLC, SERVER, 1)  # draws this thread's nonce prefix
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hand its next nonce to the parent, then leave at once
        try:
            os.write(write_end, carewatch.seal_heartbeat(KEY, SLC, SERVER, 2).sealed[NONCE])
        finally:
            os._exit(0)
    os.close(write_end)
    parent_nonce = carewatch.seal_heartbeat(KEY, SLC, SERVER, 2).sealed[NONCE]
    child_nonce = os.read(read_end, 64)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_nonce) == len(parent_nonce) == 12
    assert child_nonce != parent_nonce, "parent and child drew the same nonce after fork"


def test_every_altered_byte_is_refused() -> None:
    message = carewatch.seal_status(KEY, SLC, SERVER, 7, CONDITIONS[:1])
    for position in range(len(message.sealed)):
        altered = bytearray(message.sealed)
        altered[position] ^= 0x40
        with pytest.raises(carewatch.CannotDecrypt):
            carewatch.open_message(KEY, dataclasses.replace(message, sealed=bytes(altered)))


@pytest.mark.parametrize(
    "change",
    [
        {"slc": "M01-C01-0002"},
        {"server": "another-server"},
        {"sequence": 8},
        {"kind": MessageKind.HEARTBEAT},
        {"sealed": b""},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_message_opens_only_for_what_it_was_sealed_for(change: dict) -> None:  # type: ignore[type-arg]
    message = carewatch.seal_status(KEY, SLC, SERVER, 7, [])
    with pytest.raises(carewatch.CannotDecrypt):
        carewatch.open_message(KEY, dataclasses.replace(message, **change))


def test_wrong_key_is_refused() -> None:
    message = carewatch.seal_heartbeat(KEY, SLC, SERVER, 1)
    with pytest.raises(carewatch.CannotDecrypt, match=r"sealed with key #3, not with the key given \(#1\)"):
        carewatch.open_message(carewatch.generate_installation_key(1), message)
    with pytest.raises(carewatch.CannotDecrypt, match="authentication failed"):
        carewatch.open_message(carewatch.generate_installation_key(3), message)


def test_bad_sealing_input_is_refused() -> None:
    with pytest.raises(carewatch.InvalidInput, match="listed twice"):
        carewatch.seal_status(KEY, SLC, SERVER, 1, [CONDITIONS[0], CONDITIONS[0]])
    with pytest.raises(carewatch.InvalidInput):
        carewatch.seal_status(KEY, SLC, SERVER, 1, [Condition("lower_case", "x")])
    with pytest.raises(carewatch.InvalidInput):
        carewatch.seal_heartbeat("cwk1:1:nothex", SLC, SERVER, 1)
    with pytest.raises(carewatch.InvalidInput, match="message kind"):
        carewatch.seal_message(KEY, SLC, SERVER, "telegram", 1, b"")
    with pytest.raises(carewatch.InvalidInput, match="out of range"):
        carewatch.seal_heartbeat(KEY, SLC, SERVER, -1)


def test_catalogue_matches_the_enum() -> None:
    catalogue = carewatch.condition_catalogue()
    assert [code for code, _, _ in catalogue] == list(ConditionCode)
    assert {severity for _, severity, _ in catalogue} == {"warning", "critical"}
