//! The shared storage conformance suite (feature `testing`).
//!
//! A backend crate implements [`TestBackend`] and invokes
//! [`store_conformance_tests!`](crate::store_conformance_tests) once in an
//! integration test; the macro expands into one `#[tokio::test]` per storage
//! behaviour, named after it, so the test output lists them all:
//!
//! ```ignore
//! struct Sqlite;
//! #[async_trait::async_trait]
//! impl carewatch_core::testing::TestBackend for Sqlite { /* fresh() */ }
//! carewatch_core::store_conformance_tests!(Sqlite);
//! ```

mod documented_errors;
pub mod fixture;
pub mod suite;

use std::sync::Arc;

use async_trait::async_trait;

pub use documented_errors::{DocumentedError, documented_error, documented_errors};
pub use fixture::{Fixture, Site};

use crate::store::Store;

/// Makes isolated databases for the suite.
#[async_trait]
pub trait TestBackend: Send + Sync {
    /// A new, empty database that no other test uses.
    async fn fresh(&self) -> Box<dyn TestDatabase>;
}

/// One isolated database.
#[async_trait]
pub trait TestDatabase: Send + Sync {
    /// Opens a store on it. May be called again (after or while an earlier
    /// store is alive) to test persistence and several nodes on one database.
    async fn open(&self) -> Arc<dyn Store>;

    /// Appends a change-feed event of `kind` about `slc` at `at` with its
    /// columns empty but for `server_id` (and, with a server, its history
    /// entry), as a newer Carewatch sharing the database might (a rolling
    /// upgrade). The backends' conformance runs
    /// implement it; other test databases never run the tests that call it.
    async fn append_raw_change(
        &self,
        _at: crate::time::Timestamp,
        _slc: &crate::ids::Slc,
        _kind: &str,
        _server_id: Option<&str>,
    ) {
        panic!("this test database cannot append raw change-feed rows");
    }
}

/// Expands into the whole conformance suite for a backend: pass an
/// expression that makes its [`TestBackend`].
#[macro_export]
macro_rules! store_conformance_tests {
    ($backend:expr) => {
        $crate::__conformance_test_list!(__conformance_tests, $backend);
    };
}

/// The names of the conformance tests: the only list of them. Calls
/// `$crate::$callback!($($args)* ; name, name, ...)`.
///
/// [`store_conformance_tests!`](crate::store_conformance_tests) makes a
/// backend's `#[tokio::test]` fns from it, and `testing::suite` its public
/// entry points, the only callers of the test functions: these are
/// `pub(crate)`, so one missing here is never used and fails the build under
/// `-D warnings` (`dead_code`), and a name here without its function does not
/// compile.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_list {
    ($callback:ident, $($args:tt)*) => {
        $crate::$callback!($($args)* ;
            // registration and operator data
            resellers_are_created_once,
            reseller_tokens_rotate,
            bad_tokens_never_slow_a_valid_one_from_the_same_address,
            operator_tokens_round_trip,
            the_first_operator_is_stored_once,
            installations_register_once_to_an_existing_reseller,
            installation_updates_are_stored,
            installation_keys_are_stored_wrapped_and_retired,
            installation_keys_page_in_order_for_a_rotation,
            reseals_replace_only_what_still_holds_what_was_read,
            a_master_key_rotation_reseals_every_secret,
            a_master_key_that_opens_no_stored_key_is_refused_at_start,
            the_master_key_check_is_stored_once_and_replaced_only_as_read,
            // ingest
            heartbeat_marks_server_available,
            remembered_heartbeats_apply_only_under_the_current_admission,
            remembered_signs_outside_the_common_case_are_readmitted,
            a_remembered_admission_never_outlives_a_change,
            admissions_answer_each_query_in_order,
            heartbeats_never_move_last_seen_backwards,
            stale_sequence_is_refused_and_changes_nothing,
            retried_message_is_acknowledged_and_applied_once,
            batch_of_signs_of_life_applies_each_once,
            new_servers_in_a_batch_are_recorded_as_one_by_one,
            large_batches_answer_every_item_in_order,
            sequences_keep_their_order_past_2_pow_63,
            a_message_captured_before_its_data_was_deleted_stays_a_replay,
            concurrent_heartbeats_are_each_acknowledged_and_stored,
            status_snapshot_opens_and_resolves_conditions,
            status_snapshot_updates_detail_without_reopening,
            unknown_condition_codes_are_stored_and_shown,
            every_refusal_has_its_own_error_and_changes_nothing,
            // availability
            missed_heartbeats_make_server_late_then_unavailable,
            recovery_resolves_unavailability_and_records_it,
            availability_change_loses_to_a_concurrent_message,
            a_sweep_verdict_loses_to_a_decommission_or_a_park_meanwhile,
            a_message_admitted_before_a_park_does_not_resume_judging,
            all_servers_down_together_is_one_offline_problem,
            own_downtime_does_not_count_as_missed_heartbeats,
            downtime_windows_are_stored,
            restarts_record_own_downtime_exactly,
            sweeps_apply_only_with_the_latest_downtime,
            // what resellers see
            overview_lists_only_unhealthy_by_default_worst_first,
            overview_pages_cover_everything_once,
            installation_detail_has_servers_conditions_and_history,
            installations_are_read_together_for_their_reseller_only,
            tenant_isolation_hides_other_resellers_installations,
            watch_streams_changes_of_own_installations_only,
            overview_filters_by_health_and_searches_slcs,
            // labels
            labels_are_stored_shown_and_told,
            overview_searches_labels_in_any_case,
            labels_are_set_only_by_the_owners_admin,
            overview_sorts_by_customer_and_site,
            // an installation's life
            a_decommissioned_server_stops_counting_until_it_reports,
            decommissioning_is_for_the_owner_and_known_servers,
            an_expired_subscription_is_not_judged_and_renewal_gives_grace,
            an_unavailable_servers_recovery_after_a_renewal_counts_from_it,
            withdrawn_consent_is_not_judged_and_its_data_is_deleted_after_retention,
            // uptime reports
            uptime_report_matches_the_hand_computed_scenario,
            an_outage_open_at_the_period_start_is_counted,
            uptime_reports_show_only_the_resellers_installations,
            uptime_reports_follow_decommissioned_servers,
            refused_time_is_unmonitored_in_uptime_reports,
            // a reseller's team
            invitations_create_users_once,
            sessions_expire_and_end_with_their_user,
            users_and_api_tokens_are_per_reseller,
            sign_in_follows_invitations_and_fails_alike,
            viewers_may_not_manage_and_api_tokens_open_until_revoked,
            api_tokens_expire_and_then_free_their_place,
            ended_credentials_are_pruned_and_a_user_keeps_twenty_sessions,
            removing_a_user_cancels_their_invitations_and_inviting_tells_nothing_of_others,
            // notifications
            channels_and_maintenance_windows_are_per_reseller,
            reseller_bounds_hold_against_concurrent_creates,
            the_notifier_lease_is_held_by_one_node_at_a_time,
            notifier_commits_are_atomic_and_conditional,
            a_notifier_commit_can_claim_what_it_queues,
            a_backlog_of_events_is_taken_in_steps_that_say_more_waits,
            due_states_beyond_a_step_say_more_waits,
            a_step_that_read_before_a_nudge_is_not_written,
            deliveries_are_claimed_by_one_node_at_a_time,
            a_stopping_node_releases_its_unsent_claims,
            a_starting_node_releases_its_previous_runs_claims,
            delivery_outcomes_are_recorded_once_by_the_claiming_node,
            a_batch_of_outcomes_is_recorded_as_one_by_one,
            a_transfer_moves_an_installation_to_another_reseller_at_once,
            the_audit_log_is_kept_newest_first_and_read_per_team,
            change_kinds_a_newer_version_wrote_are_passed_over,
            audit_entries_past_the_retention_are_deleted_oldest_first,
            an_expired_subscription_is_told_once_per_channel,
            a_transfer_before_the_notifier_reads_a_change_does_not_stop_it,
            every_operator_and_admin_action_is_audited_with_its_actor,
            sign_ins_and_wrong_passwords_are_audited_for_the_team,
            the_outbox_lists_a_resellers_entries_newest_first,
            deleting_a_channel_gives_up_its_pending_entries,
            two_tests_of_a_channel_at_once_are_both_sent,
            tests_of_a_channel_on_their_way_are_bounded,
            finished_notifications_are_pruned_past_their_retention,
            the_feed_keeps_what_the_notifier_has_not_processed,
            unprocessed_events_are_kept_at_most_four_retentions,
            notifications_follow_health_changes_once_after_the_hold,
            maintenance_mutes_notifications_until_it_ends,
            a_window_made_after_a_problem_was_told_tells_after_it,
            deleting_a_window_tells_what_it_muted_at_once,
            an_expiry_during_maintenance_is_sent_when_the_window_ends,
            a_renewal_gives_up_the_held_notice_that_care_plus_ended,
            deleting_a_window_leaves_another_resellers_held_notices,
            a_refused_installation_tells_nothing,
            a_problem_held_while_refused_is_told_when_accepted_again,
            windows_are_bounded_per_installation,
            a_deferral_counts_no_attempt_and_no_failure_of_the_channel,
            a_problem_that_held_and_ended_in_a_backlog_is_still_told,
            a_flap_split_across_a_backlogs_steps_tells_nothing,
            own_downtime_does_not_count_toward_a_hold,
            a_released_notifier_lease_is_taken_at_once,
            // the change feed
            change_feed_records_every_change_in_order,
            change_feed_has_no_gaps_and_is_pruned_by_age,
            watchers_resume_after_the_last_event_they_saw,
            a_reseller_has_a_bounded_number_of_watchers_per_node,
            // durability
            data_survives_reopen,
            two_nodes_on_one_database_agree,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($backend:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $backend;
                $crate::testing::suite::$name(&backend).await;
            }
        )+
    };
}

/// The public entry points of `testing::suite`, which the tests made by
/// `__conformance_tests!` call: one per test function (`pub(crate)`, reached
/// through `$module`, a module of the calling one).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_entry_points {
    ($module:ident; $($name:ident),+ $(,)?) => {
        $(
            #[doc = concat!(
                "Runs the conformance test `", stringify!($name), "` on a fresh database of `backend`."
            )]
            pub async fn $name(backend: &(impl $crate::testing::TestBackend + ?Sized)) {
                $module::$name(backend).await;
            }
        )+
    };
}
