"""Simulated recording servers for the browser tests.

Messages are sealed by the independent PROTOCOL.md client
(`bindings-python/tests/protocol_client.py`, built on `cryptography`) and sent
over gRPC with stubs generated from `ingest.proto` at test time.

A background thread keeps every simulated server heartbeating, so installations
that should look Healthy stay Healthy however long the run takes; status
reports are sent from the tests, under the same per-server lock, so sequence
numbers always reach the server in order.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bindings-python" / "tests"))

import protocol_client as pc  # noqa: E402  (found through the path above)

PROTO = REPO / "frontend-grpc" / "proto" / "carewatch" / "v1" / "ingest.proto"


def generated_stubs(out: Path) -> Tuple[Any, Any]:
    """`ingest_pb2` and `ingest_pb2_grpc`, generated from the .proto now (the
    file is renamed so its module does not shadow the `carewatch` package)."""
    protoc: Any = importlib.import_module("grpc_tools.protoc")
    well_known = Path(importlib.import_module("grpc_tools").__file__ or "").parent / "_proto"
    source = out / "cw_browser_ingest_v1.proto"
    shutil.copyfile(PROTO, source)
    status = protoc.main(
        ["protoc", f"-I{out}", f"-I{well_known}", f"--python_out={out}",
         f"--grpc_python_out={out}", str(source)]
    )
    assert status == 0, "protoc failed on ingest.proto"
    sys.path.insert(0, str(out))
    try:
        return (
            importlib.import_module("cw_browser_ingest_v1_pb2"),
            importlib.import_module("cw_browser_ingest_v1_pb2_grpc"),
        )
    finally:
        sys.path.remove(str(out))


class _Server:
    """One recording server: its key, its next sequence number, its lock."""

    def __init__(self, slc: str, server: str, key: pc.InstallationKey) -> None:
        self.slc, self.server, self.key = slc, server, key
        self.sequence = 0
        self.nonces = pc.NonceSource()
        self.lock = threading.Lock()


class Fleet:
    """Recording servers at several installations, over one gRPC channel."""

    def __init__(self, port: int, ca_cert: Path, stubs_dir: Path, beat_every: float) -> None:
        self.grpc: Any = importlib.import_module("grpc")
        self.pb, pb_grpc = generated_stubs(stubs_dir)
        credentials = self.grpc.ssl_channel_credentials(root_certificates=ca_cert.read_bytes())
        self.channel = self.grpc.secure_channel(
            f"127.0.0.1:{port}", credentials,
            options=[("grpc.ssl_target_name_override", "localhost")],
        )
        self.stub = pb_grpc.IngestStub(self.channel)
        self.beat_every = beat_every
        self.servers: Dict[Tuple[str, str], _Server] = {}
        self.errors: List[str] = []  # trouble sending, for failure messages
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeats", daemon=True)

    def add(self, slc: str, key: pc.InstallationKey, servers: Sequence[str]) -> None:
        for server in servers:
            self.servers[(slc, server)] = _Server(slc, server, key)

    def _send(self, s: _Server, kind: int, plaintext: bytes) -> Any:
        with s.lock:
            s.sequence += 1
            sealed = pc.seal(s.key, s.slc, s.server, kind, s.sequence, plaintext, s.nonces.next())
            message = self.pb.SealedMessage(
                slc=s.slc, recording_server_id=s.server, sequence=s.sequence, sealed=sealed
            )
            call = self.stub.Heartbeat if kind == pc.HEARTBEAT else self.stub.StatusReport
            return call(message, timeout=10)

    def heartbeat(self, slc: str, server: str) -> Any:
        return self._send(self.servers[(slc, server)], pc.HEARTBEAT, b"")

    def status(self, slc: str, server: str, conditions: Sequence[pc.Condition]) -> Any:
        """A status report: the complete set of the server's current conditions."""
        return self._send(self.servers[(slc, server)], pc.STATUS_REPORT,
                          pc.encode_status(conditions))

    def heartbeat_all(self) -> None:
        for s in list(self.servers.values()):
            self._send(s, pc.HEARTBEAT, b"")

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.beat_every):
            started = time.monotonic()
            for s in list(self.servers.values()):
                try:
                    self._send(s, pc.HEARTBEAT, b"")
                except Exception as e:  # noqa: BLE001  (kept for the report, never fatal)
                    if not self._stop.is_set():
                        self.errors.append(f"{s.slc}/{s.server}: {e!r}")
            took = time.monotonic() - started
            if took > self.beat_every:
                self.errors.append(f"a round of heartbeats took {took:.2f} s")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self.channel.close()
