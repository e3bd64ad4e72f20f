"""Which self-test modules carry the `suite_run` marker (set in tests/conftest.py)."""

# Self-test modules whose tests mostly start whole suite runs (seconds each): `make check`, the
# inner loop, leaves them out with -m "not suite_run"; `make selftest` and CI run them.
SUITE_RUNS = frozenset({
    "test_kill_matrix.py", "test_proxy.py", "test_endings.py", "test_liveness.py",
    "test_certification_doc.py", "test_diff.py", "test_profile_keys.py", "test_preflight.py",
    "test_streaming_variations.py", "test_terminal.py", "test_matrix.py", "test_nightly.py",
    "test_case_ids.py", "test_baseline.py", "test_certificate.py", "test_client_kill_matrix.py",
})
