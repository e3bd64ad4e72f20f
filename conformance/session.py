"""The conformance session: one per pytest process (the controller, or each xdist worker).

It holds the run's settings, the embedded reference server and the ``Target`` (both built
lazily, so self-tests never start a server), the run's liveness and request budget, and the
case records the controller collects from the teardown reports (docs/design.md "Plugin",
"Reports"). ``conformance.plugin`` creates it in ``pytest_configure``; the reports and the
allure integration read it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from conformance import budget
from conformance import tenants
from conformance.caserecord import CaseRecord
from conformance.client import HarnessError
from conformance.liveness import Liveness
from conformance.runcontext import RunContext
from conformance.options import EMBEDDED_KEY, Settings
from conformance.profile_names import BUILTIN_PROFILES, DEFAULT_SERVER_PROFILE
from conformance.runstate import run_dir
from conformance.target import Target, derive_urls, load_profile



def server_profile(profile: Any) -> str:
    """The reference server's profile for a suite profile (by name, else its built-in parent)."""
    return (BUILTIN_PROFILES.get(profile.name)
            or BUILTIN_PROFILES.get(profile.get("extends") or "", DEFAULT_SERVER_PROFILE))


class ConformanceSession:
    """Per-process state: settings, the embedded server, the case records (controller)."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        self.settings = settings
        self.server: Any = None
        self._target: Target | None = None
        self.records: list[CaseRecord] = []
        # records the controller built itself, no pytest item behind them (the sandwich's upstream case)
        self.built_records: list[CaseRecord] = []
        self.started = time.time()
        self.is_worker = hasattr(config, "workerinput")
        if self.is_worker:   # share the controller's run id and report dir
            worker_input = config.workerinput
            settings.run_id = worker_input.get("conformance_run_id", settings.run_id)
            if worker_input.get("conformance_report_dir"):
                settings.report_dir = Path(worker_input["conformance_report_dir"])
            self.started = worker_input.get("conformance_started", self.started)
        # shared by the xdist workers of this run through a file named after the run id
        deadline = self.started + settings.run_timeout if settings.run_timeout else None
        self.liveness = Liveness(run_dir(settings.run_id) / "liveness.json", run_deadline=deadline)
        self.budget = budget.Budget(run_dir(settings.run_id) / "budget.json", settings.max_requests)
        # what the targets of this run charge; the liveness joins it only while a case runs
        self.run = RunContext(budget=self.budget)
        self.plan: str | None = None
        self.preflight: dict | None = None      # the certificate's preflight block (controller, --target)
        self.preflight_line = ""                # the one terminal line of a target that is not usable
        self.sandwich: Any = None               # --gateway-command: clientmode.sandwich.Sandwich (controller)
        self.gateway_block: dict | None = None  # the certificate's ``gateway`` block

    @property
    def not_usable(self) -> bool:
        return self.preflight is not None and not self.preflight["usable"]

    # the embedded server and the Target are built lazily: self-tests never start a server
    def start_server(self, **overrides: Any) -> Any:
        try:
            from conformance.server import ServerConfig, ServerThread
        except ImportError as exc:
            raise HarnessError(f"the reference server is not available: {exc}") from None
        settings = self.settings
        profile = settings.profile
        # the embedded server follows the profile's facts where its config has a switch
        api_keys = tenants.embedded_api_keys(settings.api_key or EMBEDDED_KEY, settings.other_tenant_key)
        cfg: dict[str, Any] = dict(host="127.0.0.1", port=0, api_keys=api_keys,
                                   test_controls=True,
                                   profile=server_profile(profile), defects=settings.defects,
                                   lifetime_s=profile.lifetime_seconds, zdr=bool(profile.cache["zdr"]),
                                   steering=bool(profile.features["steering"]))
        if profile.busy_policy in ("queue", "reject"):
            cfg["busy_policy"] = profile.busy_policy
        if profile.busy_error_code:
            cfg["busy_error_code"] = profile.busy_error_code
        cfg.update(settings.server_overrides)
        cfg.update(overrides)
        server = ServerThread(ServerConfig(**cfg))
        server.start()
        return server

    def extra_server(self, profile: str | None = None, **overrides: Any) -> tuple[Any, Target]:
        """A fresh embedded reference server (``overrides``: its config, e.g. ``defects=``; with
        ``profile``, that built-in profile's facts) and a Target for it; the caller stops it."""
        prof = load_profile(profile) if profile else self.settings.profile
        if profile:
            overrides.setdefault("profile", server_profile(prof))
            overrides.setdefault("lifetime_s", prof.lifetime_seconds)
            overrides.setdefault("zdr", bool(prof.cache["zdr"]))
        overrides.setdefault("defects", ())
        server = self.start_server(**overrides)
        keys = overrides.get("api_keys") or (self.settings.api_key or EMBEDDED_KEY,)
        return server, self.target_for(server.ws_url, server.base_url, embedded=True, profile=prof, api_key=keys[0])

    def target_for(self, ws_url: str, http_base: str | None, *, embedded: bool, profile: Any = None,
                   api_key: str | None = None) -> Target:
        settings = self.settings
        _, derived_base, http_responses = derive_urls(ws_url)
        return Target(ws_url=ws_url, http_base_url=http_base or derived_base, profile=profile or settings.profile,
                      model=settings.model, api_key=settings.api_key if api_key is None else api_key,
                      auth_header=settings.auth_header, http_responses_url=http_responses,
                      max_output_tokens=settings.max_output_tokens, turn_timeout=settings.turn_timeout,
                      turn_cap=settings.turn_cap, idle_after_done=settings.idle_after_done,
                      strict=settings.strict, run_slow=settings.run_slow, is_embedded=embedded,
                      run=self.run)

    @property
    def target(self) -> Target:
        if self._target is None:
            settings = self.settings
            if settings.embedded:
                if self.server is None:
                    self.server = self.start_server()
                self._target = self.target_for(self.server.ws_url, self.server.base_url, embedded=True)
            else:
                ws_url, base, _ = derive_urls(settings.target_url)
                self._target = self.target_for(ws_url, base, embedded=False)
        return self._target

    def retarget(self, target_url: str) -> None:
        """Point the run at another address (the sandwich's gateway moved to a new port before
        any case ran); the Target is built again on its next use."""
        self.settings.target_url = target_url
        self._target = None

    def fingerprint(self) -> dict:
        """The target's fingerprint; an embedded server that never started is not started for it.
        Its capabilities include a client's claims (the certificate's ``claimed`` reads them)."""
        if self._target is not None or not self.settings.embedded:
            fingerprint = self.target.fingerprint()       # with --target, building the Target does no I/O
        else:
            fingerprint = self.target_for("ws://127.0.0.1/v1/responses", None, embedded=True).fingerprint()
            fingerprint["ws_host"] = "embedded reference server"
        if self.settings.claimed:
            fingerprint["capabilities"] = sorted(set(fingerprint.get("capabilities", ())) | self.settings.claimed)
        return fingerprint

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Collect one record per case; under xdist the controller sees every worker's report."""
        record = getattr(report, "conformance_record", None)
        if record is not None and report.when == "teardown":
            self.records.append(CaseRecord.from_json(record))

    def capabilities(self) -> frozenset:
        return self.settings.capabilities

    def redact(self, text: str) -> str:
        """Remove the configured key (what ``Target.redact`` does, without building the Target)."""
        return tenants.redact_keys(text, self.settings.api_key, self.settings.other_tenant_key)

    def stop(self) -> None:
        self.run.liveness = self.run.budget = None
        if self.sandwich is not None:       # the gateway and its upstream never outlive the run
            self.sandwich.stop()
        if not self.is_worker:
            budget.remove_plan(run_dir(self.settings.run_id))
            self.liveness.cleanup()
            self.budget.cleanup()       # the last one removes the run directory
        if self.server is not None:
            try:
                self.server.stop()
            finally:
                self.server = None


SESSION_KEY = pytest.StashKey[ConformanceSession]()
