//! The shared storage conformance suite, run against a real PostgreSQL
//! server (`CAREWATCH_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Each test gets a schema of its
//! own; every `open()` is a new pool on it, so two opens act as two nodes.

mod common;

use common::Postgres;

carewatch_core::store_conformance_tests!(Postgres);
