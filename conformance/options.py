"""The run's options after the command line: :class:`Settings` and the checks that build it.

The hook ``pytest_addoption`` stays in ``conformance.plugin``; it calls :func:`add_options`,
the declarations (flags, defaults, help), so each option's declaration sits in the module that
says what it *means*: one small validator per option that can be wrong, each raising
``pytest.UsageError`` with one line (exit 4, docs/design.md "Exit codes"), and
:func:`build_settings`, which builds ``Settings`` by keyword.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pytest

from conformance import baseline as baselines
from conformance import claims
from conformance import preflight
from conformance import runconfig
from conformance import tenants
from conformance import verdicts
from conformance.deadlines import turn_timeouts
from conformance.profile_names import BUILTIN_PROFILES
from conformance.target import ProfileError, TargetError, derive_urls, load_profile

EMBEDDED_KEY = "sk-conformance-local-0000"     # the embedded server accepts only this key
IDLE_SECONDS = 150.0                           # past nginx's 60 s and Cloudflare's 125 s (spec §1.5)

# --reference-option NAME[=VALUE] -> (ServerConfig field, allowed values, value of the bare NAME):
# the server's streaming variations (§3.4 control events, §4.3 item 16a in docs/spec.md)
REFERENCE_OPTIONS: dict[str, tuple[str, tuple, Any]] = {
    "omit-setup-events": ("omit_setup_events", (), True),
    "omit-terminal-output": ("terminal_output", ("empty", "null", "missing"), "empty"),
    "control-events": ("control_events", (), True),
}


def add_options(group: Any) -> None:
    """Declare the suite's command-line options in ``group`` (pytest's option group)."""
    group.addoption("--target", default=None, metavar="URL",
                help="endpoint under test: a ws(s):// socket URL used as is, or an http(s):// API base "
                     "URL (…/v1) from which the socket URL is derived like the SDKs do. "
                     "Without it the embedded reference server is started on loopback.")
    group.addoption("--client-command", default=None, metavar="COMMAND",
                help="client mode: judge a client instead of a server. The command is started once per "
                     "scenario against the reference server, with OPENAI_BASE_URL, OPENAI_API_KEY and "
                     "CONFORMANCE_WS_URL set (docs/clients.md); only the client scenarios run")
    group.addoption("--client-test-command", default=None, metavar="COMMAND",
                help="client mode: run the client's own test command once, unchanged, against the reference "
                     "server behaving normally (same environment) and judge what it sent by the client clauses "
                     "that hold for any traffic; with --client-test-scenario once more under that scenario "
                     "(docs/clients.md)")
    group.addoption("--client-test-scenario", default=None, metavar="NAME",
                help="client mode: after --client-test-command passed against the reference server behaving "
                     "normally, run it again while the server plays this client scenario, and judge what the tests "
                     "sent by the scenario's client clauses too (docs/clients.md \"Against a scenario\")")
    group.addoption("--client-claims", default=None, metavar="CLAIM[,CLAIM]",
                help="client mode: what the client claims to do beyond the contract: "
                     f"{', '.join(claims.CLIENT_CLAIMS)} (comma-separated). A claim plays its scenario and "
                     "holds the client to its clauses; without it they are UNSUPPORTED (docs/clients.md)")
    group.addoption("--gateway-command", default=None, metavar="COMMAND",
                help="the gateway sandwich: start COMMAND with the reference server as its upstream "
                     "(OPENAI_BASE_URL, CONFORMANCE_WS_URL) and CONFORMANCE_GATEWAY_LISTEN=HOST:PORT, run the "
                     "server cases against it and judge its upstream traffic by the client clauses (docs/clients.md)")
    group.addoption("--gateway-start-timeout", type=float, default=None, metavar="SECONDS",
                help="how long the gateway may take to listen before the run is NOT-USABLE (default 20)")
    group.addoption("--gateway-upstream-scenario", default=None, metavar="NAME",
                help="the gateway sandwich: the upstream plays this client scenario on each of its connections "
                     "(unknown-events, large-terminal or slow-first-token: what a correct gateway absorbs) and its "
                     "client clauses judge the gateway's upstream side (docs/clients.md \"Gateways\")")
    group.addoption("--client-deadline", type=float, default=None, metavar="SECONDS",
                help="client mode: how long the client may take per scenario before it counts as hung "
                     "and is killed (default: the scenario's own, 8 s; 120 s for --client-test-command)")
    group.addoption("--other-tenant-key", default=None, metavar="KEY",  # tenant isolation, §4.5 item 35a
                help="key of another tenant, for the tenant-isolation clauses (default: "
                     "$CONFORMANCE_OTHER_TENANT_KEY; a fixed one for the embedded server)")
    group.addoption("--api-key", default=None, metavar="KEY",
                help="API key (default: $OPENAI_API_KEY; a fixed local key for the embedded server)")
    group.addoption("--auth-header", default=None, metavar="NAME",
                help="header carrying the key (default Authorization, sent as 'Bearer KEY'; "
                     "any other header gets the bare key, e.g. api-key)")
    group.addoption("--model", default=None, help="model for every turn (default: the profile's default_model)")
    group.addoption("--profile", default=None, metavar="NAME",
                help=f"built-in profile: {', '.join(BUILTIN_PROFILES)} "
                     "(default: openai with --target, reference without)")
    group.addoption("--target-config", default=None, metavar="FILE",
                help="a profile TOML file (a copy of a built-in one, or `extends = \"openai\"` plus changes); "
                     "overrides --profile. Its [client] and [gateway] tables may hold the client and gateway "
                     "commands (the command line wins)")
    group.addoption("--strict-conformance", action="store_true", default=False,
                help="NON-STRICT verdicts (SHOULD violations) fail; pytest's own --strict does the same")
    group.addoption("--turn-timeout", type=float, default=None, metavar="SECONDS",
                help="idle deadline of one turn: seconds without a frame before the turn is given up "
                     "(default 60 against a real target, 10 against the embedded server)")
    group.addoption("--turn-cap", type=float, default=None, metavar="SECONDS",
                help="overall cap of one turn however lively the stream (default 5 x --turn-timeout)")
    group.addoption("--retries", type=int, default=None, metavar="N",
                help="run a case that ends FAIL or ERROR for a transient reason up to N more times on fresh "
                     "connections; differing verdicts make it FLAKY (default 1 with --target, 0 embedded)")
    group.addoption("--max-requests", type=int, default=None, metavar="N",
                help="hard cap on response.create frames plus HTTP requests for the whole run (all xdist "
                     "workers); cases that no longer fit are SKIPPED with reason 'budget'")
    group.addoption("--baseline", default=None, metavar="FILE",
                help="TOML file of known deviations: a matching non-pass becomes KNOWN (does not fail the run); "
                     "an entry whose case now passes is STALE (fails the run)")
    group.addoption("--write-baseline", default=None, metavar="FILE",
                help="write a baseline covering every case of this run that did not pass (its folder is "
                     "created, and checked, before the run)")
    group.addoption("--write-baseline-by", default=baselines.WRITE_BY[0], choices=baselines.WRITE_BY,
                help="--write-baseline entries: one per failed clause (default; a case entry for a case "
                     "that failed no clause) or one per case")
    group.addoption("--run-timeout", type=float, default=None, metavar="SECONDS",
                help="cap of the whole run: after it, cases that need a turn end ERROR at once (default: none)")
    group.addoption("--max-output-tokens", type=int, default=16, metavar="N",
                help="max_output_tokens sent with every turn unless a case sets it (default 16, the minimum OpenAI accepts)")
    group.addoption("--generated-budget", type=int, default=None, metavar="N",
                help="response.create requests the generated conversations (hypothesis state machine) may "
                     "spend; default: off against a real target (so every case costs a few requests), "
                     "the case's own larger budget against the embedded server")
    group.addoption("--no-shrink", action="store_true", default=False,
                help="report a failing generated conversation as found instead of shrinking it to a short "
                     "sequence first (shrinking replays hundreds of conversations; it runs against the "
                     "embedded server only); the verdicts are the same")
    group.addoption("--run-slow", action="store_true", default=False,
                help="run cases marked slow (e.g. the real 60-minute lifetime)")
    group.addoption("--idle-seconds", type=float, default=IDLE_SECONDS, metavar="SECONDS",
                help="how long the slow idle-socket case leaves a socket idle before its next turn "
                     f"(default {IDLE_SECONDS:g}, past common proxy idle timeouts; runs with --run-slow)")
    group.addoption("--perf", action="store_true", default=False,
                help="run the perf cases: the WebSocket's gain over HTTP with full history, measured "
                     "(costs 2 x --perf-turns x --perf-repetitions turns on a real target)")
    group.addoption("--perf-turns", type=int, default=20, metavar="N",
                help="tool-call turns of the perf agent loop (default 20)")
    group.addoption("--perf-repetitions", type=int, default=3, metavar="R",
                help="repetitions of the perf loop per transport, for the spread of the gain (default 3)")
    group.addoption("--report-dir", default=None, metavar="DIR",
                help="where certificate.json, junit.xml and index.html go (default reports/<run-id>/)")
    group.addoption("--no-report", action="store_true", default=False, help="write no report files")
    group.addoption("--long-failures", action="store_true", default=False,
                help="show pytest's full entry (traceback, transcripts of every try) for each case that did not "
                     "pass, as -v or an explicit --tb do; by default one line per case and findings grouped by clause")
    group.addoption("--clauses", default=None, metavar="FILE",
                help="clause registry (default: the suite's cases/clauses.toml)")
    group.addoption("--clause", action="append", default=[], metavar="ID", dest="select_clauses",
                help="run only the cases marked with this clause id (repeatable); "
                     "e.g. to re-check one requirement after a fix")
    group.addoption("--preflight-timeout", type=float, default=preflight.DEFAULT_TIMEOUT, metavar="SECONDS",
                help="deadline of each preflight step (handshake, first turn) before the first case "
                     f"(default {preflight.DEFAULT_TIMEOUT:g}; the turn also at most --turn-timeout)")
    group.addoption("--no-preflight", action="store_true", default=False,
                help="skip the preflight: a target that cannot be tested then makes every case ERROR")
    group.addoption("--reference-defect", action="append", default=[], metavar="NAME",
                help="start the embedded reference server with this defect (repeatable; kill-matrix use)")
    group.addoption("--reference-option", action="append", default=[], metavar="NAME[=VALUE]",
                help="start the embedded reference server with a streaming variation (repeatable): "
                     "omit-setup-events, omit-terminal-output[=empty|null|missing], control-events")


def reference_overrides(options: Any) -> dict[str, Any]:
    """ServerConfig overrides for ``--reference-option`` values; ValueError names a bad one."""
    out: dict[str, Any] = {}
    for text in options:
        name, _, value = str(text).partition("=")
        spec = REFERENCE_OPTIONS.get(name)
        if spec is None:
            raise ValueError(f"--reference-option {text!r}: unknown; known: {', '.join(REFERENCE_OPTIONS)}")
        fld, allowed, bare = spec
        if not value:
            out[fld] = bare
        elif value in allowed:
            out[fld] = value
        else:
            raise ValueError(f"--reference-option {text!r}: " + (f"takes one of {', '.join(allowed)}" if allowed
                                                                 else "takes no value"))
    return out


@dataclass
class Settings:
    target_url: str | None
    api_key: str
    auth_header: str
    model: str
    profile: Any
    strict: bool
    turn_timeout: float
    max_output_tokens: int
    run_slow: bool
    defects: tuple[str, ...]
    report_dir: Path | None
    run_id: str
    registry: verdicts.ClauseRegistry
    generated_budget: int | None = None
    shrink: bool = True                 # --no-shrink: a generated conversation's failure as found
    turn_cap: float = 0.0
    run_timeout: float | None = None
    retries: int = 0
    max_requests: int | None = None
    baseline: Any = None                # conformance.baseline.Baseline
    write_baseline: Path | None = None
    write_baseline_by: str = baselines.WRITE_BY[0]
    server_overrides: dict = field(default_factory=dict)  # from --reference-option
    preflight_timeout: float = preflight.DEFAULT_TIMEOUT
    preflight: bool = True
    idle_after_done: float = 0.0        # conformance.deadlines: the idle deadline once output is done
    other_tenant_key: str = ""          # conformance.tenants: "" = tenant isolation UNTESTED
    idle_seconds: float = IDLE_SECONDS  # --idle-seconds: the slow idle-socket case (§4.6 item 38b)
    client_command: str | None = None   # client mode (conformance.clientmode): the client to judge
    client_deadline: float | None = None    # None: each scenario's own deadline
    client_test_command: str | None = None  # client mode: the client's own tests (clientmode.ownsuite)
    client_test_scenario: Any = None    # clientmode.scenarios.Scenario the server plays for the own tests
    gateway: Any = None                 # --gateway-command: clientmode.sandwich.Gateway (target_url is its address)
    client_claims: tuple[str, ...] = ()     # --client-claims: what the client claims (claims.CLIENT_CLAIMS)

    @property
    def client_mode(self) -> bool:
        return self.client_command is not None or self.client_test_command is not None

    @property
    def embedded(self) -> bool:
        return self.target_url is None

    @property
    def claimed(self) -> frozenset:
        """The capabilities of the client's claims (none outside client mode)."""
        return frozenset(claims.CLIENT_CLAIMS[name] for name in self.client_claims)

    @property
    def capabilities(self) -> frozenset:
        """What the clauses' ``requires`` are checked against: the profile's and the client's."""
        return self.profile.capabilities() | self.claimed


def _strict(config: pytest.Config) -> bool:
    if config.getoption("strict_conformance"):
        return True
    if getattr(config.option, "strict", False):
        return True
    try:
        return bool(config.getini("strict"))
    except (ValueError, KeyError):
        return False


def _validate_reference_defects(names: Iterable[str]) -> None:
    """An unknown --reference-defect is a usage error (one line, a suggestion), not 90 ERROR cases."""
    from conformance.server.defects import DEFECTS
    unknown = [n for n in names if n not in DEFECTS]
    if unknown:
        hints = [f"{n!r} → did you mean {m[0]}?" for n in unknown
                 if (m := difflib.get_close_matches(n, list(DEFECTS), n=1))]
        raise pytest.UsageError(f"--reference-defect: unknown defect(s) {', '.join(unknown)}"
                                + (f": {'; '.join(hints)}" if hints else "")
                                + " (python -m conformance.server --list-defects lists them)")


# --- one validator per option: each returns the option's value or raises pytest.UsageError ---

def _usage(condition: bool, message: str) -> None:
    if condition:
        raise pytest.UsageError(message)


def _validate_profile(config_file: str | None, name: str | None, target_url: str | None) -> Any:
    try:
        if config_file:
            return load_profile(Path(config_file))
        return load_profile(name or ("openai" if target_url else "reference"))
    except ProfileError as exc:
        raise pytest.UsageError(f"profile: {exc}") from None


def _validate_target(target_url: str | None) -> str | None:
    if target_url:
        try:
            derive_urls(target_url)
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None
    return target_url


def _validate_auth_header(name: str) -> str:
    _usage(not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name),
           f"--auth-header {name!r}: not a valid HTTP header name")
    return name


def _validate_turn_timeout(timeout: float) -> float:
    _usage(timeout <= 0, "--turn-timeout must be positive")
    return timeout


def _validate_idle_seconds(seconds: float | None) -> float:
    seconds = IDLE_SECONDS if seconds is None else seconds
    _usage(not seconds > 0, "--idle-seconds must be positive")
    return seconds


def _validate_turn_cap(turn_cap: float | None, timeout: float) -> float:
    turn_cap = turn_cap if turn_cap is not None else 5 * timeout
    _usage(turn_cap <= 0, "--turn-cap must be positive")
    return turn_cap


def _validate_retries(retries: int | None, target_url: str | None) -> int:
    retries = retries if retries is not None else (1 if target_url else 0)
    _usage(retries < 0, "--retries must not be negative")
    return retries


def _validate_max_requests(limit: int | None) -> int | None:
    _usage(limit is not None and limit < 0, "--max-requests must not be negative")
    return limit


def _validate_run_timeout(seconds: float | None) -> float | None:
    _usage(seconds is not None and seconds <= 0, "--run-timeout must be positive")
    return seconds


def _validate_preflight_timeout(seconds: float | None) -> float:
    _usage(not seconds or seconds <= 0, "--preflight-timeout must be positive")
    return seconds


def _validate_max_output_tokens(tokens: int | None) -> int:
    _usage(tokens is not None and tokens < 0, "--max-output-tokens must not be negative (0 = do not send it)")
    return tokens or 0


def _validate_clauses(clauses: str | None, rootpath: Path) -> verdicts.ClauseRegistry:
    path = Path(clauses) if clauses else verdicts.default_clauses_path(rootpath)
    _usage(path is None, "clause registry not found: pass --clauses FILE (cases/clauses.toml)")
    try:
        return verdicts.ClauseRegistry.load(path)
    except verdicts.RegistryError as exc:
        raise pytest.UsageError(f"--clauses: {exc}") from None


def _validate_run_tables(path: str | None) -> runconfig.RunTables:
    try:
        return runconfig.load(path)
    except ProfileError as exc:
        raise pytest.UsageError(f"--target-config: {exc}") from None


def _validate_client_command(command: str | None, target_url: str | None,
                             option: str = "--client-command") -> str | None:
    if command is None:
        return None
    from conformance.clientmode.runner import CommandError, split_command
    try:
        split_command(command)
    except CommandError as exc:
        raise pytest.UsageError(str(exc).replace("--client-command", option)) from None
    _usage(bool(target_url), f"{option} judges a client against the reference server; it does not "
                             "take --target")
    return command


def _validate_client_test_scenario(name: str | None, option: str, test_command: str | None) -> Any:
    """The scenario the reference server plays for a client's own tests (None: behaving normally)."""
    if name is None:
        return None
    _usage(test_command is None, f"{option} needs --client-test-command (or test_command in the [client] table "
                                 "of --target-config)")
    from conformance.clientmode.ownsuite import SCENARIOS
    from conformance.clientmode.scenarios import BY_NAME
    if name not in SCENARIOS:
        played = BY_NAME.get(name)
        why = ("no such scenario" if played is None
               else f"it is played only for --client-command with --client-claims {played.claim}" if played.claim
               else "its client must give up (exit non-zero), which a test command's exit status cannot show")
        raise pytest.UsageError(f"{option} {name!r}: {why}; choose one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def _validate_gateway(config: pytest.Config, tables: runconfig.RunTables, target_url: str | None,
                      clients: list[str]) -> Any:
    line = config.getoption
    command = tables.pick("gateway_command", line("gateway_command"))
    start_timeout = tables.pick("gateway_start_timeout", line("gateway_start_timeout"))
    scenario_name = tables.pick("gateway_upstream_scenario", line("gateway_upstream_scenario"))
    if command is None:
        _usage(start_timeout is not None, f"{tables.where('gateway_start_timeout', line('gateway_start_timeout'))} "
                                          "needs --gateway-command")
        scenario_option = tables.where("gateway_upstream_scenario", line("gateway_upstream_scenario"))
        _usage(scenario_name is not None, f"{scenario_option} needs --gateway-command")
        return None
    option = tables.where("gateway_command", line("gateway_command"))
    _usage(bool(target_url), f"{option} runs the server cases against the gateway it starts; it does "
                             "not take --target")
    _usage(bool(clients), f"{option} judges a gateway; it does not take {' or '.join(clients)}")
    _usage(bool(line("api_key")), f"{option} generates the key the gateway and its upstream share; it does "
                                  "not take --api-key")
    from conformance.clientmode import upstreamplay
    from conformance.clientmode.sandwich import settings_for
    played = None
    if scenario_name is not None:
        try:
            played = upstreamplay.choose(scenario_name, tables.where("gateway_upstream_scenario",
                                                                     line("gateway_upstream_scenario")))
        except upstreamplay.NotPlayable as exc:
            raise pytest.UsageError(str(exc)) from None
    return settings_for(config, command, start_timeout, played)


def _validate_client_claims(text: str | None, client_command: str | None,
                            option: str = "--client-claims") -> tuple[str, ...]:
    """``--client-claims lanes,steering`` (or ``claims`` in the [client] table): known claim
    names, with --client-command (the claims play scenarios; a client's own tests play none)."""
    if text is None:
        return ()
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in claims.CLIENT_CLAIMS]
    _usage(bool(unknown), f"{option}: unknown claim(s) {', '.join(map(repr, unknown))}; known: "
                          f"{', '.join(claims.CLIENT_CLAIMS)}")
    _usage(not names, f"{option}: name a claim ({', '.join(claims.CLIENT_CLAIMS)})")
    _usage(client_command is None, f"{option} says what the client of --client-command does; give "
                                   "--client-command too")
    return tuple(sorted(set(names)))


def _validate_client_deadline(seconds: float | None) -> float | None:
    _usage(seconds is not None and not seconds > 0, "--client-deadline must be positive")
    return seconds


def _validate_generated_budget(requests: int | None) -> int | None:
    _usage(requests is not None and requests < 0, "--generated-budget: give a number of requests >= 0")
    return requests


def _validate_reference_options(options: Iterable[str], target_url: str | None) -> dict[str, Any]:
    try:
        overrides = reference_overrides(options)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    _usage(bool(overrides and target_url),
           "--reference-option applies to the embedded reference server, not to --target")
    return overrides


def _validate_baseline(path: str | None, registry: verdicts.ClauseRegistry) -> Any:
    if not path:
        return None
    try:
        return baselines.load(path, registry.clauses)
    except baselines.BaselineError as exc:
        raise pytest.UsageError(f"--baseline: {exc}") from None


def _validate_write_baseline(path: str | None) -> Path | None:
    if not path:
        return None
    try:
        return baselines.prepare_output(path)
    except baselines.BaselineError as exc:
        raise pytest.UsageError(f"--write-baseline: {exc}") from None


def _report_dir(config: pytest.Config, run_id: str) -> Path | None:
    opt = config.getoption
    if opt("no_report"):
        return None
    return (Path(opt("report_dir")) if opt("report_dir") else Path.cwd() / "reports" / run_id).resolve()


def build_settings(config: pytest.Config) -> Settings:
    """The run's settings from the command line; a bad option is a pytest.UsageError (exit 4).
    The validators run in this order, so the first bad option named is the same as before."""
    opt = config.getoption
    target_url = opt("target")
    profile = _validate_profile(opt("target_config"), opt("profile"), target_url)
    _validate_target(target_url)
    if target_url:
        api_key = opt("api_key") or os.environ.get("OPENAI_API_KEY", "")
    else:
        api_key = opt("api_key") or EMBEDDED_KEY
    auth_header = _validate_auth_header(opt("auth_header") or profile.get("target.auth_header", "Authorization"))
    timeout, idle_after_done = turn_timeouts(opt("turn_timeout"), profile, not target_url)
    _validate_turn_timeout(timeout)
    turn_cap = _validate_turn_cap(opt("turn_cap"), timeout)
    retries = _validate_retries(opt("retries"), target_url)
    max_requests = _validate_max_requests(opt("max_requests"))
    run_timeout = _validate_run_timeout(opt("run_timeout"))
    preflight_timeout = _validate_preflight_timeout(opt("preflight_timeout"))
    max_output_tokens = _validate_max_output_tokens(opt("max_output_tokens"))
    # the command line wins over the --target-config file's [client] and [gateway] tables
    tables = _validate_run_tables(opt("target_config"))
    value = {dest: tables.pick(dest, opt(dest)) for dest in runconfig.CLIENT_DESTS}
    named = {dest: tables.where(dest, opt(dest)) for dest in runconfig.CLIENT_DESTS}   # flag or file key
    client_command = _validate_client_command(value["client_command"], target_url, named["client_command"])
    client_test_command = _validate_client_command(value["client_test_command"], target_url,
                                                   named["client_test_command"])
    client_test_scenario = _validate_client_test_scenario(value["client_test_scenario"],
                                                          named["client_test_scenario"], client_test_command)
    gateway = _validate_gateway(config, tables, target_url, [named[dest] for dest in ("client_command",
                                                             "client_test_command") if value[dest] is not None])
    client_claims = _validate_client_claims(value["client_claims"], client_command, named["client_claims"])
    # a run judges one side of the wire: its clause table holds that side's clauses only; the
    # gateway sandwich judges both (clientmode.sandwich)
    registry = _validate_clauses(opt("clauses"), config.rootpath)
    if gateway is None:
        registry = registry.side(verdicts.CLIENT if client_command or client_test_command else verdicts.SERVER)
    # should_when levels (a client run's profile, with the client's claims)
    registry = registry.for_profile(profile.capabilities() | {claims.CLIENT_CLAIMS[n] for n in client_claims})
    generated_budget = _validate_generated_budget(opt("generated_budget"))
    server_overrides = _validate_reference_options(opt("reference_option") or (), target_url)
    baseline = _validate_baseline(opt("baseline"), registry)
    write_baseline = _validate_write_baseline(opt("write_baseline"))
    _validate_reference_defects(opt("reference_defect") or ())
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    return Settings(target_url=gateway.ws_url if gateway else target_url,
                    api_key=gateway.key if gateway else api_key, auth_header=auth_header,
                    model=opt("model") or profile.default_model, profile=profile, strict=_strict(config),
                    turn_timeout=timeout, max_output_tokens=max_output_tokens,
                    run_slow=opt("run_slow"), defects=tuple(opt("reference_defect") or ()),
                    report_dir=_report_dir(config, run_id), run_id=run_id, registry=registry,
                    generated_budget=generated_budget, shrink=not opt("no_shrink"), turn_cap=turn_cap,
                    run_timeout=run_timeout, retries=retries,
                    max_requests=max_requests, baseline=baseline,
                    write_baseline=write_baseline, write_baseline_by=opt("write_baseline_by"),
                    server_overrides=server_overrides, preflight_timeout=preflight_timeout,
                    preflight=not opt("no_preflight"), idle_after_done=idle_after_done,
                    idle_seconds=_validate_idle_seconds(opt("idle_seconds")),
                    # the sandwich's upstream knows one key: tenant isolation stays UNTESTED
                    other_tenant_key="" if gateway else tenants.other_tenant_key(opt("other_tenant_key"), api_key,
                                                                                 embedded=target_url is None),
                    client_command=client_command, client_test_command=client_test_command,
                    client_test_scenario=client_test_scenario, gateway=gateway,
                    client_claims=client_claims,
                    client_deadline=_validate_client_deadline(opt("client_deadline")))
