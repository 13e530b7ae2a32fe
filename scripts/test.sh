#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, all Rust
# tests, the examples, and the Python package's tests.
# CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# The PostgreSQL suite runs against a real server: make sure the local one is up
# unless CAREWATCH_TEST_DATABASE_URL points elsewhere.
if [ -z "${CAREWATCH_TEST_DATABASE_URL:-}" ]; then
  export CAREWATCH_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "==> starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1; }
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "==> cargo test"
cargo test --workspace --all-features

echo "==> examples and the demo (the whole product, end to end)"
cargo run --quiet -p carewatch-storage-sqlite --example quickstart
RUST_LOG=warn cargo run --quiet -p carewatch-cli -- demo --interval 500ms > /dev/null

echo "==> the carewatch binary (the Python protocol test runs it)"
cargo build --quiet --bin carewatch

echo "==> Python package: built into a virtual environment, tested with pytest"
VENV="target/python-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "maturin>=1.9,<2" "pytest>=8" "mypy>=1.10" "cryptography>=42" "grpcio>=1.60" "grpcio-tools>=1.60"
rm -rf target/wheels
VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/maturin" build --quiet \
  --manifest-path bindings-python/Cargo.toml --interpreter "$VENV/bin/python" --out target/wheels
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps target/wheels/carewatch-*.whl
"$VENV/bin/python" -m pytest bindings-python -q -p no:cacheprovider || {
  status=$?
  [ "$status" -ne 5 ] || echo "pytest collected no tests: the Python suite did not run" >&2
  exit "$status"
}

echo "==> deployment files: compose.yaml, deploy/haproxy.cfg, Dockerfile (built where a Docker engine runs)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pyyaml>=6"
"$VENV/bin/python" scripts/check_deploy.py target/debug/carewatch

echo "==> browser tests (Chromium)"
# The web dashboard in Debian's Chromium, driven by Playwright (the system
# browser: Playwright's own browser download is never used), against the
# target/debug/carewatch built above for the protocol test.
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver || {
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
  }
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "playwright>=1.40,<2"
"$VENV/bin/python" -m pytest tests/browser -q -p no:cacheprovider || {
  status=$?
  [ "$status" -ne 5 ] || echo "pytest collected no tests: the browser suite did not run" >&2
  exit "$status"
}
