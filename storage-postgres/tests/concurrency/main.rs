//! What only a shared database has to get right: several nodes (several
//! pools on one schema) writing the same rows at the same moment.

mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod support;
mod totals;
mod writes;
