//! Ingest: signs of life, status snapshots, retries and refusals.

mod batches;
mod heartbeats;
mod refusals;
mod retries;
mod status_reports;

pub use batches::{
    admissions_answer_each_query_in_order, batch_of_signs_of_life_applies_each_once,
};
pub use heartbeats::{
    concurrent_heartbeats_are_each_acknowledged_and_stored, heartbeat_marks_server_available,
    heartbeats_never_move_last_seen_backwards,
};
pub use refusals::every_refusal_has_its_own_error_and_changes_nothing;
pub use retries::{
    retried_message_is_acknowledged_and_applied_once, stale_sequence_is_refused_and_changes_nothing,
};
pub use status_reports::{
    status_snapshot_opens_and_resolves_conditions,
    status_snapshot_updates_detail_without_reopening, unknown_condition_codes_are_stored_and_shown,
};
