"""Which self-test modules carry the `suite_run` marker (set in tests/conftest.py)."""

# Self-test modules whose tests mostly start whole suite runs (seconds each): `make check`, the
# inner loop, leaves them out with -m "not suite_run"; `make selftest` and CI run them.
SUITE_RUNS = frozenset({
    "test_kill_matrix.py", "test_proxy.py", "test_endings.py", "test_liveness.py",
    "test_certification_doc.py", "test_diff.py", "test_profile_keys.py", "test_preflight.py",
    "test_streaming_variations.py", "test_terminal.py", "test_matrix.py", "test_nightly.py",
    "test_case_ids.py", "test_baseline.py", "test_certificate.py", "test_browser.py",
    "test_client_kill_matrix.py", "test_case_fallbacks.py",
})

# Modules whose module-scoped fixture runs whole suites (seconds to tens of seconds): under -n
# each goes to one worker as a whole (tests/conftest.py), so that the fixture runs once.
SHARED_FIXTURE_MODULES = frozenset({
    "test_certification_doc.py", "test_diff.py", "test_streaming_variations.py", "test_matrix.py",
    "test_nightly.py", "test_layout.py", "test_tenants_option.py", "test_browser.py",
})

# Seconds of test time measured (2 cores, `--durations=0`, 2026-12-06) for the longest units:
# tests/conftest.py runs them first, so that the workers do not end on one long test. A module
# of SHARED_FIXTURE_MODULES is one unit (its sum); a test missing here counts as quick.
EXPECTED_SECONDS = {
    "test_diff.py": 72,
    "test_certification_doc.py": 50,
    "test_case_ids.py::test_ids_are_the_same_wherever_the_files_are": 49,
    "test_endings.py::test_a_rate_limit_on_every_fourth_connection_is_retried_and_still_certifies": 46,
    "test_kill_matrix.py::test_defect_is_killed[cache-survives-reconnect]": 43,
    "test_nightly.py": 37,
    "test_streaming_variations.py": 37,
    "test_kill_matrix.py::test_defect_is_killed[no-eviction]": 31,
    "test_terminal.py::test_three_defects_fit_on_a_screen": 27,
    "test_kill_matrix.py::test_defect_is_killed[store-true-not-cached]": 25,
    "test_proxy.py::test_sdk_through_proxy_reports_the_defects_clause[sse-framing]": 24,
    "test_allure.py::test_allure_results_under_xdist": 22,
    "test_liveness.py::test_a_stuck_target_ends_the_run_quickly_with_fail"
    "[missing-terminal-event-STREAM-ONE-TERMINAL-workers1]": 22,
    "test_kill_matrix.py::test_defect_is_killed[store-false-not-cached]": 20,
    "test_kill_matrix.py::test_defect_is_killed[not-found-status-404]": 19,
    "test_kill_matrix.py::test_defect_is_killed[keeps-older-responses]": 18,
    "test_proxy.py::test_sdk_through_proxy_reports_the_defects_clause[missing-terminal-event]": 18,
    "test_baseline.py::test_write_then_known_then_stale_end_to_end": 18,
    "test_matrix.py": 16,
    "test_kill_matrix.py::test_defect_is_killed[missing-terminal-event]": 16,
    "test_kill_matrix.py::test_defect_is_killed[steer-no-successor]": 13,
    "test_terminal.py::test_short_form_under_xdist": 13,
    "test_clause_aggregation.py::test_a_clause_is_pass_only_when_a_case_checked_it_and_it_held": 12,
    "test_kill_matrix.py::test_defect_is_killed[silent-after-handshake]": 11,
    "test_kill_matrix.py::test_defect_is_killed[renamed-not-found-code]": 11,
    "test_liveness.py::test_a_stuck_target_ends_the_run_quickly_with_fail"
    "[create-never-answered-CREATE-ANSWERED-workers0]": 10,
    "test_kill_matrix.py::test_defect_is_killed[large-frames-truncated]": 9,
    "test_kill_matrix.py::test_defect_is_killed[steer-compaction-accepted]": 9,
    "test_retry.py::test_flaky_fail_and_error_tries": 8,
    "test_kill_matrix.py::test_defect_is_killed[part-never-closed]": 8,
}
