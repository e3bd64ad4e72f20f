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
# Exit status: 0 no regression; 1 a regression against PREVIOUS (or, without PREVIOUS, a run
# that did not pass: FAIL, FLAKY, STALE); 2 the run produced no certificate (bad options,
# unreachable harness). The report: $REPORT_DIR/summary.md (and diff.md with PREVIOUS).
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
cert="$report/certificate.json"
if [ ! -f "$cert" ]; then
    echo "nightly.sh: the run wrote no certificate (pytest exit $run_status); see $report/pytest.log" >&2
    exit 2
fi

{
    "$py" - "$cert" <<'PY'
import json, sys
c = json.load(open(sys.argv[1], encoding="utf-8"))
t = c["target"]
print(f"# Nightly conformance: {c['overall']}\n")
if c.get("stalled"):
    s = c["stalled"]
    print(f"**Run stopped early ({s.get('reason')}) since {s.get('since')}**: {s.get('message')}\n")
print(f"Target {t.get('ws_host')}{t.get('ws_path')}, profile {c['profile']}, model {t.get('model')}, "
      f"run {c['run_id']} ({c['duration_s']} s).\n")
counts = {k: v for k, v in c["counts"]["cases"].items() if v and k != "total"}
print("Cases: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f" (of {c['counts']['cases']['total']}).")
u = c["usage"]
print(f"Spent: {u['creates']} response.create, {u['http_requests']} HTTP requests, "
      f"{u['input_tokens']} input and {u['output_tokens']} output tokens.")
bl = c.get("baseline")
if bl:
    print(f"Baseline: {bl['known']} case(s) KNOWN, {bl['stale']} entry(ies) STALE.")
    for e in bl["entries"]:
        if e["status"] == "STALE":
            print(f"- remove known #{e['index']} ({e.get('clause') or e.get('case')}): it passes now")
print()
PY
} > "$report/summary.md"

status=0
if [ -n "${PREVIOUS:-}" ] && [ -f "${PREVIOUS}" ]; then
    "$py" -m conformance diff "$PREVIOUS" "$cert" --output "$report/diff.md" > /dev/null
    diff_status=$?
    cat "$report/diff.md" >> "$report/summary.md"
    if [ "$diff_status" -eq 1 ]; then
        status=1
    elif [ "$diff_status" -ne 0 ]; then
        echo "nightly.sh: the diff against $PREVIOUS failed (exit $diff_status)" >&2
        status=2
    fi
else
    echo "No previous certificate: no diff (the first night, or PREVIOUS not found)." >> "$report/summary.md"
    [ "$run_status" -ne 0 ] && status=1
fi
echo "nightly.sh: report in $report/summary.md; exit $status"
exit "$status"
