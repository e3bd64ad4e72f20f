"""The run's options after the command line: :class:`Settings` and the checks that build it.

``pytest_addoption`` (the declarations) stays in ``conformance.plugin``: it is a pytest hook,
and pytest-xdist keeps its declarations beside its hooks too; this module holds what the
options *mean*: one small validator per option that can be wrong, each raising
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

from conformance import baseline as BL
from conformance import preflight as PF
from conformance import tenants as TN
from conformance import verdicts as V
from conformance.deadlines import turn_timeouts
from conformance.target import ProfileError, TargetError, derive_urls, load_profile

EMBEDDED_KEY = "sk-conformance-local-0000"     # the embedded server accepts only this key

# --reference-option NAME[=VALUE] -> (ServerConfig field, allowed values, value of the bare NAME):
# the server's streaming variations (§3.4 control events, §4.3 item 16a in docs/spec.md)
REFERENCE_OPTIONS: dict[str, tuple[str, tuple, Any]] = {
    "omit-setup-events": ("omit_setup_events", (), True),
    "omit-terminal-output": ("terminal_output", ("empty", "null", "missing"), "empty"),
    "control-events": ("control_events", (), True),
}


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
    registry: V.ClauseRegistry
    generated_budget: int | None = None
    turn_cap: float = 0.0
    run_timeout: float | None = None
    retries: int = 0
    max_requests: int | None = None
    baseline: Any = None                # conformance.baseline.Baseline
    write_baseline: Path | None = None
    write_baseline_by: str = BL.WRITE_BY[0]
    server_overrides: dict = field(default_factory=dict)  # from --reference-option
    preflight_timeout: float = PF.DEFAULT_TIMEOUT
    preflight: bool = True
    idle_after_done: float = 0.0        # conformance.deadlines: the idle deadline once output is done
    other_tenant_key: str = ""          # conformance.tenants: "" = tenant isolation UNTESTED

    @property
    def embedded(self) -> bool:
        return self.target_url is None


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


def _validate_clauses(clauses: str | None, rootpath: Path) -> V.ClauseRegistry:
    path = Path(clauses) if clauses else V.default_clauses_path(rootpath)
    _usage(path is None, "clause registry not found: pass --clauses FILE (cases/clauses.toml)")
    try:
        return V.ClauseRegistry.load(path)
    except V.RegistryError as exc:
        raise pytest.UsageError(f"--clauses: {exc}") from None


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


def _validate_baseline(path: str | None, registry: V.ClauseRegistry) -> Any:
    if not path:
        return None
    try:
        return BL.load(path, registry.clauses)
    except BL.BaselineError as exc:
        raise pytest.UsageError(f"--baseline: {exc}") from None


def _validate_write_baseline(path: str | None) -> Path | None:
    if not path:
        return None
    try:
        return BL.prepare_output(path)
    except BL.BaselineError as exc:
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
    registry = _validate_clauses(opt("clauses"), config.rootpath)
    generated_budget = _validate_generated_budget(opt("generated_budget"))
    server_overrides = _validate_reference_options(opt("reference_option") or (), target_url)
    baseline = _validate_baseline(opt("baseline"), registry)
    write_baseline = _validate_write_baseline(opt("write_baseline"))
    _validate_reference_defects(opt("reference_defect") or ())
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    return Settings(target_url=target_url, api_key=api_key, auth_header=auth_header,
                    model=opt("model") or profile.default_model, profile=profile, strict=_strict(config),
                    turn_timeout=timeout, max_output_tokens=max_output_tokens,
                    run_slow=opt("run_slow"), defects=tuple(opt("reference_defect") or ()),
                    report_dir=_report_dir(config, run_id), run_id=run_id, registry=registry,
                    generated_budget=generated_budget, turn_cap=turn_cap,
                    run_timeout=run_timeout, retries=retries,
                    max_requests=max_requests, baseline=baseline,
                    write_baseline=write_baseline, write_baseline_by=opt("write_baseline_by"),
                    server_overrides=server_overrides, preflight_timeout=preflight_timeout,
                    preflight=not opt("no_preflight"), idle_after_done=idle_after_done,
                    other_tenant_key=TN.other_tenant_key(opt("other_tenant_key"), api_key,
                                                         embedded=target_url is None))
