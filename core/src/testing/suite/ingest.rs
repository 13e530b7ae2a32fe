//! Ingest: signs of life, status snapshots, retries and refusals.

mod batches;
mod heartbeats;
mod refusals;
mod remembered;
mod retries;
mod status_reports;

pub(crate) use batches::*;
pub(crate) use heartbeats::*;
pub(crate) use refusals::*;
pub(crate) use remembered::*;
pub(crate) use retries::*;
pub(crate) use status_reports::*;
