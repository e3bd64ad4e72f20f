"""Which self-test modules carry the `suite_run` marker (set in tests/conftest.py)."""

# Self-test modules whose tests mostly start whole suite runs (seconds each): `make check`, the
# inner loop, leaves them out with -m "not suite_run"; `make selftest` and CI run them.
SUITE_RUNS = frozenset({
    "test_kill_matrix.py", "test_proxy.py", "test_endings.py", "test_liveness.py",
    "test_certification_doc.py", "test_diff.py", "test_profile_keys.py", "test_preflight.py",
    "test_streaming_variations.py", "test_terminal.py", "test_matrix.py", "test_nightly.py",
    "test_case_ids.py", "test_baseline.py", "test_certificate.py", "test_browser.py",
    "test_client_kill_matrix.py", "test_case_fallbacks.py", "test_ownsuite.py", "test_sandwich.py",
    "test_sandwich_ports.py",
    "test_anytraffic.py",
})

# Modules whose module-scoped fixture runs whole suites (seconds to tens of seconds): under -n
# each goes to one worker as a whole (tests/conftest.py), so that the fixture runs once.
SHARED_FIXTURE_MODULES = frozenset({
    "test_certification_doc.py", "test_diff.py", "test_streaming_variations.py", "test_matrix.py",
    "test_nightly.py", "test_layout.py", "test_tenants_option.py", "test_browser.py",
})

# Seconds of test time measured (2 cores, `--durations=0`, 2026-12-06, machine otherwise quiet)
# for the longest units: tests/conftest.py runs them first, so that the workers do not end on
# one long test. A module of SHARED_FIXTURE_MODULES is one unit (its sum); a test missing here
# counts as quick.
EXPECTED_SECONDS = {
    "test_browser.py": 72,
    "test_endings.py::test_a_rate_limit_on_every_fourth_connection_is_retried_and_still_certifies": 65,
    "test_certification_doc.py": 65,
    "test_client_kill_matrix.py::test_correct_clients_pass_every_scenario[python examples/sdk_client.py-openai]": 45,
    "test_diff.py": 50,
    "test_sandwich.py::test_the_relay_passes_both_sides_under_xdist": 30,
    "test_sandwich.py::test_a_broken_gateway_fails_its_client_clause_only[full-history-CLIENT-NEW-INPUT-ONLY-extra1]": 25,
    "test_streaming_variations.py": 24,
    "test_sandwich.py::test_the_relay_passes_both_sides_while_the_upstream_plays_a_scenario"
    "[unknown-events]": 20,
    "test_sandwich.py::test_the_relay_passes_both_sides_while_the_upstream_plays_a_scenario"
    "[large-terminal]": 20,
    "test_sandwich.py::test_the_relay_passes_both_sides_while_the_upstream_plays_a_scenario"
    "[slow-first-token]": 65,
    "test_liveness.py::test_a_stuck_target_ends_the_run_quickly_with_fail"
    "[missing-terminal-event-STREAM-ONE-TERMINAL-workers1]": 22,
    "test_matrix.py": 17,
    "test_kill_matrix.py::test_defect_is_killed[missing-terminal-event]": 16,
    "test_terminal.py::test_three_defects_fit_on_a_screen": 15,
    "test_layout.py": 14,
    "server/test_server_fuzz.py::test_arbitrary_steers_never_hurt_the_server": 14,
    "test_case_ids.py::test_ids_are_the_same_wherever_the_files_are": 13,
    "test_kill_matrix.py::test_defect_is_killed[steer-no-successor]": 13,
    "test_nightly.py": 11,
    "test_client_kill_matrix.py::test_broken_client_fails_its_clause_only[loops-on-dead-id]": 11,
    "test_preflight.py::test_clean_embedded_run_exits_0": 10,
    "test_liveness.py::test_a_stuck_target_ends_the_run_quickly_with_fail"
    "[create-never-answered-CREATE-ANSWERED-workers0]": 9,
    "test_client_kill_matrix.py::test_broken_client_fails_its_clause_only[ignores-error]": 9,
    "server/test_server_popen.py::test_full_suite_run_finds_no_schema_violation": 8,
    "test_baseline.py::test_write_then_known_then_stale_end_to_end": 7,
    "test_kill_matrix.py::test_a_failing_generated_conversation_is_shrunk_and_replayed": 7,
    "server/test_server_defects.py::test_defect_breaks_its_behaviour[steer-no-successor]": 7,
    "test_kill_matrix.py::test_defect_is_killed[silent-after-handshake]": 7,
    "test_plugin.py::test_xdist_workers_merge_into_one_certificate": 6,
    "test_profile_keys.py::test_flipping_the_key_changes_what_the_suite_does[connection.lifetime_seconds]": 6,
    "test_certificate.py::test_the_certificate_records_the_command_line_and_the_options_that_shape_verdicts": 6,
    # added from clean-clone CI's --durations (2026-12-06, idle): unlisted, they ran late as "quick"
    "test_client_kill_matrix.py::test_correct_clients_pass_every_scenario[python tests/clients/broken.py correct-openai]": 24,
    "test_client_kill_matrix.py::test_correct_clients_pass_every_scenario"
    "[python tests/clients/broken.py correct-open-responses]": 25,
    "test_clause_aggregation.py::test_a_clause_is_pass_only_when_a_case_checked_it_and_it_held": 24,
    "test_liveness.py::test_run_timeout_caps_a_whole_run": 15,
    "test_allure.py::test_allure_results_under_xdist": 15,
    "test_certificate.py::test_xdist_certificate_validates": 15,
    "test_ownsuite.py::test_the_test_command_and_scenario_from_the_config_file": 12,
    "test_sandwich.py::test_a_gateway_that_dies_ends_the_run_in_bounded_time": 12,
    "test_sandwich.py::test_a_gateway_that_gives_up_on_unknown_events_fails_only_under_them"
    "[known-types-unknown-events]": 11,
}
