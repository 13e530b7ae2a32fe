//! Ingest: admission reads, signs of life and status reports.
//!
//! Concurrency: every write locks the server rows it compares against
//! (`SELECT ... FOR UPDATE`, in (slc, server_id) order) before comparing
//! sequence numbers, so two nodes applying messages of one recording server
//! run one after the other and the second sees the first's result: a retry
//! sent through two nodes at once is applied once and reported as Duplicate,
//! and `last_seen_at` never moves backwards.
//!
//! By step: `admit` reads what a message is judged against; `batch` routes a
//! batch of signs of life between the next two; `in_place` is
//! the heartbeat's hot path (one statement, no transaction); `locks` takes
//! rows in the one order every multi-row writer uses; `signs` is the locking
//! path of signs of life; `status` applies status reports.

mod admit;
mod batch;
mod in_place;
mod locks;
mod signs;
mod status;

pub(crate) use admit::{admission, admissions};
pub(crate) use batch::record_batch;
pub(crate) use in_place::{SignColumns, heartbeat_in_place, heartbeats_in_place};
pub(crate) use locks::{ServerKey, load_server, lock_servers};
pub(crate) use signs::record_signs_of_life;
pub(crate) use status::{active_conditions, apply_status_report};
