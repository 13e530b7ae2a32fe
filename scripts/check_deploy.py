"""Checks the deployment files as far as a machine without a Docker engine
can: compose.yaml parses and describes PostgreSQL and two Carewatch nodes
behind one balancer that knows both; every `carewatch` flag and environment
variable they use is one the binary accepts; the Dockerfile is multi-stage,
runs as a non-root user and checks health through the gRPC health service.
Where a Docker engine answers, the image is built too.

    python scripts/check_deploy.py target/debug/carewatch
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def fail(message: str) -> None:
    print(f"deploy check: {message}", file=sys.stderr)
    sys.exit(1)


def help_text(binary: str, *command: str) -> str:
    return subprocess.run(
        [binary, *command, "--help"], check=True, capture_output=True, text=True
    ).stdout


def check_compose(binary: str) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose.get("services") or {}
    for name in ("postgres", "node-1", "node-2", "balancer"):
        if name not in services:
            fail(f"compose.yaml has no service {name!r}")
    serve_help = help_text(binary, "serve")
    health_help = help_text(binary, "health")
    node_ids = set()
    for name in ("node-1", "node-2"):
        node = services[name]
        env = node.get("environment") or {}
        node_ids.add(env.get("CAREWATCH_NODE_ID"))
        if not str(env.get("CAREWATCH_DATABASE_URL", "")).startswith("postgres://"):
            fail(f"{name}: no PostgreSQL URL")
        for variable in env:
            if variable not in serve_help and variable not in health_help:
                fail(f"{name}: carewatch knows no environment variable {variable}")
        command = node.get("command") or []
        if not command or command[0] != "serve":
            fail(f"{name}: does not run `carewatch serve`")
        for flag in [c for c in command if c.startswith("--")]:
            if not re.search(rf"\s{re.escape(flag)}[\s=]", serve_help):
                fail(f"{name}: `carewatch serve` has no flag {flag}")
        if node.get("healthcheck", {}).get("test") != ["CMD", "carewatch", "health"]:
            fail(f"{name}: the health check is not `carewatch health`")
        mounts = [str(v) for v in node.get("volumes") or []]
        if not any(m.endswith(":/var/lib/carewatch/master.key:ro") for m in mounts):
            fail(f"{name}: the shared master key is not mounted read-only")
        depends = node.get("depends_on") or {}
        if depends.get("postgres", {}).get("condition") != "service_healthy":
            fail(f"{name}: does not wait for a healthy PostgreSQL")
    if len(node_ids) != 2 or None in node_ids:
        fail(f"the nodes need distinct node ids, got {node_ids}")
    haproxy = (ROOT / "deploy" / "haproxy.cfg").read_text()
    for name in ("node-1", "node-2"):
        if not re.search(rf"^\s*server {name} {name}:7443 ", haproxy, re.MULTILINE):
            fail(f"the balancer does not send to {name}")
    if "mode tcp" not in haproxy:
        fail("the balancer must pass TLS through (mode tcp)")
    for name in ("node-1", "node-2"):
        if not re.search(rf"^\s*server {name} .*\sresolvers \S+", haproxy, re.MULTILINE):
            fail(f"the balancer resolves {name} only at start (a recreated node moves)")


def check_rotation_override(binary: str) -> None:
    """deploy/rotation.yaml gives both nodes an earlier master key, by a
    variable `carewatch serve` knows, from a read-only mount."""
    override = yaml.safe_load((ROOT / "deploy" / "rotation.yaml").read_text())
    serve_help = help_text(binary, "serve")
    for name in ("node-1", "node-2"):
        node = (override.get("services") or {}).get(name) or {}
        path = (node.get("environment") or {}).get("CAREWATCH_PREVIOUS_MASTER_KEY_FILES")
        if not path or "CAREWATCH_PREVIOUS_MASTER_KEY_FILES" not in serve_help:
            fail(f"deploy/rotation.yaml: {name} is given no earlier master key")
        mounts = [str(v) for v in node.get("volumes") or []]
        if not any(m.endswith(f":{path}:ro") for m in mounts):
            fail(f"deploy/rotation.yaml: {name}: {path} is not mounted read-only")


def check_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+", text, re.MULTILINE)
    if len(stages) < 2:
        fail("the Dockerfile is not multi-stage")
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    if not users or users[-1].split(":")[0] in ("0", "root"):
        fail("the image does not run as a non-root user")
    if not re.search(r'^\s*CMD \["carewatch", "health"\]', text, re.MULTILINE):
        fail("the image's health check is not `carewatch health`")


def maybe_build_image() -> None:
    docker = shutil.which("docker")
    engine = docker and subprocess.run(
        [docker, "info"], capture_output=True, text=True
    ).returncode == 0
    if not engine:
        print("deploy check: no Docker engine here; the image is not built")
        return
    subprocess.run([docker, "build", "-t", "carewatch:check", str(ROOT)], check=True)
    print("deploy check: image built")


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: check_deploy.py <carewatch binary>")
    check_compose(sys.argv[1])
    check_rotation_override(sys.argv[1])
    check_dockerfile()
    maybe_build_image()
    print(
        "deploy check: compose.yaml, deploy/rotation.yaml, deploy/haproxy.cfg "
        "and the Dockerfile are consistent"
    )


if __name__ == "__main__":
    main()
