"""PROTOCOL.md, followed by an independent client (`protocol_client`, built on
the `cryptography` package, not on the `carewatch` bindings): it reproduces
the test vectors byte for byte, and a real `carewatch serve` accepts what it
seals over gRPC and refuses what it must, with the documented kinds.

The server is the `carewatch` binary: `target/debug/carewatch` (built by
`cargo build --bin carewatch`), or the path in `CAREWATCH_BIN`.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

import protocol_client as pc

REPO = Path(__file__).resolve().parents[2]
VECTORS = pc.read_vectors(REPO / "core" / "testdata" / "protocol_vectors.txt")
PROTOCOL = REPO / "PROTOCOL.md"
# PROTOCOL.md, "Limits": the largest valid sealed message.
MAX_SEALED_MESSAGE_BYTES = 1_381_412
SLC = "M01-C01-0001"
SLC_AS_TYPED = "m01-c01-0001"


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vectors_are_reproduced_from_the_document(vector: pc.Vector) -> None:
    key = pc.InstallationKey.from_text(vector.fields["key"])
    slc = pc.normalise_slc(vector.fields["slc_typed"])
    assert slc == vector.fields["slc"]
    kind = pc.KINDS[vector.fields["kind"]]
    sequence = int(vector.fields["sequence"])
    server = vector.fields["server"]
    plaintext = pc.encode_status(vector.conditions) if kind == pc.STATUS_REPORT else b""
    assert plaintext == vector.bytes("plaintext")
    assert pc.associated_data(key.key_id, slc, server, kind, sequence) == vector.bytes("aad")
    sealed = pc.seal(
        key, vector.fields["slc_typed"], server, kind, sequence, plaintext, vector.bytes("nonce")
    )
    assert sealed.hex() == vector.fields["sealed"]
    assert pc.open_sealed(key, slc, server, kind, sequence, sealed) == plaintext


def test_the_nonce_source_never_repeats() -> None:
    source = pc.NonceSource()
    nonces = {source.next() for _ in range(10_000)}
    assert len(nonces) == 10_000 and all(len(n) == pc.NONCE_LEN for n in nonces)


# --- against a real server ------------------------------------------------------


def _documented_proto() -> str:
    """The gRPC service as PROTOCOL.md quotes it: what a vendor copies."""
    text = PROTOCOL.read_text(encoding="utf-8")
    blocks = re.findall(r"```proto\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, "PROTOCOL.md quotes the service once"
    block: str = blocks[0]
    return block


def _generated_stubs(out: Path) -> Tuple[Any, Any]:
    """`ingest_pb2` and `ingest_pb2_grpc`, generated now from the service as
    PROTOCOL.md quotes it. The file is named so its Python module does not
    shadow the `carewatch` package."""
    protoc: Any = importlib.import_module("grpc_tools.protoc")
    well_known = Path(importlib.import_module("grpc_tools").__file__ or "").parent / "_proto"
    source = out / "cw_ingest_v1.proto"
    source.write_text(_documented_proto(), encoding="utf-8")
    status = protoc.main(
        [
            "protoc",
            f"-I{out}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(source),
        ]
    )
    assert status == 0, "protoc failed on the service PROTOCOL.md quotes"
    sys.path.insert(0, str(out))
    try:
        return (
            importlib.import_module("cw_ingest_v1_pb2"),
            importlib.import_module("cw_ingest_v1_pb2_grpc"),
        )
    finally:
        sys.path.remove(str(out))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    process: "subprocess.Popen[str]"
    url: str
    data_dir: Path
    operator_token: str
    key: pc.InstallationKey
    grpc: Any
    pb: Any
    stub: Any

    def admin(self, *args: str) -> str:
        result = subprocess.run(
            [str(binary()), "admin", "--server", self.url,
             "--ca-cert", str(self.data_dir / "cert.pem"), *args],
            env={**os.environ, "CAREWATCH_TOKEN": self.operator_token},
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 0, f"admin {args}: {result.stdout}{result.stderr}"
        return result.stdout

    def message(self, slc: str, server: str, sequence: int, sealed: bytes) -> Any:
        return self.pb.SealedMessage(
            slc=slc, recording_server_id=server, sequence=sequence, sealed=sealed
        )


def binary() -> Path:
    return Path(os.environ.get("CAREWATCH_BIN", REPO / "target" / "debug" / "carewatch"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    exe = binary()
    assert exe.is_file(), f"{exe} is missing: run `cargo build --bin carewatch` or set CAREWATCH_BIN"
    grpc: Any = importlib.import_module("grpc")
    pb, pb_grpc = _generated_stubs(tmp_path_factory.mktemp("stubs"))
    data_dir = tmp_path_factory.mktemp("carewatch-data")
    port = _free_port()
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [str(exe), "serve", "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{port}", "--heartbeat-interval", "1s"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    lines: List[str] = []
    token_seen = threading.Event()

    def drain() -> None:  # keeps the pipe from filling, and finds the token
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "operator token" in line:
                token_seen.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert token_seen.wait(60), f"no operator token printed: {lines}"
        token = next(l for l in lines if "operator token" in l).rsplit(" ", 1)[1].strip()
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (data_dir / "server.log").read_text()
                assert time.monotonic() < deadline, "the server does not listen"
                time.sleep(0.1)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(data_dir / "cert.pem").read_bytes()
        )
        channel = grpc.secure_channel(
            f"127.0.0.1:{port}", credentials,
            options=[("grpc.ssl_target_name_override", "localhost"),
                     ("grpc.max_send_message_length", 4 * 1024 * 1024)],
        )
        srv = Server(process, f"https://127.0.0.1:{port}", data_dir, token,
                     pc.InstallationKey(0, b""), grpc, pb, pb_grpc.IngestStub(channel))
        srv.admin("add-reseller", "acme", "ACME Security")
        srv.admin("register", SLC, "acme", "--product", "XProtect Corporate", "--version", "2016")
        srv.admin("consent", SLC, "accept")
        until = (datetime.now(timezone.utc) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        srv.admin("subscription", SLC, until)
        issued = re.search(r"cwk1:\d+:[0-9a-fA-F]{64}", srv.admin("issue-key", SLC))
        assert issued, "issue-key printed no cwk1: key"
        srv.key = pc.InstallationKey.from_text(issued.group(0))
        yield srv
        channel.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def refusal(server: Server, call: Any, message: Any) -> Tuple[Any, str]:
    """The gRPC code and `carewatch-error` kind of a refused unary call."""
    with pytest.raises(server.grpc.RpcError) as refused:
        call(message, timeout=30)
    error = refused.value
    kinds = [v for k, v in (error.trailing_metadata() or ()) if k == "carewatch-error"]
    return error.code(), kinds[0] if kinds else ""


def test_a_real_server_accepts_what_the_document_seals(server: Server) -> None:
    grpc, key = server.grpc, server.key
    rs = "{8F1C2A3B-0D4E-4F5A-9B6C-7D8E9F0A1B2C}"
    nonces = pc.NonceSource()

    # The SLC travels as typed; the associated data holds its normal form.
    sealed = pc.seal(key, SLC_AS_TYPED, rs, pc.HEARTBEAT, 1, b"", nonces.next())
    ack = server.stub.Heartbeat(server.message(SLC_AS_TYPED, rs, 1, sealed), timeout=30)
    assert not ack.duplicate
    assert (ack.heartbeat_interval.seconds, ack.heartbeat_interval.nanos) == (1, 0)
    assert abs(ack.received_at.seconds - time.time()) < 60

    conditions = [("STORAGE_FULL", "D:\\Recordings", "100% used"),
                  ("CAMERA_UNREACHABLE", "Caméra 7", ""),
                  ("FAN_FAILURE", "Fan 2", "a code from a newer recording server")]
    report = pc.seal(key, SLC_AS_TYPED, rs, pc.STATUS_REPORT, 2,
                     pc.encode_status(conditions), nonces.next())
    ack = server.stub.StatusReport(server.message(SLC_AS_TYPED, rs, 2, report), timeout=30)
    assert not ack.duplicate

    # A retry is the same bytes: acknowledged again, as a duplicate.
    again = server.stub.StatusReport(server.message(SLC_AS_TYPED, rs, 2, report), timeout=30)
    assert again.duplicate

    # The same over the stream: one reply per message, in order.
    pb = server.pb
    wrong_key = pc.InstallationKey(key.key_id, bytes(32))
    outgoing = [
        pb.StreamMessage(kind=pb.MESSAGE_KIND_HEARTBEAT, message=server.message(
            SLC, rs, 3, pc.seal(key, SLC, rs, pc.HEARTBEAT, 3, b"", nonces.next()))),
        pb.StreamMessage(kind=pb.MESSAGE_KIND_HEARTBEAT, message=server.message(
            SLC, rs, 4, pc.seal(wrong_key, SLC, rs, pc.HEARTBEAT, 4, b"", nonces.next()))),
        pb.StreamMessage(kind=pb.MESSAGE_KIND_STATUS_REPORT, message=server.message(
            SLC, rs, 5, pc.seal(key, SLC, rs, pc.STATUS_REPORT, 5, pc.encode_status([]),
                                nonces.next()))),
    ]
    replies = list(server.stub.Stream(iter(outgoing), timeout=30))
    assert [r.sequence for r in replies] == [3, 4, 5]
    assert [r.WhichOneof("result") for r in replies] == ["ack", "refusal", "ack"]
    assert replies[1].refusal.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    if "kind" in pb.Refusal.DESCRIPTOR.fields_by_name:
        assert replies[1].refusal.kind == "cannot_decrypt"


def test_refusals_carry_their_documented_code_and_kind(server: Server) -> None:
    grpc, key, stub = server.grpc, server.key, server.stub
    rs = "rs-refusals"
    nonces = pc.NonceSource()

    def heartbeat(sequence: int, key: pc.InstallationKey = key, slc: str = SLC) -> Any:
        return server.message(slc, rs, sequence,
                              pc.seal(key, slc, rs, pc.HEARTBEAT, sequence, b"", nonces.next()))

    assert not stub.Heartbeat(heartbeat(10), timeout=30).duplicate

    def expect(code: Any, kind: str, call: Any, message: Any) -> None:
        assert refusal(server, call, message) == (code, kind)

    # Same key id, other bytes.
    expect(grpc.StatusCode.PERMISSION_DENIED, "cannot_decrypt", stub.Heartbeat,
           heartbeat(11, key=pc.InstallationKey(key.key_id, bytes(32))))
    # A key id the installation never had.
    expect(grpc.StatusCode.PERMISSION_DENIED, "cannot_decrypt", stub.Heartbeat,
           heartbeat(11, key=pc.InstallationKey(key.key_id + 1, key.secret)))
    # The SLC sealed as typed instead of in its normal form.
    aad = pc.associated_data(key.key_id, SLC_AS_TYPED, rs, pc.HEARTBEAT, 11)
    nonce = nonces.next()
    aesgcm: Any = importlib.import_module("cryptography.hazmat.primitives.ciphers.aead").AESGCM
    unnormalised = bytes([1]) + key.key_id.to_bytes(4, "big") + nonce + aesgcm(
        key.secret).encrypt(nonce, b"", aad)
    expect(grpc.StatusCode.PERMISSION_DENIED, "cannot_decrypt", stub.Heartbeat,
           server.message(SLC_AS_TYPED, rs, 11, unnormalised))
    # A heartbeat sent as a status report.
    expect(grpc.StatusCode.PERMISSION_DENIED, "cannot_decrypt", stub.StatusReport, heartbeat(11))
    # An older sequence number, and the latest one with other bytes.
    expect(grpc.StatusCode.FAILED_PRECONDITION, "replayed", stub.Heartbeat, heartbeat(9))
    expect(grpc.StatusCode.FAILED_PRECONDITION, "replayed", stub.Heartbeat, heartbeat(10))
    # SERVER_UNAVAILABLE is reserved; the payload is encoded by hand.
    reserved = bytes([1, 0, 1, 18]) + b"SERVER_UNAVAILABLE" + bytes(4)
    expect(grpc.StatusCode.INVALID_ARGUMENT, "malformed", stub.StatusReport,
           server.message(SLC, rs, 12, pc.seal(key, SLC, rs, pc.STATUS_REPORT, 12, reserved)))
    # A heartbeat is empty.
    expect(grpc.StatusCode.INVALID_ARGUMENT, "malformed", stub.Heartbeat,
           server.message(SLC, rs, 12, pc.seal(key, SLC, rs, pc.HEARTBEAT, 12, b"\x00")))
    # Nobody registered this SLC; this one is not an SLC at all.
    expect(grpc.StatusCode.NOT_FOUND, "unknown_installation", stub.Heartbeat,
           heartbeat(12, slc="M01-C01-9999"))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_input", stub.Heartbeat,
           server.message("M01_C01", rs, 12, b""))
    # None of the refusals moved the sequence on.
    assert not stub.Heartbeat(heartbeat(11), timeout=30).duplicate


def _largest_report() -> bytes:
    detail = "d" * 1024
    return pc.encode_status(
        [("X" * 64, f"{i:0256d}", detail) for i in range(1024)]
    )


def test_the_largest_valid_report_is_accepted_and_one_byte_more_is_too_large(
    server: Server,
) -> None:
    grpc, key = server.grpc, server.key
    rs = "rs-limits"
    sealed = pc.seal(key, SLC, rs, pc.STATUS_REPORT, 1, _largest_report())
    assert len(sealed) == MAX_SEALED_MESSAGE_BYTES
    ack = server.stub.StatusReport(server.message(SLC, rs, 1, sealed), timeout=60)
    assert not ack.duplicate
    oversized = server.message(SLC, rs, 2, sealed + b"\x00")
    assert refusal(server, server.stub.StatusReport, oversized) == (
        grpc.StatusCode.INVALID_ARGUMENT, "too_large"
    )

