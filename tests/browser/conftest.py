"""Fixtures for the browser tests: a real `carewatch serve`, the operator's
setup through the `carewatch admin` CLI, simulated recording servers, and
Debian's Chromium driven by Playwright.

The server is `target/debug/carewatch` (`cargo build --bin carewatch`) or the
binary in `CAREWATCH_BIN`; the browser is `/usr/bin/chromium` or the one in
`CAREWATCH_CHROMIUM`. Everything is started once per run and stopped at the
end (the server with SIGTERM).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from recording_servers import REPO, Fleet, pc

BINARY = Path(os.environ.get("CAREWATCH_BIN", REPO / "target" / "debug" / "carewatch"))
CHROMIUM = os.environ.get("CAREWATCH_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "target" / "screenshots"

# The server's heartbeat interval and jitter: a server that misses one
# heartbeat is Late 1.2 s after its last message. The simulated servers beat
# five times as often, so a Healthy installation stays Healthy on a busy machine.
HEARTBEAT_INTERVAL = "1s"
JITTER = "200ms"
BEAT_EVERY = 0.2

RESELLER = "acme"
OTHER_RESELLER = "globex"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Sites:
    """The installations the operator provisioned."""

    healthy: str = "BRW-HEALTHY-01"   # acme; heartbeats, no conditions
    full: str = "BRW-FULL-02"         # acme; rs-1 reports STORAGE_FULL, rs-2 is fine
    pending: str = "BRW-PENDING-03"   # acme; registered, never reported
    live: str = "BRW-LIVE-04"         # acme; healthy until the live test's report
    other: str = "BRW-OTHER-05"       # globex; healthy, never acme's

    def acme(self) -> List[str]:
        return [self.healthy, self.full, self.pending, self.live]


SITES = Sites()
STORAGE_FULL: List[pc.Condition] = [("STORAGE_FULL", "D:\\Recordings", "100% used")]


@dataclass
class Server:
    """The running `carewatch serve`."""

    process: "subprocess.Popen[str]"
    port: int
    data_dir: Path
    operator_token: str
    log: Path
    output: List[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """Where the browser goes (the certificate is self-signed: the
        browser contexts ignore HTTPS errors)."""
        return f"https://127.0.0.1:{self.port}"

    def admin(self, *args: str) -> str:
        """`carewatch admin <args>` as the operator; its standard output."""
        result = subprocess.run(
            [str(BINARY), "admin", *args],
            env={
                **os.environ,
                "CAREWATCH_SERVER": f"https://localhost:{self.port}",
                "CAREWATCH_CA_CERT": str(self.data_dir / "cert.pem"),
                "CAREWATCH_TOKEN": self.operator_token,
            },
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 0, f"admin {args}: {result.stdout}{result.stderr}"
        return result.stdout

    def invite(self, login: str, role: str) -> str:
        """Invites `login` to acme's team; the one-time link's secret (after `#`)."""
        out = self.admin("add-user", RESELLER, login, "--role", role)
        link = re.search(r"https://\S+/invite#(\S+)", out)
        assert link, f"add-user printed no invitation link: {out!r}"
        return link.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert BINARY.is_file(), (
        f"{BINARY} is missing: run `cargo build --bin carewatch` or set CAREWATCH_BIN"
    )
    data_dir = tmp_path_factory.mktemp("carewatch-data")
    port = _free_port()
    log_path = data_dir / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(BINARY), "serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}",
         "--heartbeat-interval", HEARTBEAT_INTERVAL, "--jitter", JITTER],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "RUST_LOG": "warn"},
    )
    srv = Server(process, port, data_dir, "", log_path)
    token_seen = threading.Event()

    def drain() -> None:  # keeps the pipe from filling, and finds the token
        assert process.stdout is not None
        for line in process.stdout:
            srv.output.append(line)
            if "operator token" in line:
                token_seen.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert token_seen.wait(60), f"no operator token printed: {srv.output}"
        line = next(l for l in srv.output if "operator token" in l)
        srv.operator_token = line.rsplit(" ", 1)[1].strip()
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server does not listen"
                time.sleep(0.05)
        yield srv
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode == 0, (
        f"the server did not stop cleanly on SIGTERM ({process.returncode}): "
        + log_path.read_text()[-4000:]
    )


@dataclass
class Provisioned:
    """The operator's setup, and the recording servers sending for it."""

    sites: Sites
    fleet: Fleet
    keys: Dict[str, pc.InstallationKey]


@pytest.fixture(scope="session")
def provisioned(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Provisioned]:
    """Two resellers and five installations, set up through the CLI as an
    operator would, then the recording servers' first messages."""
    sites = SITES
    server.admin("add-reseller", RESELLER, "ACME Security")
    server.admin("add-reseller", OTHER_RESELLER, "Globex Alarm")
    owners = [(slc, RESELLER) for slc in sites.acme()] + [(sites.other, OTHER_RESELLER)]

    def provision(owner: Tuple[str, str]) -> Tuple[str, pc.InstallationKey]:
        slc, reseller = owner
        server.admin("register", slc, reseller, "--product", "XProtect Corporate",
                     "--version", "2016")
        server.admin("consent", slc, "accept")
        server.admin("subscription", slc, "2030-01-01T00:00:00Z")
        issued = re.search(r"cwk1:\d+:[0-9a-fA-F]{64}", server.admin("issue-key", slc))
        assert issued, f"issue-key {slc} printed no cwk1: key"
        return slc, pc.InstallationKey.from_text(issued.group(0))

    with ThreadPoolExecutor(max_workers=len(owners)) as pool:
        keys = dict(pool.map(provision, owners))

    fleet = Fleet(server.port, server.data_dir / "cert.pem",
                  tmp_path_factory.mktemp("stubs"), BEAT_EVERY)
    fleet.add(sites.healthy, keys[sites.healthy], ["rs-1"])
    fleet.add(sites.full, keys[sites.full], ["rs-1", "rs-2"])
    fleet.add(sites.live, keys[sites.live], ["rs-1"])
    fleet.add(sites.other, keys[sites.other], ["rs-1"])
    # Pending never sends anything.
    try:
        fleet.heartbeat_all()
        # rs-1's camera drops and comes back (a resolved condition in the
        # history), then its recording drive fills up.
        fleet.status(sites.full, "rs-1", [("CAMERA_UNREACHABLE", "Camera 7", "no answer")])
        fleet.status(sites.full, "rs-1", [])
        fleet.status(sites.full, "rs-1", STORAGE_FULL)
        fleet.status(sites.full, "rs-2", [])
        fleet.start()
        yield Provisioned(sites, fleet, keys)
    finally:
        fleet.stop()


# --- the browser -------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    assert Path(CHROMIUM).is_file(), (
        f"{CHROMIUM} is missing: `apt-get install -y chromium` or set CAREWATCH_CHROMIUM"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Person:
    """A member of acme's team, signed in in a browser context of their own."""

    login: str
    password: str
    context: Any
    # Where accepting the invitation led, and the response's status.
    landed_at: str
    landed_status: int


def new_context(browser: Any, server: Server, **options: Any) -> Any:
    context = browser.new_context(base_url=server.base_url, ignore_https_errors=True, **options)
    context.set_default_timeout(10_000)
    return context


def accept_invitation(browser: Any, server: Server, login: str, role: str) -> Person:
    """The operator invites `login`; they open the link in the browser, set
    a password, and are signed in."""
    secret = server.invite(login, role)
    context = new_context(browser, server)
    page = context.new_page()
    page.goto(f"/invite#{secret}")
    # live.js copies the code from the link into the form and hides its field.
    assert page.locator("#code").input_value() == secret
    assert page.locator("#invite-code-field").is_hidden()
    assert "#" not in page.url, "the secret stays in the address bar"
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    with page.expect_navigation() as navigation:
        page.click("#invite-form button[type=submit]")
    response = navigation.value
    person = Person(login, PASSWORD, context, page.url, response.status if response else 0)
    page.close()
    return person


@pytest.fixture(scope="session")
def admin(browser: Any, server: Server, provisioned: Provisioned) -> Iterator[Person]:
    person = accept_invitation(browser, server, "admin@acme.example", "admin")
    yield person
    person.context.close()


@pytest.fixture(scope="session")
def viewer(browser: Any, server: Server, provisioned: Provisioned) -> Iterator[Person]:
    person = accept_invitation(browser, server, "viewer@acme.example", "viewer")
    yield person
    person.context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
