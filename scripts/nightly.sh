#!/usr/bin/env bash
# The nightly job: run the suite against $TARGET with retries, a request budget and the
# baseline of known deviations, compare the certificate with the previous night's, write a
# Markdown report, and exit non-zero on a regression. Set up: docs/nightly.md.
#
# Environment (only TARGET is required; the key comes from OPENAI_API_KEY or API_KEY):
#   TARGET            endpoint: https://…/v1 (API base) or wss://…/responses
#   API_KEY           key (default: $OPENAI_API_KEY); never printed
#   AUTH_HEADER       header carrying the key (e.g. api-key for Azure)
#   PROFILE           built-in profile (default: openai)   TARGET_CONFIG  a profile TOML file
#   MODEL             model for every turn                 BASELINE       known deviations (TOML)
#   PREVIOUS          the previous night's certificate.json (no diff when unset or missing)
#   REPORT_DIR        where everything goes (default: reports/nightly)
#   RETRIES (1)  MAX_REQUESTS (400)  RUN_TIMEOUT (3600)  TURN_TIMEOUT (default of the suite)
#   WORKERS           pytest-xdist workers (default 1: no -n)
#   PYTEST_ARGS       extra pytest arguments (word-split), e.g. "--clause TURN-TEXT"
#   PYTHON            interpreter with the suite installed (default: python3)
#
# Exit status (docs/nightly.md, conformance/nightly.py), with one line saying why:
#   0 the run tested the target and nothing got worse than PREVIOUS (without PREVIOUS: conformant)
#   1 worse than PREVIOUS: a regression, a clause checked no longer, certification lost
#     (without PREVIOUS: the run was nonconformant)
#   2 the job could not judge the night: TARGET or key missing, no certificate, pytest's own
#     exit (interrupted, internal error, no tests), or PREVIOUS unreadable
#   4 the suite refused an option or a user file (profile, baseline)
#   6 the target could not be tested at all (the suite's preflight, or nothing was checked)
#   7 the run is incomplete: cases could not be judged (overall ERROR, a stalled target)
# 4, 6 and 7 are red whatever PREVIOUS says. The report: $REPORT_DIR/summary.md (first line:
# the verdict), verdict.txt (the one line), diff.md with PREVIOUS.
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
report="${REPORT_DIR:-reports/nightly}"

if [ -z "${TARGET:-}" ]; then
    echo "nightly.sh: set TARGET to the endpoint under test (see docs/nightly.md)" >&2
    exit 2
fi
key="${API_KEY:-${OPENAI_API_KEY:-}}"
if [ -z "$key" ]; then
    echo "nightly.sh: no key: set OPENAI_API_KEY (or API_KEY) from a secret" >&2
    exit 2
fi
export OPENAI_API_KEY="$key"      # the plugin reads it from here: it never appears on a command line
rm -rf "$report"
mkdir -p "$report"

args=(-m pytest "$here/cases" -q -p no:cacheprovider -rfE
      --target "$TARGET" --report-dir "$report"
      --retries "${RETRIES:-1}" --max-requests "${MAX_REQUESTS:-400}" --run-timeout "${RUN_TIMEOUT:-3600}")
[ -n "${PROFILE:-}" ] && args+=(--profile "$PROFILE")
[ -n "${TARGET_CONFIG:-}" ] && args+=(--target-config "$TARGET_CONFIG")
[ -n "${AUTH_HEADER:-}" ] && args+=(--auth-header "$AUTH_HEADER")
[ -n "${MODEL:-}" ] && args+=(--model "$MODEL")
[ -n "${TURN_TIMEOUT:-}" ] && args+=(--turn-timeout "$TURN_TIMEOUT")
[ -n "${BASELINE:-}" ] && args+=(--baseline "$BASELINE")
[ "${WORKERS:-1}" != "1" ] && args+=(-n "$WORKERS")
# shellcheck disable=SC2206  # word splitting of PYTEST_ARGS is the point
[ -n "${PYTEST_ARGS:-}" ] && args+=(${PYTEST_ARGS})

"$py" "${args[@]}" 2>&1 | tee "$report/pytest.log"
run_status=${PIPESTATUS[0]}
prev=()
if [ -n "${PREVIOUS:-}" ]; then
    if [ -f "$PREVIOUS" ]; then
        prev=(--previous "$PREVIOUS")
    else
        echo "nightly.sh: PREVIOUS=$PREVIOUS not found: no diff (the first night?)" >&2
    fi
fi
# the verdict of the night: exit code of the suite, certificate, diff against PREVIOUS
"$py" -m conformance.nightly --suite-exit "$run_status" --report "$report" ${prev[@]+"${prev[@]}"}
status=$?
echo "nightly.sh: report in $report/summary.md; exit $status"
exit "$status"
