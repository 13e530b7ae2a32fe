#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, all tests.
# CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "==> cargo test"
cargo test --workspace --all-features

echo "==> examples"
cargo run --quiet -p carewatch-storage-sqlite --example quickstart
